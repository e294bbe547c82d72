//! The SmartEM roles with stand-in `python` and `uvicorn` on PATH that
//! record their argv: migration then API, failed or interrupted migration,
//! worker, overrides, .env, the data-dir check, doctor and healthcheck.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// python: `-m alembic` sleeps $MIGRATE_SLEEP then exits $MIGRATE_EXIT;
    /// anything else exits 0. uvicorn exits 0. Both append "$0 $*" to log.
    fn new() -> Fake {
        let dir = shared_tempdir();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("log");
        // The data dir's parent takes no new entries from the service
        // (Landlock keeps the data dir read-only): the log exists beforehand.
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        let script = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho \"{name} $*\" >> {}\n{body}\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "python",
            "if [ \"$2\" = alembic ]; then sleep ${MIGRATE_SLEEP:-0}; exit ${MIGRATE_EXIT:-0}; fi; exit 0",
        );
        script("uvicorn", "exit 0");
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::create_dir(dir.path().join("dls")).unwrap();
        Fake { dir }
    }
    fn app(&self) -> PathBuf {
        self.dir.path().join("app")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
    /// smartem-init with PATH leading to the fakes, workdir and data dir set.
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display()),
            )
            .env("SMARTEM_WORKDIR", self.app())
            .env("SMARTEM_DATA_DIR", self.dir.path().join("dls"));
        c
    }
}

const UVICORN_8000: &str =
    "uvicorn smartem_backend.api_server:app --host 0.0.0.0 --port 8000 --timeout-graceful-shutdown 20";

#[test]
fn api_runs_the_migration_then_uvicorn() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(&mut f.cmd());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        f.log(),
        format!("python -m alembic upgrade head\n{UVICORN_8000}\n")
    );
    assert!(
        !err.contains("warning"),
        "a readable data dir is silent: {err}"
    );
}

#[test]
fn http_api_port_sets_the_port_and_is_validated() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(f.cmd().env("HTTP_API_PORT", "9001").env("ROLE", ""));
    assert_eq!(code, 0, "{err}");
    assert!(f.log().contains("--port 9001 "), "{}", f.log());
    let (code, _, err) = run_cmd(f.cmd().env("HTTP_API_PORT", "http"));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("HTTP_API_PORT=\"http\""), "{err}");
}

#[test]
fn a_bad_http_api_port_is_refused_with_an_api_command_given_too() {
    // healthcheck probes HTTP_API_PORT whatever runs the api: a service
    // started beside a bad value would be unhealthy forever.
    let f = Fake::new();
    let (code, _, err) = run_cmd(
        f.cmd()
            .env("SMARTEM_API_CMD", "uvicorn other:app")
            .env("HTTP_API_PORT", "junk"),
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("HTTP_API_PORT=\"junk\""), "{err}");
    assert_eq!(f.log(), "", "nothing ran, not even the migration");
    // The worker has no HTTP port: the same value does not stop it.
    let f = Fake::new();
    let (code, _, err) = run_cmd(f.cmd().env("ROLE", "worker").env("HTTP_API_PORT", "junk"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_failed_migration_ends_with_its_code_and_no_api() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(f.cmd().env("MIGRATE_EXIT", "3"));
    assert_eq!(code, 3, "{err}");
    assert_eq!(f.log(), "python -m alembic upgrade head\n");
    assert!(
        err.contains("pre-start step")
            && err.contains("exit code 3")
            && err.contains("not started"),
        "{err}"
    );
}

#[test]
fn sigterm_during_the_migration_means_the_api_never_starts() {
    if !need_pid_ns() {
        return;
    }
    let f = Fake::new();
    let log = f.dir.path().join("log");
    let init = Pid1::start_with(&[], |c| {
        c.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", f.dir.path().join("bin").display()),
            )
            .env("SMARTEM_WORKDIR", f.app())
            .env("SMARTEM_DATA_DIR", f.dir.path().join("dls"))
            .env("MIGRATE_SLEEP", "30");
    });
    wait_until(Duration::from_secs(10), "the migration to start", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("alembic"))
    });
    init.signal(libc::SIGTERM);
    let (code, _, err) = init.wait(Duration::from_secs(20));
    assert_eq!(code, 143, "{err}");
    assert!(!f.log().contains("uvicorn"), "uvicorn ran: {}", f.log());
}

