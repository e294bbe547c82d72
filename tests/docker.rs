//! The image, used the way people use it: docker build from the prebuilt
//! Dockerfile (the same final stage as docker/Dockerfile), docker run with
//! --user / --read-only / --cap-drop / volumes, docker stop, HEALTHCHECK;
//! and the Dockerfiles and Kubernetes manifests linted and validated.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROOT_IMG: &str = "smartem-init-test:root";
const CUSTOM_IMG: &str = "smartem-init-test:custom";
/// The custom image plus the test service (a separate layer, so the
/// product image itself stays minimal).
const SVC_IMG: &str = "smartem-init-test:custom-svc";
const ROOT_SVC_IMG: &str = "smartem-init-test:root-svc";

fn docker(args: &[&str]) -> (i32, String, String) {
    run_cmd(Command::new("docker").args(args))
}

fn docker_ok() -> bool {
    prerequisite(
        docker_answers(),
        "no Docker engine answers (scripts/docker-engine starts one)",
    )
}

/// The static test service: the release build next to the binary under
/// test when there is one, else cargo's.
fn testsvc_static() -> PathBuf {
    let sibling = bin().with_file_name("smartem-testsvc");
    if sibling.exists() {
        sibling
    } else {
        PathBuf::from(testsvc())
    }
}

fn build(tag: &str, args: &[(&str, &str)], context: &Path, dockerfile: &Path) {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag, "-f"])
        .arg(dockerfile);
    for (k, v) in args {
        cmd.args(["--build-arg", &format!("{k}={v}")]);
    }
    let (code, out, err) = run_cmd(cmd.arg(context));
    assert_eq!(code, 0, "docker build {tag}: {out}{err}");
}

/// Builds the four images once per test run.
fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        // The prebuilt Dockerfile takes binaries named by architecture (dist/).
        std::fs::copy(bin(), ctx.path().join("smartem-init-amd64")).unwrap();
        let prebuilt = repo().join("docker/Dockerfile.prebuilt");
        build(ROOT_IMG, &[], ctx.path(), &prebuilt);
        build(
            CUSTOM_IMG,
            &[
                ("userid", "5000"),
                ("groupid", "5000"),
                ("groupname", "smartem"),
            ],
            ctx.path(),
            &prebuilt,
        );
        let svc_ctx = tempfile::tempdir().unwrap();
        std::fs::copy(testsvc_static(), svc_ctx.path().join("smartem-testsvc")).unwrap();
        for (base, tag) in [(CUSTOM_IMG, SVC_IMG), (ROOT_IMG, ROOT_SVC_IMG)] {
            let df = svc_ctx
                .path()
                .join(format!("Dockerfile.{}", tag.rsplit(':').next().unwrap()));
            std::fs::write(
                &df,
                format!("FROM {base}\nCOPY smartem-testsvc /smartem-testsvc\n"),
            )
            .unwrap();
            build(tag, &[], svc_ctx.path(), &df);
        }
    });
}

