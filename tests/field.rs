//! The field: the real SmartEM Decisions application (smartem-decisions
//! from PyPI, pinned by docker/examples/constraints.txt) with a real
//! PostgreSQL and a real RabbitMQ, which `scripts/field up` prepares and
//! starts on 127.0.0.1 (scripts/test does, and names the result in
//! SMARTEM_FIELD_ENV). Only Keycloak is stood in for: a JWKS server on
//! loopback (tests/field/keycloak_stub.py) signs the token the app verifies.
//!
//! - As PID 1 of a PID namespace, chrooted into the Debian trixie root
//!   filesystem that holds the app (the shape of a container without a
//!   runtime), dropped to 5000:5000 from gen-etc files: the api migrates,
//!   serves, reads an MRC file from a 0700 data dir only 5000 may read, and
//!   stops on SIGTERM; the worker consumes a message and stops.
//! - In Docker, from the image docker/examples/Dockerfile builds, unchanged,
//!   under --user 5000:5000 --cap-drop ALL --read-only: healthy, then
//!   `docker stop`.
//!
//! Times to healthy and stop times are measured, not asserted: they are
//! written to target/field/measurements.txt, which scripts/test prints.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const UID: u32 = 5000;
const HELPERS: &str = "/opt/field-helpers";

struct Field {
    /// KEY=VALUE lines of scripts/field's state file.
    vars: Vec<(String, String)>,
    root: PathBuf,
}

impl Field {
    fn get(&self, key: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{key} missing from the field's state file"))
    }

    /// The app's database and broker settings, as its deployment gives them.
    fn service_env(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter(|(k, _)| k.starts_with("POSTGRES_") || k.starts_with("RABBITMQ_"))
            .cloned()
            .collect()
    }

    /// A program inside the field's root filesystem (chroot), as root.
    fn chroot(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/sbin/chroot");
        c.arg(&self.root)
            .args(args)
            .env_clear()
            .env("PATH", "/opt/smartem/bin:/usr/bin:/bin")
            .envs(self.service_env());
        c
    }

    fn amqp(&self, args: &[&str]) -> String {
        let mut argv = vec!["/opt/smartem/bin/python", "/opt/field-helpers/amqp.py"];
        argv.extend_from_slice(args);
        let (code, out, err) = run_cmd(&mut self.chroot(&argv));
        assert_eq!(code, 0, "amqp.py {args:?}: {out}{err}");
        out.trim().to_string()
    }

    /// (messages ready, consumers) of the app's queue, as the broker counts.
    fn queue(&self) -> (u64, u64) {
        let out = self.amqp(&["stat"]);
        let mut f = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        (f.next().unwrap(), f.next().unwrap())
    }
}

/// The field, or None (skipped on a laptop; a failure with CI=true).
fn field() -> Option<&'static Field> {
    static FIELD: OnceLock<Option<Field>> = OnceLock::new();
    let f = FIELD.get_or_init(|| {
        let path = std::env::var_os("SMARTEM_FIELD_ENV")?;
        let text = std::fs::read_to_string(path).ok()?;
        let vars: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let root = PathBuf::from(&vars.iter().find(|(k, _)| k == "SMARTEM_FIELD_ROOT")?.1);
        // The helpers go where the chroot'ed python finds them.
        let helpers = root.join(HELPERS.trim_start_matches('/'));
        std::fs::create_dir_all(&helpers).ok()?;
        for name in ["keycloak_stub.py", "make_atlas.py", "amqp.py"] {
            std::fs::copy(repo().join("tests/field").join(name), helpers.join(name)).ok()?;
        }
        for dir in ["app", "dls"] {
            std::fs::create_dir_all(root.join(dir)).ok()?;
        }
        std::fs::write(root.join("smartem-init"), b"").ok()?;
        Some(Field { vars, root })
    });
    let ok = prerequisite(
        f.is_some(),
        "the field is not up (scripts/test runs scripts/field up and sets SMARTEM_FIELD_ENV)",
    );
    if ok {
        f.as_ref()
    } else {
        None
    }
}