#[test]
fn worker_runs_the_consumer() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(f.cmd().env("ROLE", "worker"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(f.log(), "python -m smartem_backend.consumer\n");
}

#[test]
fn unknown_role_names_the_valid_ones() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(f.cmd().env("ROLE", "bogus"));
    assert_eq!(code, 64);
    assert!(
        err.contains("\"bogus\"") && err.contains("api, worker"),
        "{err}"
    );
    assert_eq!(f.log(), "");
}

#[test]
fn overrides_and_explicit_command() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(
        f.cmd()
            .env("SMARTEM_API_CMD", "uvicorn other:app --root-path '/a b'")
            .env("SMARTEM_SKIP_MIGRATIONS", "1"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(f.log(), "uvicorn other:app --root-path /a b\n");
    let f = Fake::new();
    let (code, _, err) =
        run_cmd(
            f.cmd()
                .args(["--role", "worker", "--worker-cmd", "python -m other"]),
        );
    assert_eq!(code, 0, "{err}");
    assert_eq!(f.log(), "python -m other\n");
    let f = Fake::new();
    let (code, _, err) = run_cmd(f.cmd().args(["--", "uvicorn", "direct"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        f.log(),
        "uvicorn direct\n",
        "-- overrides the role entirely (no migration)"
    );
}

#[test]
fn dry_run_shows_each_case() {
    let f = Fake::new();
    let (code, out, err) = run_cmd(f.cmd().arg("--dry-run"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("role           api"), "{out}");
    assert!(
        out.contains("pre-start") && out.contains("/bin/python -m alembic upgrade head"),
        "{out}"
    );
    assert!(
        out.contains("/bin/uvicorn smartem_backend.api_server:app --host 0.0.0.0 --port 8000"),
        "{out}"
    );
    let (_, out, _) = run_cmd(f.cmd().args(["--dry-run", "--role", "worker"]));
    assert!(
        out.contains("/bin/python -m smartem_backend.consumer") && !out.contains("pre-start"),
        "{out}"
    );
    let (_, out, _) = run_cmd(f.cmd().args(["--dry-run", "--skip-migrations"]));
    assert!(!out.contains("pre-start"), "{out}");
    let (_, out, _) = run_cmd(f.cmd().args(["--dry-run", "--", "uvicorn", "x"]));
    assert!(out.contains("role           none"), "{out}");
    assert_eq!(f.log(), "", "dry runs ran something");
}

fn env_probe(f: &Fake, extra: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = f.cmd();
    for (k, v) in extra {
        c.env(k, v);
    }
    run_cmd(c.args(["--", "sh", "-c", "echo FOO=$FOO BAR=$BAR"]))
}

#[test]
fn dotenv_is_loaded_the_environment_wins_and_kubernetes_skips_it() {
    let f = Fake::new();
    std::fs::write(
        f.app().join(".env"),
        "# settings\nFOO=fromfile\nexport BAR='b c'\n",
    )
    .unwrap();
    let (code, out, err) = env_probe(&f, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "FOO=fromfile BAR=b c");
    assert!(err.contains("loaded 2 variable(s): FOO, BAR"), "{err}");
    assert!(
        !err.contains("b c") && !err.contains("fromfile"),
        "values must never be logged: {err}"
    );
    let (_, out, _) = env_probe(&f, &[("FOO", "real")]);
    assert_eq!(out.trim(), "FOO=real BAR=b c");
    let (_, out, _) = env_probe(&f, &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
    assert_eq!(out.trim(), "FOO= BAR=");
    std::fs::write(f.app().join(".env"), "FOO=1\nthis is not a variable\n").unwrap();
    let (code, out, err) = env_probe(&f, &[]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(".env line 2"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn role_and_port_from_dotenv_count_as_in_the_bash_entrypoint() {
    let f = Fake::new();
    std::fs::write(f.app().join(".env"), "ROLE=api\nHTTP_API_PORT=9100\n").unwrap();
    let (code, _, err) = run_cmd(f.cmd().arg("--skip-migrations"));
    assert_eq!(code, 0, "{err}");
    assert!(f.log().contains("--port 9100 "), "{}", f.log());
    std::fs::write(f.app().join(".env"), "ROLE=worker\n").unwrap();
    let f2_log_before = f.log();
    let (code, _, err) = run_cmd(&mut f.cmd());
    assert_eq!(code, 0, "{err}");
    assert!(
        f.log()[f2_log_before.len()..].contains("smartem_backend.consumer"),
        "{}",
        f.log()
    );
}

#[test]
fn missing_explicit_workdir_is_78() {
    let f = Fake::new();
    let (code, _, err) = run_cmd(
        f.cmd()
            .env("SMARTEM_WORKDIR", f.dir.path().join("nope"))
            .args(["--", "true"]),
    );
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("workdir") && err.contains("nope"), "{err}");
}

/// Runs `true` as uid 65534 with the data dir at `dls`.
fn data_dir_run(dls: &Path, require: bool) -> (i32, String) {
    let mut c = Command::new(bin());
    c.args(["--user", "65534", "--data-dir", dls.to_str().unwrap()]);
    if require {
        c.arg("--require-data-dir");
    }
    let (code, _, err) = run_cmd(c.args(["--", "true"]));
    (code, err)
}

#[test]
fn data_dir_checked_as_the_service_user() {
    if !need_root() {
        return;
    }
    let d = shared_tempdir();
    let (code, err) = data_dir_run(&d.path().join("absent"), false);
    assert_eq!(code, 0, "absent is a warning only: {err}");
    assert!(
        err.contains("is absent") && err.contains("uid 65534"),
        "{err}"
    );

    let locked = d.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, err) = data_dir_run(&locked, false);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("permission denied (owner 0:0, mode 0700)")
            && err.contains("uid 65534")
            && err.contains("image endpoints will fail"),
        "{err}"
    );
    let (code, err) = data_dir_run(&locked, true);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("required"), "{err}");

    let open = d.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, err) = data_dir_run(&open, true);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("data dir"), "readable is silent: {err}");
}

#[test]
fn doctor_healthy_and_unhealthy_with_advice() {
    if !need_root() {
        return;
    }
    let d = shared_tempdir();
    let dls = d.path().join("dls");
    std::fs::create_dir(&dls).unwrap();
    std::fs::set_permissions(&dls, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A service that resolves, so only the data dir decides the verdict.
    let doctor = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(bin());
        c.env("SMARTEM_DATA_DIR", &dls)
            .env("SMARTEM_API_CMD", "/bin/true")
            .env("SMARTEM_SKIP_MIGRATIONS", "1")
            .arg("doctor")
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        run_cmd(&mut c)
    };
    let (code, out, err) = doctor(&[("SMARTEM_USER", "nobody")], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("healthy: no problem found"), "{out}");
    // Run as root in a plain shell: the caller's capabilities and
    // no_new_privs 0 are shown as what they are, never counted.
    assert!(
        out.contains("no_new_privs   0 (smartem-init sets it") && !out.contains("PROBLEM"),
        "{out}"
    );
    let (code, out, err) = doctor(&[], &[]);
    assert_eq!(
        code, 0,
        "keeping root's identity, capabilities dropped: {out}{err}"
    );
    for row in [
        "identity",
        "running as",
        "configured",
        "privileges",
        "no_new_privs",
        "service",
        "data dir",
        "owner, mode",
        "mount",
    ] {
        assert!(out.contains(row), "missing {row}: {out}");
    }

    std::fs::set_permissions(&dls, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, out, _) = doctor(&[("SMARTEM_USER", "nobody")], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PROBLEM") && out.contains(&format!("chmod o+rx {}", dls.display())),
        "{out}"
    );
    std::os::unix::fs::chown(&dls, Some(5000), Some(5000)).unwrap();
    let (code, out, _) = doctor(&[("SMARTEM_USER", "nobody")], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("runAsUser: 5000"), "{out}");

    let (code, out, _) = doctor(&[], &[d.path().join("missing").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("exists         no"), "{out}");

    // Started as uid 1000 while the image says 5000: the fix is runAsUser.
    std::fs::set_permissions(&dls, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = run_cmd(
        Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
            .arg(bin())
            .env("SMARTEM_USER", "5000:5000")
            .env("SMARTEM_DATA_DIR", &dls)
            .env("SMARTEM_API_CMD", "/bin/true")
            .env("SMARTEM_SKIP_MIGRATIONS", "1")
            .arg("doctor"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("runAsUser: 5000") && out.contains("started as uid=1000 gid=1000"),
        "{out}"
    );
    // Doctor explains the plan: --require-non-root counts there as at start.
    let (code, out, _) = doctor(
        &[("SMARTEM_USER", "root"), ("SMARTEM_REQUIRE_NON_ROOT", "1")],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("--require-non-root") && out.contains("exit 77 at start"),
        "{out}"
    );
    // And a command the service's user can't find or run.
    let (code, out, _) = doctor(
        &[
            ("SMARTEM_USER", "nobody"),
            ("SMARTEM_API_CMD", "no-such-server"),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no-such-server") && out.contains("exit 127 at start"),
        "{out}"
    );
}

/// A one-connection-at-a-time HTTP server on 127.0.0.1 answering `status`
/// after `delay`; returns its port.
fn serve(status: u16, delay: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /health HTTP/1.1\r\n"));
            std::thread::sleep(delay);
            let _ = conn
                .write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    port
}

#[test]
fn healthcheck_exit_codes() {
    let ok = serve(200, Duration::ZERO);
    let (code, _, err) = run(&["healthcheck", &format!("http://127.0.0.1:{ok}/health")]);
    assert_eq!(code, 0, "{err}");
    // The default URL is built from HTTP_API_PORT.
    let (code, _, err) = run_cmd(
        Command::new(bin())
            .env("HTTP_API_PORT", ok.to_string())
            .arg("healthcheck"),
    );
    assert_eq!(code, 0, "{err}");

    let bad = serve(503, Duration::ZERO);
    let (code, _, err) = run(&["healthcheck", &format!("http://127.0.0.1:{bad}/health")]);
    assert_eq!(code, 1);
    assert!(err.contains("503"), "{err}");

    let slow = serve(200, Duration::from_secs(3));
    let (code, _, err) = run(&[
        "healthcheck",
        "--timeout",
        "0.5",
        &format!("http://127.0.0.1:{slow}/health"),
    ]);
    assert_eq!(code, 1, "a slow answer is a failure: {err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = run(&["healthcheck", &format!("http://127.0.0.1:{closed}/health")]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");

    let (code, _, _) = run(&["healthcheck", "https://127.0.0.1/health"]);
    assert_eq!(code, 64);
}

#[test]
fn healthcheck_sees_the_port_and_role_from_dotenv_as_the_service_does() {
    let f = Fake::new();
    let ok = serve(200, Duration::ZERO);
    // The service would listen on the .env port, so that is what is probed.
    std::fs::write(f.app().join(".env"), format!("HTTP_API_PORT={ok}\n")).unwrap();
    let (code, _, err) = run_cmd(f.cmd().arg("healthcheck"));
    assert_eq!(code, 0, "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(f.app().join(".env"), format!("HTTP_API_PORT={closed}\n")).unwrap();
    let (code, _, err) = run_cmd(f.cmd().arg("healthcheck"));
    assert_eq!(code, 1);
    assert!(err.contains(&format!("127.0.0.1:{closed}/health")), "{err}");
    // The real environment wins over .env, as for the service.
    let (code, _, err) = run_cmd(
        f.cmd()
            .env("HTTP_API_PORT", ok.to_string())
            .arg("healthcheck"),
    );
    assert_eq!(code, 0, "{err}");
    // Under Kubernetes .env is not read, by the service or the check.
    let (code, _, _) = run_cmd(
        f.cmd()
            .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
            .arg("healthcheck"),
    );
    assert_eq!(code, 1, "default port 8000 has nothing listening");
    // ROLE=worker from .env: no HTTP probe; not PID 1 here, so no service.
    std::fs::write(
        f.app().join(".env"),
        format!("ROLE=worker\nHTTP_API_PORT={ok}\n"),
    )
    .unwrap();
    let (code, _, err) = run_cmd(f.cmd().arg("healthcheck"));
    assert_eq!(code, 1);
    assert!(
        err.contains("healthcheck (worker)") && err.contains("no smartem-init"),
        "{err}"
    );
}

/// `smartem-init healthcheck` run inside `init`'s PID and mount namespace,
/// with `env`: what a probe exec'd into the container does.
fn healthcheck_in(init: &Pid1, env: &[(&str, String)]) -> (i32, String, String) {
    let mut c = Command::new("nsenter");
    c.arg(format!("--target={}", init.pid))
        .args(["--pid", "--mount"])
        .arg(bin())
        .arg("healthcheck")
        .env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    run_cmd(&mut c)
}

#[test]
fn worker_healthcheck_needs_the_running_service_and_its_broker_connection() {
    if !need_pid_ns() {
        return;
    }
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = broker.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in broker.incoming().take(4).flatten() {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let svc = testsvc();
    for (worker_cmd, broker_env, healthy) in [
        (format!("{svc} connect 127.0.0.1:{port}"), true, true),
        (format!("{svc} sleep"), true, false),
        (format!("{svc} sleep"), false, true),
    ] {
        let mut env = vec![
            ("ROLE", "worker".to_string()),
            ("SMARTEM_WORKER_CMD", worker_cmd.clone()),
            ("SMARTEM_DATA_DIR", "/tmp".to_string()),
            ("PATH", "/usr/bin:/bin".to_string()),
        ];
        if broker_env {
            env.push(("RABBITMQ_PORT", port.to_string()));
        }
        let init = Pid1::start_with(&[], |c| {
            c.env_clear();
            for (k, v) in &env {
                c.env(k, v);
            }
        });
        wait_until(Duration::from_secs(5), "the worker to start", || {
            !children(init.pid).is_empty()
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let (code, out, err) = loop {
            let r = healthcheck_in(&init, &env);
            if r.0 == 0 || !healthy || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if healthy {
            assert_eq!(
                code, 0,
                "{worker_cmd} (RABBITMQ_PORT: {broker_env}): {out}{err}"
            );
        } else {
            assert_eq!(code, 1, "{worker_cmd}: {out}{err}");
            assert!(
                err.contains(&format!(
                    "no established connection to RABBITMQ_PORT {port}"
                )),
                "{err}"
            );
        }
        init.signal(libc::SIGTERM);
        let (code, _, err) = init.wait(Duration::from_secs(5));
        // connect exits 0 on SIGTERM; sleep keeps the default and dies of it.
        let stopped = if worker_cmd.contains("connect") {
            0
        } else {
            143
        };
        assert_eq!(code, stopped, "{err}");
    }
}

#[test]
fn a_denied_exec_names_the_uid_and_the_directory_and_the_dry_run_predicts_it() {
    if !need_root() {
        return;
    }
    // /opt/app/bin/serve behind a 0700 directory, reached through a symlink:
    // root can stat it, uid 65534 can't search its way there.
    let t = shared_tempdir();
    let private = t.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::copy(testsvc(), private.join("serve")).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&private, t.path().join("app")).unwrap();
    let via_link = t.path().join("app/serve");
    let run = |dry: bool| {
        let mut c = Command::new(bin());
        c.args(["--user", "65534:65534", "--data-dir", "/tmp"]);
        if dry {
            c.arg("--dry-run");
        }
        run_cmd(c.arg("--").arg(&via_link).arg("status"))
    };
    for dry in [true, false] {
        let (code, out, err) = run(dry);
        assert_eq!(code, 126, "dry {dry}: {out}{err}");
        let line = err.lines().last().unwrap_or("");
        assert!(
            line.contains(&format!("directory {}", private.display()))
                && line.contains("mode 0700")
                && line.contains("denies search to uid 65534"),
            "dry {dry}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.contains("error")).count(),
            1,
            "{err}"
        );
    }
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = run(false);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_failed_migration_names_its_command_workdir_and_the_missing_alembic_ini() {
    let f = Fake::new();
    let (code, out, err) = run_cmd(f.cmd().env("MIGRATE_EXIT", "2").arg("--dry-run"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("alembic.ini is missing"),
        "the dry run warns: {out}"
    );
    let (code, _, err) = run_cmd(f.cmd().env("MIGRATE_EXIT", "2"));
    assert_eq!(code, 2, "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("pre-start step `"))
        .expect(&err);
    assert!(
        line.contains("`python -m alembic upgrade head`")
            && line.contains(&format!("in {}", f.app().display()))
            && line.contains("failed with exit code 2")
            && line.contains("alembic.ini is missing"),
        "{line}"
    );
    std::fs::write(f.app().join("alembic.ini"), "[alembic]\n").unwrap();
    let (code, _, err) = run_cmd(f.cmd().env("MIGRATE_EXIT", "2"));
    assert_eq!(code, 2);
    assert!(!err.contains("alembic.ini is missing"), "{err}");
}

#[test]
fn doctor_exec_d_into_a_running_container_reports_pid_1_and_the_service() {
    if !need_pid_ns() {
        return;
    }
    // smartem-init as PID 1 dropped to nobody, its service sleeping; then
    // doctor run the way `kubectl exec` runs it: a new process in the
    // namespace, as root here (crun exec's default).
    let svc = testsvc();
    let init = Pid1::start(&[
        "--user",
        "nobody",
        "--data-dir",
        "/tmp",
        "--",
        &svc,
        "sleep",
    ]);
    wait_until(Duration::from_secs(5), "the service", || {
        !children(init.pid).is_empty()
    });
    let (code, out, err) = run_cmd(
        Command::new("nsenter")
            .arg(format!("--target={}", init.pid))
            .args(["--pid", "--mount"])
            .arg(bin())
            .args(["doctor", "--user", "nobody", "--data-dir", "/tmp"])
            .env("SMARTEM_API_CMD", "/bin/true")
            .env("SMARTEM_SKIP_MIGRATIONS", "1"),
    );
    let section = |title: &str| {
        out.split("\n\n")
            .find(|s| s.starts_with(title))
            .unwrap_or_else(|| panic!("no {title} section: {out}{err}"))
            .to_string()
    };
    let pid1 = section("running: smartem-init (PID 1)");
    assert!(
        pid1.contains("uid            65534 65534 65534 65534"),
        "{pid1}"
    );
    assert!(
        pid1.contains("effective      none") && pid1.contains("bounding       none"),
        "{pid1}"
    );
    assert!(pid1.contains("no_new_privs   1"), "{pid1}");
    assert!(pid1.contains("OK      runs as planned"), "{pid1}");
    let service = section("running: service smartem-testsvc");
    assert!(
        service.contains("uid            65534 65534 65534 65534"),
        "{service}"
    );
    assert!(service.contains("no_new_privs   1"), "{service}");
    // The exec'd doctor itself is root with every capability: reported too,
    // but not mistaken for the service.
    assert!(out.contains("running as     uid=0"), "{out}");
    assert_eq!(code, 0, "{out}{err}");
    init.signal(libc::SIGTERM);
    let _ = init.wait(Duration::from_secs(5));
}