fn status_line(out: &str, key: &str) -> String {
    smartem_init::status_field(out, key)
        .or_else(|| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

fn run_svc(img: &str, docker_args: &[&str], init_args: &[&str]) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(docker_args);
    args.push(img);
    args.extend_from_slice(init_args);
    docker(&args)
}

#[test]
fn both_images_drop_to_their_user_with_nothing_left() {
    if !docker_ok() {
        return;
    }
    images();
    // The custom image starts as its USER 5000:5000 (docker gives it its
    // primary group as a supplementary one, which is kept: a non-root start
    // can't change groups, nor clear the bounding set without CAP_SETPCAP:
    // docker's default set stays there, inert under no_new_privs); started
    // as root it drops to the user's /etc/group memberships (none) plus the
    // runtime's groups but 0 (none here), and clears the bounding set too.
    const DOCKER_DEFAULT_BOUNDING: &str = "00000000a80425fb";
    for (img, docker_args, uid, groups, bounding) in [
        // Root mode: docker's group 0 is kept (the target's primary group).
        (ROOT_SVC_IMG, &[][..], "0", "0", "0000000000000000"),
        (SVC_IMG, &[][..], "5000", "5000", DOCKER_DEFAULT_BOUNDING),
        (
            SVC_IMG,
            &["--user", "0"][..],
            "5000",
            "",
            "0000000000000000",
        ),
    ] {
        let (code, out, err) = run_svc(img, docker_args, &["--", "/smartem-testsvc", "status"]);
        assert_eq!(code, 0, "{img}: {err}");
        assert_eq!(
            status_line(&out, "Uid"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "{img}"
        );
        assert_eq!(
            status_line(&out, "Gid"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "{img}"
        );
        assert_eq!(status_line(&out, "Groups"), groups, "{img} {docker_args:?}");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(status_line(&out, cap), "0000000000000000", "{img} {cap}");
        }
        assert_eq!(
            status_line(&out, "CapBnd"),
            bounding,
            "{img} {docker_args:?}"
        );
        assert_eq!(status_line(&out, "NoNewPrivs"), "1", "{img}");
    }
    let (_, out, _) = run_svc(SVC_IMG, &[], &["--", "/smartem-testsvc", "status"]);
    assert_eq!(status_line(&out, "HOME"), "/nonexistent");
    assert_eq!(status_line(&out, "USER"), "smartem");
}

#[test]
fn dry_run_works_inside_the_image() {
    if !docker_ok() {
        return;
    }
    images();
    let (code, out, err) = run_svc(
        CUSTOM_IMG,
        &[],
        &[
            "--dry-run",
            "--format",
            "json",
            "--",
            "/smartem-init",
            "--version",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(plan["supervision"], "pid1");
    assert_eq!(plan["identity"]["uid"], 5000);
    assert_eq!(plan["identity"]["target"]["user"], "smartem");
}

#[test]
fn docker_user_must_match_the_image_user() {
    if !docker_ok() {
        return;
    }
    images();
    let (code, _, err) = run_svc(
        SVC_IMG,
        &["--user", "1000:1000"],
        &["--", "/smartem-testsvc", "status"],
    );
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("uid=1000 gid=1000") && err.contains("uid=5000 gid=5000"),
        "{err}"
    );
    let (code, out, err) = run_svc(
        SVC_IMG,
        &[
            "--user",
            "5000:5000",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ],
        &["--", "/smartem-testsvc", "status"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(status_line(&out, "Uid"), "5000\t5000\t5000\t5000");
    assert_eq!(status_line(&out, "CapEff"), "0000000000000000");
}

#[test]
fn data_dir_volume_readable_or_not() {
    if !docker_ok() {
        return;
    }
    images();
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("dls");
    std::fs::create_dir(&dir).unwrap();
    let vol = format!("{}:/dls:ro", dir.display());
    // Configured: as a plain init for a command, only a configured data
    // dir is checked.
    let probe = |extra: &[&str]| {
        let mut args = vec!["-v", vol.as_str(), "-e", "SMARTEM_DATA_DIR=/dls"];
        args.extend_from_slice(extra);
        run_svc(SVC_IMG, &args, &["--", "/smartem-testsvc", "status"])
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, err) = probe(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("data dir"), "readable is silent: {err}");
    let (code, _, err) = probe(&["-e", "SMARTEM_REQUIRE_DATA_DIR=1"]);
    assert_eq!(code, 0, "{err}");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, out, err) = probe(&[]);
    assert_eq!(code, 0, "unreadable is a warning only: {err}");
    assert!(
        err.contains("not readable by uid 5000: permission denied"),
        "{err}"
    );
    assert!(out.contains("Uid:"), "the service ran");
    let (code, out, err) = probe(&["-e", "SMARTEM_REQUIRE_DATA_DIR=1"]);
    assert_eq!(code, 78, "{err}");
    assert!(!out.contains("Uid:"), "the service must not run");
}

#[test]
fn groups_the_runtime_adds_are_kept_on_a_root_start() {
    if !docker_ok() {
        return;
    }
    images();
    use std::os::unix::fs::PermissionsExt;
    // A data dir only group 6000 may read (the fsGroup / --group-add case).
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("dls");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(6000)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let vol = format!("{}:/dls:ro", dir.display());
    let probe = |extra: &[&str]| {
        let mut args = vec![
            "--user",
            "0",
            "--group-add",
            "6000",
            "-v",
            vol.as_str(),
            "-e",
            "SMARTEM_DATA_DIR=/dls",
        ];
        args.extend_from_slice(extra);
        run_svc(SVC_IMG, &args, &["--", "/smartem-testsvc", "status"])
    };
    // Started as root, dropped to 5000: the runtime's 6000 is kept (merged),
    // so the group-readable data dir is readable, without a warning.
    let (code, out, err) = probe(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status_line(&out, "Uid"), "5000\t5000\t5000\t5000");
    assert_eq!(status_line(&out, "Groups"), "6000");
    assert!(!err.contains("data dir"), "{err}");
    // --strict-groups: exactly the group file's memberships (none).
    let (code, out, err) = probe(&["-e", "SMARTEM_STRICT_GROUPS=1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status_line(&out, "Groups"), "");
    assert!(err.contains("not readable by uid 5000"), "{err}");
}

/// Starts a detached container; returns its id.
fn start(docker_args: &[&str], init_args: &[&str]) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(docker_args);
    args.push(SVC_IMG);
    args.extend_from_slice(init_args);
    let (code, out, err) = docker(&args);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id]).1.trim().to_string()
}

/// docker stop; returns (seconds it took, the container's exit code).
fn stop(id: &str) -> (f64, i32) {
    wait_until(Duration::from_secs(20), "the service to start", || {
        docker(&["top", id]).1.contains("smartem-testsvc")
    });
    let t = Instant::now();
    let (code, _, err) = docker(&["stop", "-t", "10", id]);
    assert_eq!(code, 0, "{err}");
    let took = t.elapsed().as_secs_f64();
    let exit = inspect(id, "{{.State.ExitCode}}").parse().unwrap();
    let _ = docker(&["rm", "-f", id]);
    (took, exit)
}

#[test]
fn docker_stop_is_prompt_and_keeps_the_exit_code() {
    if !docker_ok() {
        return;
    }
    images();
    // A service with a clean SIGTERM handler: its 0.
    let id = start(
        &["--network", "none"],
        &["--", "/smartem-testsvc", "serve", "8080"],
    );
    let (took, exit) = stop(&id);
    assert_eq!(exit, 0);
    assert!(
        took < 8.0,
        "docker stop took {took:.1}s: SIGTERM did not reach the service"
    );
    // Default disposition (like `sleep`): killed by SIGTERM, 143.
    let id = start(&["--network", "none"], &["--", "/smartem-testsvc", "sleep"]);
    let (took, exit) = stop(&id);
    assert_eq!(exit, 143);
    assert!(took < 8.0, "docker stop took {took:.1}s");
    // Ignores SIGTERM: smartem-init kills it after SMARTEM_GRACE_PERIOD.
    let id = start(
        &["--network", "none", "-e", "SMARTEM_GRACE_PERIOD=1"],
        &["--", "/smartem-testsvc", "ignore-term"],
    );
    let (took, exit) = stop(&id);
    assert_eq!(exit, 137);
    assert!(
        took < 8.0,
        "the grace period (1 s), not docker's 10 s, should end it: {took:.1}s"
    );
}

#[test]
fn roles_inside_the_image() {
    if !docker_ok() {
        return;
    }
    images();
    let cmds = [
        "-e",
        "SMARTEM_MIGRATE_CMD=/smartem-testsvc status migrate",
        "-e",
        "SMARTEM_API_CMD=/smartem-testsvc status api",
        "-e",
        "SMARTEM_WORKER_CMD=/smartem-testsvc status worker",
    ];
    let with_role = |role: &str| {
        let mut args = cmds.to_vec();
        args.extend_from_slice(&["-e", role]);
        run_svc(SVC_IMG, &args, &[])
    };
    let (code, out, err) = with_role("ROLE=api");
    assert_eq!(code, 0, "{err}");
    let args: Vec<&str> = out.lines().filter(|l| l.starts_with("Args=")).collect();
    assert_eq!(args, vec!["Args=status migrate", "Args=status api"]);
    let (code, out, err) = with_role("ROLE=worker");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("Args="))
            .collect::<Vec<_>>(),
        vec!["Args=status worker"]
    );
    let (code, _, err) = with_role("ROLE=bogus");
    assert_eq!(code, 64);
    assert!(
        err.contains("\"bogus\"") && err.contains("api, worker"),
        "{err}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health(answer: u16) -> String {
    let port = free_port().to_string();
    let id = start(
        &[
            "--network",
            "host",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "--health-timeout",
            "3s",
            "--health-start-period",
            "0s",
            "-e",
            &format!("HTTP_API_PORT={port}"),
            "-e",
            "SMARTEM_SKIP_MIGRATIONS=1",
            "-e",
            &format!("SMARTEM_API_CMD=/smartem-testsvc serve {port} {answer}"),
        ],
        &[],
    );
    let mut state = String::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        state = inspect(&id, "{{.State.Health.Status}}");
        if state == "healthy" || state == "unhealthy" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = docker(&["rm", "-f", &id]);
    state
}

#[test]
fn healthcheck_reaches_healthy_and_unhealthy() {
    if !docker_ok() {
        return;
    }
    images();
    assert_eq!(health(200), "healthy");
    assert_eq!(health(503), "unhealthy");
}

#[test]
fn the_image_holds_only_its_files() {
    if !docker_ok() {
        return;
    }
    images();
    for img in [ROOT_IMG, CUSTOM_IMG] {
        let d = tempfile::tempdir().unwrap();
        let tar = d.path().join("image.tar");
        let (code, _, err) = docker(&["save", "-o", tar.to_str().unwrap(), img]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = run_cmd(
            Command::new("tar")
                .arg("-xf")
                .arg(&tar)
                .arg("-C")
                .arg(d.path()),
        );
        assert_eq!(code, 0, "{err}");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("manifest.json")).unwrap())
                .unwrap();
        let mut files = Vec::new();
        for layer in manifest[0]["Layers"].as_array().unwrap() {
            let (_, list, _) = run_cmd(
                Command::new("tar")
                    .arg("-tf")
                    .arg(d.path().join(layer.as_str().unwrap())),
            );
            files.extend(list.lines().map(str::to_string));
        }
        files.sort();
        files.dedup();
        assert_eq!(
            files,
            vec!["etc/", "etc/group", "etc/passwd", "smartem-init"],
            "{img}"
        );
        let size = inspect(img, "{{.Size}}");
        eprintln!("image {img}: {size} bytes");
        let env = inspect(img, "{{json .Config.Env}}");
        let want = if img == ROOT_IMG {
            "SMARTEM_USER=0:0"
        } else {
            "SMARTEM_USER=5000:5000"
        };
        assert!(env.contains(want), "{env}");
        assert_eq!(
            inspect(img, "{{json .Config.Entrypoint}}"),
            "[\"/smartem-init\"]"
        );
        assert!(inspect(img, "{{json .Config.Healthcheck}}").contains("healthcheck"));
        // A plain build names Cargo.toml's version; scripts/release adds
        // the revision and time (tests/release.rs).
        assert_eq!(
            inspect(
                img,
                "{{index .Config.Labels \"org.opencontainers.image.version\"}}"
            ),
            cargo_field("version")
        );
    }
}

fn final_stage(path: &str) -> String {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    let start = text
        .find("\nFROM scratch\n")
        .unwrap_or_else(|| panic!("{path} has no final FROM scratch stage"));
    text[start..].to_string()
}

#[test]
fn the_prebuilt_dockerfile_does_not_drift_from_the_real_one() {
    assert_eq!(
        final_stage("docker/Dockerfile"),
        final_stage("docker/Dockerfile.prebuilt")
    );
}

/// A docker client that builds with BuildKit: the buildx plugin, else
/// Debian's docker.io client (20.10 has BuildKit built in).
fn buildkit() -> Option<Command> {
    let buildx = Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if buildx {
        let mut c = Command::new("docker");
        c.args(["buildx", "build", "--load"]);
        return Some(c);
    }
    let debian = Path::new("/usr/bin/docker");
    debian.exists().then(|| {
        let mut c = Command::new(debian);
        c.env("DOCKER_BUILDKIT", "1").arg("build");
        c
    })
}

/// docker/Dockerfile itself, cross-compiling for arm64 on this amd64 host
/// with BuildKit (no emulation: the builder stage runs on the build
/// platform), from a stand-in for rust:1.95-bookworm (scripts/rust-image;
/// no image can be pulled here). The arm64 image holds the same bytes as
/// the suite's own arm64 build, which tests/arm64.rs runs as PID 1.
#[test]
fn the_dockerfile_cross_builds_an_arm64_image_with_the_same_binary() {
    if !docker_ok() {
        return;
    }
    let rust_image = std::env::var("SMARTEM_RUST_IMAGE").unwrap_or_default();
    let arm64 = std::env::var_os("SMARTEM_INIT_ARM64_BIN").map(PathBuf::from);
    let cmd = buildkit();
    let ok = !rust_image.is_empty() && arm64.as_ref().is_some_and(|p| p.exists()) && cmd.is_some();
    if !prerequisite(
        ok,
        "SMARTEM_RUST_IMAGE (scripts/rust-image), SMARTEM_INIT_ARM64_BIN and a BuildKit docker client",
    ) {
        return;
    }
    let tag = "smartem-init-test:dockerfile-arm64";
    // The builder's snapshots take ~13 GB under the vfs driver: freed at
    // the end, the whole BuildKit cache on CI's own engine, the image
    // everywhere.
    struct Tidy(&'static str);
    impl Drop for Tidy {
        fn drop(&mut self) {
            docker(&["rmi", "-f", self.0]);
            if in_ci() {
                docker(&["builder", "prune", "-af"]);
            } else {
                eprintln!("docker builder prune frees this test's BuildKit cache");
            }
        }
    }
    let _tidy = Tidy(tag);
    let mut cmd = cmd.unwrap();
    cmd.args([
        "-q",
        "--network",
        "host",
        "--platform",
        "linux/arm64",
        "-t",
        tag,
    ])
    .args(["--build-arg", &format!("RUST_IMAGE={rust_image}")])
    .args(["--build-arg", "userid=5000", "--build-arg", "groupid=5000"])
    .args(["--build-arg", "groupname=smartem", "-f"])
    .arg(repo().join("docker/Dockerfile"))
    .arg(repo())
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("docker build");
    let (code, out, err) = wait_output(&mut child, Duration::from_secs(1500));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(inspect(tag, "{{.Os}}/{{.Architecture}}"), "linux/arm64");
    assert_eq!(inspect(tag, "{{.Config.User}}"), "5000:5000");
    assert_eq!(
        inspect(
            tag,
            "{{index .Config.Labels \"org.opencontainers.image.version\"}}"
        ),
        cargo_field("version")
    );
    let d = tempfile::tempdir().unwrap();
    files_from_image(tag, &["/smartem-init", "/etc/passwd"], d.path());
    let shipped = std::fs::read(d.path().join("smartem-init")).unwrap();
    assert!(
        shipped == std::fs::read(arm64.unwrap()).unwrap(),
        "the image's aarch64 binary differs from scripts/build arm64's"
    );
    let passwd = std::fs::read_to_string(d.path().join("passwd")).unwrap();
    assert!(passwd.contains("smartem:x:5000:5000:"), "{passwd}");
}

fn tool(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SMARTEM_TOOLS_BIN")?;
    let p = PathBuf::from(dir).join(name);
    p.exists().then_some(p)
}

#[test]
fn every_dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint") else {
        prerequisite(
            false,
            "hadolint not installed (scripts/tools; SMARTEM_TOOLS_BIN)",
        );
        return;
    };
    for f in [
        "docker/Dockerfile",
        "docker/Dockerfile.prebuilt",
        "docker/examples/Dockerfile",
    ] {
        let (code, out, err) = run_cmd(Command::new(&hadolint).arg(repo().join(f)));
        assert_eq!(code, 0, "{f}: {out}{err}");
    }
}