fn measured(line: &str) {
    let path = repo().join("target/field/measurements.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
    eprintln!("FIELD: {line}");
}

/// Stands in for Keycloak: a JWKS on loopback and a token it signed.
struct Keycloak {
    child: Child,
    url: String,
    token: String,
}

impl Keycloak {
    fn start(f: &Field) -> Keycloak {
        let mut child = f
            .chroot(&[
                "/opt/smartem/bin/python",
                "/opt/field-helpers/keycloak_stub.py",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("keycloak stub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let (port, token) = line.trim().split_once(' ').expect("PORT TOKEN");
        Keycloak {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
        }
    }
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a deployment mounts: /app (read-only, with the example image's
/// alembic.ini and config), /dls (0700, owned by 5000, an atlas MRC file
/// inside: the root-squashed NFS case) and passwd/group from gen-etc.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(f: &Field) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir(p.join("app")).unwrap();
        for name in ["alembic.ini", "smartem-config.yml"] {
            std::fs::copy(
                repo().join("docker/examples").join(name),
                p.join("app").join(name),
            )
            .unwrap();
        }
        let (code, out, err) = run_cmd(
            Command::new(bin())
                .args([
                    "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "smartem", "--out",
                ])
                .arg(p.join("etc")),
        );
        assert_eq!(code, 0, "gen-etc: {out}{err}");
        // The MRC file, written by the app's own library.
        let name = format!("atlas-{}.mrc", std::process::id());
        let (code, out, err) = run_cmd(&mut f.chroot(&[
            "/opt/smartem/bin/python",
            "/opt/field-helpers/make_atlas.py",
            &format!("{HELPERS}/{name}"),
        ]));
        assert_eq!(code, 0, "make_atlas: {out}{err}");
        let atlas = p.join("dls/Atlas");
        std::fs::create_dir_all(&atlas).unwrap();
        let made = f.root.join(HELPERS.trim_start_matches('/')).join(&name);
        std::fs::copy(&made, atlas.join("Atlas_1.mrc")).unwrap();
        std::fs::remove_file(made).unwrap();
        let chown = |path: &Path| std::os::unix::fs::chown(path, Some(UID), Some(UID)).unwrap();
        chown(&p.join("dls"));
        chown(&atlas);
        chown(&atlas.join("Atlas_1.mrc"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.join("dls"), std::fs::Permissions::from_mode(0o700)).unwrap();
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// smartem-init as PID 1 of a new PID and mount namespace, chrooted into
/// the field's root with the sandbox mounted as a container would have it.
struct InitInChroot {
    child: Child,
    pid: i32,
    started: Instant,
    env: Vec<(String, String)>,
}

impl InitInChroot {
    fn start(f: &Field, sb: &Sandbox, env: &[(String, String)]) -> InitInChroot {
        let root = f.root.display().to_string();
        let script = format!(
            "set -e
R='{root}'
mount --bind '{app}' \"$R/app\"
mount -o remount,bind,ro \"$R/app\"
mount --bind '{dls}' \"$R/dls\"
mount --bind '{etc}/passwd' \"$R/etc/passwd\"
mount --bind '{etc}/group' \"$R/etc/group\"
mount --bind '{init}' \"$R/smartem-init\"
mount -t tmpfs -o mode=1777 tmpfs \"$R/tmp\"
mount -t proc proc \"$R/proc\"
exec /usr/sbin/chroot \"$R\" /smartem-init",
            app = sb.path("app").display(),
            dls = sb.path("dls").display(),
            etc = sb.path("etc").display(),
            init = bin().display(),
        );
        let started = Instant::now();
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "--propagation", "private"])
            .args(["sh", "-c", &script])
            .current_dir("/")
            .env_clear()
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare");
        let upid = child.id() as i32;
        let mut pid = 0;
        wait_until(Duration::from_secs(20), "smartem-init as PID 1", || {
            if let Ok(Some(s)) = child.try_wait() {
                panic!("ended ({s}) before smartem-init was seen running");
            }
            match children(upid).first() {
                Some((p, _)) => {
                    pid = *p;
                    std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == "smartem-init")
                }
                None => false,
            }
        });
        InitInChroot {
            child,
            pid,
            started,
            env: env.to_vec(),
        }
    }

    /// `smartem-init healthcheck` inside the namespace, as uid 5000 and
    /// with the init's environment: what a probe exec'd into the pod does.
    fn healthcheck(&self) -> (i32, String, String) {
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--target={}", self.pid))
                .args(["--pid", "--mount", "--root", "--wd=/"])
                .args(["-S", "5000", "-G", "5000"])
                .args(["/smartem-init", "healthcheck"])
                .env_clear()
                .envs(self.env.iter().cloned()),
        )
    }

    /// SIGTERM to PID 1; returns (exit code, seconds to exit, stderr).
    fn stop(mut self) -> (i32, f64, String) {
        let t = Instant::now();
        kill(self.pid, libc::SIGTERM);
        let (code, _out, err) = wait_output(&mut self.child, Duration::from_secs(40));
        (code, t.elapsed().as_secs_f64(), err)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for InitInChroot {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill with plain integers.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 exchange on loopback: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

fn get_status(port: u16, path: &str) -> Option<u16> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    drop(s);
    Some(http(port, "GET", path, None, None).0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .unwrap()
        .trim()
        .to_string()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// An acquisition and a grid whose atlas is the sandbox's MRC file, then the
/// atlas image, authenticated: the app reads /dls as uid 5000.
fn atlas_image_is_served(port: u16, kc: &Keycloak) {
    let acq = uuid();
    let (code, body) = http(
        port,
        "POST",
        "/acquisitions",
        Some(&kc.token),
        Some(&format!(r#"{{"uuid":"{acq}","name":"field"}}"#)),
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let grid = uuid();
    let (code, body) = http(
        port,
        "POST",
        &format!("/acquisitions/{acq}/grids"),
        Some(&kc.token),
        Some(&format!(
            r#"{{"uuid":"{grid}","acquisition_uuid":"{acq}","name":"grid-1","atlas_dir":"/dls/Atlas/Atlas_1.mrc"}}"#
        )),
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["atlas_dir"], "/dls/Atlas/Atlas_1.mrc");
    let path = format!("/grids/{grid}/atlas_image");
    let (code, body) = http(port, "GET", &path, None, None);
    assert_eq!(
        code,
        401,
        "no token, no image: {}",
        String::from_utf8_lossy(&body)
    );
    let (code, body) = http(port, "GET", &path, Some(&kc.token), None);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        body.starts_with(b"\x89PNG\r\n\x1a\n"),
        "a PNG rendered from the MRC"
    );
    // 64x64 in the IHDR chunk: the atlas the test wrote, not some other image.
    assert_eq!(&body[16..24], &[0, 0, 0, 64, 0, 0, 0, 64]);
}

fn base_env(f: &Field, kc: &Keycloak) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/opt/smartem/bin:/usr/local/bin:/usr/bin:/bin".into(),
        ),
        ("SMARTEM_USER".into(), "5000:5000".into()),
        ("SMARTEM_REQUIRE_DATA_DIR".into(), "1".into()),
        ("SMARTEM_REQUIRE_NON_ROOT".into(), "1".into()),
        (
            "SMARTEM_BACKEND_CONFIG".into(),
            "/app/smartem-config.yml".into(),
        ),
        ("KEYCLOAK_URL".into(), kc.url.clone()),
        ("KEYCLOAK_REALM".into(), "dls".into()),
    ];
    env.extend(f.service_env());
    env
}

#[test]
fn api_as_pid1_migrates_serves_reads_the_data_dir_and_stops() {
    let Some(f) = field() else { return };
    // One database and one queue for every field test: one at a time.
    let _one = serial();
    let kc = Keycloak::start(f);
    let sb = Sandbox::new(f);
    let port = free_port();
    let mut env = base_env(f, &kc);
    env.push(("HTTP_API_PORT".into(), port.to_string()));
    let mut init = InitInChroot::start(f, &sb, &env);
    let deadline = Instant::now() + Duration::from_secs(90);
    while get_status(port, "/health") != Some(200) {
        assert!(
            init.running(),
            "smartem-init ended before /health answered 200"
        );
        assert!(Instant::now() < deadline, "no /health 200 within 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let healthy = init.started.elapsed().as_secs_f64();

    // The kernel's word on the service: uid/gid 5000, no capabilities.
    let svc = children(init.pid)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("uvicorn"))
        })
        .expect("uvicorn is PID 1's child");
    for pid in [init.pid, svc] {
        assert_eq!(status_field(pid, "Uid").unwrap(), "5000\t5000\t5000\t5000");
        assert_eq!(status_field(pid, "Gid").unwrap(), "5000\t5000\t5000\t5000");
        for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
            assert_eq!(
                status_field(pid, set).unwrap(),
                "0000000000000000",
                "{set} of {pid}"
            );
        }
        assert_eq!(status_field(pid, "NoNewPrivs").unwrap(), "1");
        // Confinement on, as in production: the baseline filter (nothing
        // else filters here) and the migration and the app still work.
        assert_eq!(status_field(pid, "Seccomp").unwrap(), "2", "{pid}");
        assert_eq!(status_field(pid, "Seccomp_filters").unwrap(), "1", "{pid}");
    }

    let (code, out, err) = init.healthcheck();
    assert_eq!(code, 0, "healthcheck: {out}{err}");
    atlas_image_is_served(port, &kc);

    let (code, secs, err) = init.stop();
    measured(&format!(
        "pid1 api: /health 200 after {healthy:.2} s (migration included); SIGTERM to exit {secs:.2} s, exit code {code}"
    ));
    // uvicorn ends by re-raising SIGTERM after its graceful shutdown, so the
    // documented code is 128+15.
    assert_eq!(code, 143, "{err}");
    assert!(secs < 1.0, "stopped in {secs:.2} s");
    assert!(err.contains("forwarding SIGTERM to service"), "{err}");
    assert!(
        err.contains("service (pid") && err.contains("ended: exit code 143"),
        "{err}"
    );
    assert!(
        err.contains("Running upgrade") || err.contains("alembic"),
        "the migration ran: {err}"
    );
}

#[test]
fn worker_as_pid1_consumes_a_message_and_stops() {
    let Some(f) = field() else { return };
    let _one = serial();
    let kc = Keycloak::start(f);
    let sb = Sandbox::new(f);
    f.amqp(&["purge"]);
    f.amqp(&["publish", &uuid()]);
    assert_eq!(f.queue(), (1, 0), "the message waits for a consumer");

    let mut env = base_env(f, &kc);
    env.push(("ROLE".into(), "worker".into()));
    let mut init = InitInChroot::start(f, &sb, &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            init.running(),
            "smartem-init ended before the worker consumed"
        );
        if f.queue() == (0, 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue still {:?} after 60 s",
            f.queue()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let consumed = init.started.elapsed().as_secs_f64();
    let (code, out, err) = init.healthcheck();
    assert_eq!(code, 0, "worker healthcheck: {out}{err}");

    let (code, secs, err) = init.stop();
    measured(&format!(
        "pid1 worker: message consumed after {consumed:.2} s; SIGTERM to exit {secs:.2} s, exit code {code}"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(secs < 1.0, "stopped in {secs:.2} s");
    assert_eq!(f.queue(), (0, 0), "the consumer is gone, the message acked");
}

fn docker(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker");
    wait_output(&mut child, Duration::from_secs(900))
}

const APP_IMG: &str = "smartem-decisions-field:test";
const INIT_IMG: &str = "smartem-init:0.1.0";

/// The smartem-init image (the prebuilt twin of docker/Dockerfile) and the
/// application image from docker/examples/Dockerfile as it is, on the
/// field's trixie base image.
fn app_image(f: &Field) {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        // The prebuilt Dockerfile takes binaries named by architecture (dist/).
        std::fs::copy(bin(), ctx.path().join("smartem-init-amd64")).unwrap();
        let prebuilt = repo().join("docker/Dockerfile.prebuilt");
        let (code, out, err) = docker(&[
            "build", "-q", "-t", INIT_IMG, "--build-arg", "userid=5000", "--build-arg",
            "groupid=5000", "--build-arg", "groupname=smartem", "-f",
            prebuilt.to_str().unwrap(), ctx.path().to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let t = Instant::now();
        let dockerfile = repo().join("docker/examples/Dockerfile");
        let base = format!("BASE_IMAGE={}", f.get("SMARTEM_FIELD_BASE_IMAGE"));
        let (code, out, err) = docker(&[
            "build", "-q", "--network", "host", "-t", APP_IMG, "--build-arg", &base, "-f",
            dockerfile.to_str().unwrap(), repo().join("docker/examples").to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let (_, size, _) = docker(&["image", "inspect", "-f", "{{.Size}}", APP_IMG]);
        let (_, init_size, _) = docker(&["image", "inspect", "-f", "{{.Size}}", INIT_IMG]);
        measured(&format!(
            "docker build of docker/examples/Dockerfile: {:.0} s; image sizes: {APP_IMG} {} bytes, {INIT_IMG} {} bytes",
            t.elapsed().as_secs_f64(),
            size.trim(),
            init_size.trim()
        ));
    });
}

fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id]).1.trim().to_string()
}

/// Runs the example image as the issue's operator would; returns its id
/// once healthy, and how long that took.
fn run_healthy(f: &Field, kc: &Keycloak, sb: &Sandbox, role: &str, port: u16) -> (String, f64) {
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--network",
        "host",
        "--user",
        "5000:5000",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--tmpfs",
        "/tmp",
        // Probe every second from the start: the image's 30 s interval is
        // for production. dockerd 20.10 probes first after the start period.
        "--health-interval",
        "1s",
        "--health-start-period",
        "0s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("-v".into());
    // Read-write, as `docker run -v` mounts by default: Landlock keeps it
    // read-only to the app. Seccomp unconfined, as Kubernetes' default is:
    // the baseline filter is what the app runs under.
    args.push(format!("{}:/dls", sb.path("dls").display()));
    args.push("--security-opt".into());
    args.push("seccomp=unconfined".into());
    let mut env = vec![
        ("ROLE".to_string(), role.to_string()),
        ("HTTP_API_PORT".into(), port.to_string()),
        ("KEYCLOAK_URL".into(), kc.url.clone()),
        ("SMARTEM_REQUIRE_DATA_DIR".into(), "1".into()),
    ];
    env.extend(f.service_env());
    for (k, v) in env {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.push(APP_IMG.into());
    let t = Instant::now();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = docker(&argv);
    assert_eq!(code, 0, "{out}{err}");
    let id = out.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = inspect(&id, "{{.State.Status}} {{.State.Health.Status}}");
        if state == "running healthy" {
            break;
        }
        if !state.starts_with("running") || Instant::now() > deadline {
            let (_, logs, errs) = docker(&["logs", &id]);
            let health = inspect(&id, "{{json .State.Health}}");
            let _ = docker(&["rm", "-f", &id]);
            panic!(
                "{role}: {state} after {:?}\n{logs}{errs}\n{health}",
                t.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    (id, t.elapsed().as_secs_f64())
}

/// docker stop (its default 10 s timeout): seconds taken and exit code.
fn docker_stop(id: &str) -> (f64, i32, String) {
    let t = Instant::now();
    let (code, out, err) = docker(&["stop", id]);
    assert_eq!(code, 0, "{out}{err}");
    let secs = t.elapsed().as_secs_f64();
    let exit = inspect(id, "{{.State.ExitCode}}").parse().unwrap();
    let (_, logs, errs) = docker(&["logs", id]);
    let _ = docker(&["rm", "-f", id]);
    (secs, exit, format!("{logs}{errs}"))
}

#[test]
fn both_roles_in_docker_from_the_example_image() {
    let Some(f) = field() else { return };
    if !prerequisite(
        docker_answers(),
        "no Docker engine answers (scripts/docker-engine starts one)",
    ) {
        return;
    }
    let _one = serial();
    app_image(f);
    let kc = Keycloak::start(f);
    let sb = Sandbox::new(f);

    let port = free_port();
    let (api, healthy) = run_healthy(f, &kc, &sb, "api", port);
    atlas_image_is_served(port, &kc);
    let (secs, code, logs) = docker_stop(&api);
    measured(&format!(
        "docker api: healthy after {healthy:.2} s (docker run to State.Health healthy); docker stop {secs:.2} s, exit code {code}"
    ));
    assert_eq!(code, 143, "{logs}");
    assert!(secs < 5.0, "docker stop took {secs:.2} s: {logs}");
    for confined in [
        "confinement: read-only to the service (Landlock ABI",
        "seccomp: baseline filter added",
    ] {
        assert!(logs.contains(confined), "{confined}: {logs}");
    }

    f.amqp(&["purge"]);
    f.amqp(&["publish", &uuid()]);
    let (worker, healthy) = run_healthy(f, &kc, &sb, "worker", free_port());
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.queue() != (0, 1) {
        assert!(Instant::now() < deadline, "queue {:?}", f.queue());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (secs, code, logs) = docker_stop(&worker);
    measured(&format!(
        "docker worker: healthy after {healthy:.2} s; docker stop {secs:.2} s, exit code {code}"
    ));
    assert_eq!(code, 0, "{logs}");
    assert!(secs < 5.0, "docker stop took {secs:.2} s: {logs}");
    for confined in [
        "confinement: read-only to the service (Landlock ABI",
        "seccomp: baseline filter added",
    ] {
        assert!(logs.contains(confined), "{confined}: {logs}");
    }
    // From inside the example image, as the app's uid, which owns every
    // file, through a read-write volume: the app's own interpreter can read
    // the microscopy file but change nothing beneath the data dir.
    let mrc = sb.path("dls/Atlas/Atlas_1.mrc");
    let before = std::fs::read(&mrc).unwrap();
    let script = r#"
import os
d = "/dls/Atlas"
f = d + "/Atlas_1.mrc"
ops = [
    ("write", lambda: open(f, "r+b").write(b"x")),
    ("append", lambda: open(f, "ab").write(b"x")),
    ("truncate", lambda: os.truncate(f, 0)),
    ("create", lambda: open(d + "/new", "w")),
    ("unlink", lambda: os.unlink(f)),
    ("rename", lambda: os.rename(f, d + "/moved.mrc")),
    ("mkdir", lambda: os.mkdir(d + "/sub")),
    ("rmdir", lambda: os.rmdir(d)),
    ("symlink", lambda: os.symlink(f, d + "/s")),
    ("link", lambda: os.link(f, d + "/h")),
    ("mkfifo", lambda: os.mkfifo(d + "/p")),
]
for name, op in ops:
    try:
        op()
        print(name, "ALLOWED")
    except PermissionError as e:
        print(name, "refused", e.errno)
print("read", len(open(f, "rb").read()))
"#;
    let vol = format!("{}:/dls", sb.path("dls").display());
    let (code, out, err) = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "5000:5000",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--security-opt",
        "seccomp=unconfined",
        "-v",
        &vol,
        "-e",
        "SMARTEM_DATA_DIR=/dls",
        APP_IMG,
        "python",
        "-c",
        script,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" refused ").count(), 11, "{out}{err}");
    assert!(!out.contains("ALLOWED"), "{out}");
    assert!(out.contains(&format!("read {}", before.len())), "{out}");
    assert_eq!(std::fs::read(&mrc).unwrap(), before, "the MRC file changed");
}

/// Names in `text` read through os.getenv("X"), os.environ.get("X") or
/// os.environ["X"], plus the names listed in the app's `required... = [...]`
/// checks (read in a loop: utils.py's POSTGRES_*, rmq/config.py's RABBITMQ_*).
fn env_reads(text: &str, out: &mut std::collections::BTreeSet<String>) {
    for pat in ["getenv(\"", "environ.get(\"", "environ[\""] {
        for (i, _) in text.match_indices(pat) {
            let rest = &text[i + pat.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_string());
            }
        }
    }
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("required") && l.contains("= ["))
    {
        for (n, part) in line.split('"').enumerate() {
            if n % 2 == 1 {
                out.insert(part.to_string());
            }
        }
    }
}

#[test]
fn manifest_env_names_are_the_ones_the_app_reads() {
    let Some(f) = field() else { return };
    // What the installed app reads (the backend and its common module; the
    // agent, a separate program, is not deployed by these manifests).
    let lib = std::fs::read_dir(f.root.join("opt/smartem/lib"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .unwrap()
        .path()
        .join("site-packages");
    let mut app = std::collections::BTreeSet::new();
    let mut stack = vec![lib.join("smartem_backend"), lib.join("smartem_common")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "py") {
                env_reads(&std::fs::read_to_string(&p).unwrap(), &mut app);
            }
        }
    }
    for known in [
        "POSTGRES_PASSWORD",
        "RABBITMQ_HOST",
        "KEYCLOAK_URL",
        "HTTP_API_PORT",
    ] {
        assert!(app.contains(known), "the scan finds {known}: {app:?}");
    }
    // smartem-init's own, from its --help.
    let (_, help, _) = run_cmd(Command::new(bin()).arg("--help"));
    let init: std::collections::BTreeSet<String> = help
        .match_indices("[env: ")
        .filter_map(|(i, _)| help[i + 6..].split('=').next().map(str::to_string))
        .collect();
    assert!(
        init.contains("SMARTEM_USER") && init.contains("ROLE"),
        "{help}"
    );

    // The manifests' names: ConfigMap and Secret keys, container env.
    let mut named = std::collections::BTreeSet::new();
    for file in ["config.yaml", "migrate-job.yaml", "api.yaml", "worker.yaml"] {
        let text = std::fs::read(repo().join("docker/examples/k8s").join(file)).unwrap();
        let mut py = f
            .chroot(&[
                "/opt/smartem/bin/python",
                "-c",
                "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        py.stdin.take().unwrap().write_all(&text).unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(out.status.success(), "{file}");
        for doc in json(&out.stdout).as_array().unwrap() {
            for key in ["data", "stringData"] {
                if let Some(map) = doc[key].as_object() {
                    named.extend(map.keys().cloned());
                }
            }
            if let Some(cs) = doc["spec"]["template"]["spec"]["containers"].as_array() {
                for c in cs {
                    for e in c["env"].as_array().into_iter().flatten() {
                        named.insert(e["name"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
    // Read by the app but deliberately not set (config.yaml says why), and
    // keycloak_client.py's list, which the agent reads from its own file.
    let not_deployed = [
        "SKIP_DB_INIT",
        "HTTP_API_HOST",
        "_",
        "KEYCLOAK_CLIENT_ID",
        "KEYCLOAK_CLIENT_SECRET",
    ];
    let missing: Vec<_> = app
        .iter()
        .filter(|n| !named.contains(*n) && !not_deployed.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the app reads these, the manifests don't set them: {missing:?}"
    );
    let unknown: Vec<_> = named
        .iter()
        .filter(|n| !app.contains(*n) && !init.contains(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "neither the app nor smartem-init reads these: {unknown:?}"
    );
}