/// A manifest as JSON, by the YAML loader kubernetes-validate brings.
fn manifests(path: &str) -> Vec<serde_json::Value> {
    let python = tool("python3").expect("tools venv python");
    let (code, out, err) = run_cmd(
        Command::new(python)
            .args(["-c", "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
            .arg(repo().join(path)),
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn kubernetes_manifests_pass_yamllint() {
    let Some(yamllint) = tool("yamllint") else {
        prerequisite(
            false,
            "yamllint not installed (scripts/tools; SMARTEM_TOOLS_BIN)",
        );
        return;
    };
    // yamllint's defaults, bar the document-start marker Kubernetes examples
    // leave out and 100-column lines for the comments.
    let config = "{extends: default, rules: {document-start: disable, line-length: {max: 100}}}";
    let (code, out, err) = run_cmd(
        Command::new(yamllint)
            .args(["--strict", "-d", config])
            .args(MANIFESTS.iter().map(|f| repo().join(f))),
    );
    assert_eq!(code, 0, "{out}{err}");
}

const MANIFESTS: [&str; 4] = [
    "docker/examples/k8s/config.yaml",
    "docker/examples/k8s/migrate-job.yaml",
    "docker/examples/k8s/api.yaml",
    "docker/examples/k8s/worker.yaml",
];

#[test]
fn kubernetes_manifests_validate_and_match_the_image() {
    let Some(validate) = tool("kubernetes-validate") else {
        prerequisite(
            false,
            "kubernetes-validate not installed (scripts/tools; SMARTEM_TOOLS_BIN)",
        );
        return;
    };
    let mut kinds = Vec::new();
    for f in MANIFESTS {
        let (code, out, err) = run_cmd(Command::new(&validate).arg("--strict").arg(repo().join(f)));
        assert_eq!(code, 0, "{f}: {out}{err}");
        for doc in manifests(f) {
            kinds.push(format!(
                "{}/{}",
                doc["kind"].as_str().unwrap(),
                doc["metadata"]["name"].as_str().unwrap()
            ));
            let pod = match doc["kind"].as_str() {
                Some("Deployment") | Some("Job") => &doc["spec"]["template"]["spec"],
                _ => continue,
            };
            let sc = &pod["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true, "{f}");
            for k in ["runAsUser", "runAsGroup", "fsGroup"] {
                assert_eq!(sc[k], 5000, "{f} {k}");
            }
            let c = &pod["containers"][0];
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"], false,
                "{f}"
            );
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{f}");
            assert_eq!(
                c["securityContext"]["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{f}"
            );
            let env = c["env"].as_array().unwrap();
            let get = |n: &str| {
                env.iter()
                    .find(|e| e["name"] == n)
                    .map(|e| e["value"].as_str().unwrap().to_string())
            };
            assert_eq!(
                get("SMARTEM_USER").as_deref(),
                Some("5000:5000"),
                "{f}: matches runAsUser/runAsGroup"
            );
            // Every stage gets its time: uvicorn's graceful timeout is
            // derived below smartem-init's grace period (unit-tested), and
            // the kubelet's SIGKILL comes at least 5 s after smartem-init's.
            let grace: u64 = get("SMARTEM_GRACE_PERIOD").unwrap().parse().unwrap();
            assert!(
                pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= grace + 5,
                "{f}: terminationGracePeriodSeconds >= SMARTEM_GRACE_PERIOD + 5"
            );
            // Settings come from the ConfigMap and the Secret.
            let from: Vec<_> = c["envFrom"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    e["configMapRef"]["name"]
                        .as_str()
                        .or(e["secretRef"]["name"].as_str())
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert_eq!(from, ["smartem-config", "smartem-secrets"], "{f}");
            let mounts = c["volumeMounts"].as_array().unwrap();
            let tmp = mounts
                .iter()
                .find(|m| m["mountPath"] == "/tmp")
                .expect("/tmp");
            let vol = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == tmp["name"])
                .unwrap();
            assert!(vol.get("emptyDir").is_some(), "{f}: /tmp is an emptyDir");
            match get("ROLE").as_deref() {
                Some("api") => {
                    assert_eq!(doc["spec"]["replicas"], 3);
                    assert_eq!(
                        get("SMARTEM_SKIP_MIGRATIONS").as_deref(),
                        Some("1"),
                        "{f}: the Job migrates"
                    );
                    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health", "{f}");
                    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/status", "{f}");
                }
                Some("worker") => {
                    assert_eq!(
                        c["readinessProbe"]["exec"]["command"],
                        serde_json::json!(["/smartem-init", "healthcheck"]),
                        "{f}"
                    );
                    assert!(
                        c.get("livenessProbe").is_none(),
                        "{f}: the consumer reconnects by itself"
                    );
                }
                Some("migrate") => {
                    assert_eq!(doc["kind"], "Job", "{f}");
                    assert_eq!(pod["restartPolicy"], "Never", "{f}");
                }
                other => panic!("{f}: ROLE {other:?}"),
            }
            if get("ROLE").as_deref() != Some("migrate") {
                let dls = mounts
                    .iter()
                    .find(|m| m["mountPath"] == "/dls")
                    .expect("/dls mount");
                assert_eq!(dls["readOnly"], true, "{f}");
            }
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap/smartem-config",
            "Deployment/smartem-api",
            "Deployment/smartem-worker",
            "Job/smartem-migrate-0-1-3",
            "Secret/smartem-secrets",
            "Service/smartem-api",
        ]
    );
}

#[test]
fn doctor_under_docker_exec_reports_the_running_init_and_service() {
    if !docker_ok() {
        return;
    }
    images();
    // Started as root, dropped to 5000; doctor exec'd afterwards, as
    // `kubectl exec` / `docker exec` run it (a new process, the image's user).
    let id = start(
        &["--network", "none", "--user", "0"],
        &["--", "/smartem-testsvc", "sleep"],
    );
    let mut out = String::new();
    for _ in 0..50 {
        let (_, o, _) = docker(&["exec", &id, "/smartem-init", "doctor", "--data-dir", "/"]);
        out = o;
        if out.contains("running: service") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = docker(&["rm", "-f", &id]);
    let pid1 = out
        .split("\n\n")
        .find(|s| s.starts_with("running: smartem-init (PID 1)"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        pid1.contains("uid            5000 5000 5000 5000"),
        "{pid1}"
    );
    assert!(
        pid1.contains("no_new_privs   1") && pid1.contains("effective      none"),
        "{pid1}"
    );
    assert!(pid1.contains("runs as planned"), "{pid1}");
    let svc = out
        .split("\n\n")
        .find(|s| s.starts_with("running: service smartem-testsvc"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        svc.contains("uid            5000 5000 5000 5000") && svc.contains("bounding       none"),
        "{svc}"
    );
    // Docker's default profile is the service's one filter (none added),
    // and the plan's confinement is shown beside it.
    assert!(svc.contains("seccomp        2 (1 filter(s))"), "{svc}");
    assert!(
        out.contains("data dir rule  read-only to the service (Landlock ABI"),
        "{out}"
    );
    assert!(
        out.contains("seccomp plan   the runtime's filter kept"),
        "{out}"
    );
}

/// `docker run -v` mounts read-write by default, and the image's uid owns
/// the files: Landlock alone keeps them unchanged. Under Docker's default
/// seccomp profile no filter is added (the runtime's is kept); with
/// `seccomp=unconfined` (Kubernetes' default) the baseline is there.
#[test]
fn a_read_write_volume_stays_read_only_and_docker_s_profile_is_kept() {
    if !docker_ok() {
        return;
    }
    images();
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let dls = base.path().join("dls");
    std::fs::create_dir_all(dls.join("empty")).unwrap();
    std::fs::write(dls.join("f"), "data\n").unwrap();
    for p in [dls.clone(), dls.join("empty"), dls.join("f")] {
        nix::unistd::chown(p.as_path(), Some(5000.into()), Some(5000.into())).unwrap();
    }
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let vol = format!("{}:/dls", dls.display());
    let args = [
        "-v",
        &vol,
        "--tmpfs",
        "/out:uid=5000,gid=5000",
        "-e",
        "SMARTEM_DATA_DIR=/dls",
    ];
    let (code, out, err) = run_svc(
        SVC_IMG,
        &args,
        &["--", "/smartem-testsvc", "attack", "/dls", "/out"],
    );
    assert_eq!(code, 0, "{out}{err}");
    for op in [
        "write",
        "truncate",
        "create",
        "unlink",
        "rename-out",
        "mkdir",
        "link",
    ] {
        assert!(out.contains(&format!("{op}: refused")), "{op}\n{out}{err}");
    }
    assert!(
        out.contains("read: ok data") && out.contains("outside: ok"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(dls.join("f")).unwrap(), "data\n");
    assert!(err.contains("the runtime's filter kept"), "{err}");
    let (_, status, _) = run_svc(SVC_IMG, &[], &["--", "/smartem-testsvc", "status"]);
    assert!(
        status.contains("Seccomp_filters:\t1"),
        "docker's only: {status}"
    );

    let unconfined = ["--security-opt", "seccomp=unconfined"];
    let (code, out, err) = run_svc(SVC_IMG, &unconfined, &["--", "/smartem-testsvc", "escape"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("unshare-user: errno {}", libc::EPERM)),
        "{out}"
    );
    assert!(
        out.contains(&format!("clone3: errno {}", libc::ENOSYS)),
        "{out}"
    );
    assert!(err.contains("baseline filter added"), "{err}");
}
