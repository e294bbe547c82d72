//! PID-1 duties, checked from outside a real PID namespace: signals reach
//! the service, orphans are reaped, the grace period ends in SIGKILL, exit
//! codes pass through, nothing arriving early is lost; and as a plain
//! child: subreaper adoption, transparent signal state, no leaked fds.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn every_catchable_signal_reaches_the_service() {
    if !need_pid_ns() {
        return;
    }
    let dir = shared_tempdir();
    let log = dir.path().join("signals");
    let log_s = log.to_str().unwrap();
    let svc = testsvc();
    let init = Pid1::start(&["--", &svc, "signals", log_s]);
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(T, "the service to be ready", || lines().contains("ready"));
    for sig in [
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGALRM,
        libc::SIGCONT,
        libc::SIGRTMIN() + 3,
    ] {
        init.signal(sig);
        wait_until(T, &format!("signal {sig} to reach the service"), || {
            lines().lines().any(|l| l == sig.to_string())
        });
    }
    init.signal(libc::SIGTERM);
    let (code, _, err) = init.wait(T);
    assert!(
        lines().lines().any(|l| l == libc::SIGTERM.to_string()),
        "SIGTERM not received"
    );
    assert_eq!(
        code, 0,
        "the service's clean exit on SIGTERM is the exit code; stderr: {err}"
    );
}

#[test]
fn an_idle_init_never_wakes_up() {
    if !need_pid_ns() {
        return;
    }
    let init = Pid1::start(&["-q", "--", "sleep", "60"]);
    wait_until(T, "the service to start", || !children(init.pid).is_empty());
    let switches = || {
        ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
            .map(|k| status_field(init.pid, k).expect("init's status"))
    };
    // Settled: the service has exec'd sleep and the init waits for signals
    // (its wchan, the kernel function it sleeps in); the window below is
    // the measurement, not a wait.
    wait_until(T, "the init to wait for signals", || {
        let svc = children(init.pid).first().map(|c| c.0);
        svc.is_some_and(|s| {
            std::fs::read_to_string(format!("/proc/{s}/comm")).is_ok_and(|c| c.trim() == "sleep")
        }) && std::fs::read_to_string(format!("/proc/{}/wchan", init.pid))
            .is_ok_and(|w| w.contains("sigtimedwait"))
    });
    let before = switches();
    std::thread::sleep(Duration::from_millis(2500));
    // A periodic timer (tini wakes every second) would show here.
    assert_eq!(switches(), before, "the idle init was scheduled");
    init.signal(libc::SIGTERM);
    let (code, _, err) = init.wait(T);
    assert_eq!(code, 143, "{err}");
}

#[test]
fn a_hundred_orphans_are_all_reaped() {
    if !need_pid_ns() {
        return;
    }
    let dir = shared_tempdir();
    let flag = dir.path().join("spawned");
    let script = format!(
        "for i in $(seq 100); do (sleep 1 &); done; touch {}; sleep 4",
        flag.display()
    );
    let init = Pid1::start(&["--", "sh", "-c", &script]);
    wait_until(T, "the orphans to be spawned", || flag.exists());
    // All 100 sleeps were re-parented to smartem-init (plus the service).
    let adopted = children(init.pid).len();
    assert!(adopted >= 100, "only {adopted} children under PID 1");
    // The orphans end after a second; reaped, they leave no entry at all (a
    // zombie is still a child). The service sleeps 3 s longer than they do.
    wait_until(T, "every orphan reaped, only the service left", || {
        children(init.pid).len() == 1
    });
    assert_ne!(children(init.pid)[0].1, 'Z', "the service is alive");
    let (code, _, err) = init.wait(T);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_the_grace_period() {
    if !need_pid_ns() {
        return;
    }
    let svc = testsvc();
    let init = Pid1::start(&["--grace-period", "1", "--", &svc, "ignore-term"]);
    // Ready when the kernel shows SIGTERM ignored in the service's SigIgn.
    let term = 1u64 << (libc::SIGTERM - 1);
    wait_until(T, "the service to ignore SIGTERM", || {
        children(init.pid).first().is_some_and(|&(svc, _)| {
            status_field(svc, "SigIgn")
                .and_then(|m| u64::from_str_radix(&m, 16).ok())
                .is_some_and(|m| m & term != 0)
        })
    });
    init.signal(libc::SIGTERM);
    let (code, _, err) = init.wait(T);
    assert_eq!(code, 137, "{err}");
    assert!(
        err.contains("grace period of 1.0s is over: sending SIGKILL"),
        "{err}"
    );
}

#[test]
fn sigterm_right_after_start_is_never_lost() {
    if !need_pid_ns() {
        return;
    }
    for delay_ms in 0..20u64 {
        let init = Pid1::start(&["-q", "--", "sleep", "100"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        init.signal(libc::SIGTERM);
        let (code, _, err) = init.wait(T);
        assert_eq!(code, 143, "SIGTERM {delay_ms} ms after start: {err}");
    }
}

#[test]
fn exit_codes_pass_through() {
    if !need_pid_ns() {
        return;
    }
    for (script, want) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 42", 42),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
        ("kill -SEGV $$", 139),
    ] {
        let (code, _, err) = run_as_pid1(&["-q", "--", "sh", "-c", script]);
        assert_eq!(code, want, "{script}: {err}");
    }
}

#[test]
fn not_found_and_not_executable_are_127_and_126() {
    let dir = tempfile::tempdir().unwrap();
    let noexec = dir.path().join("noexec");
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    let (code, _, err) = run(&["--", "definitely-not-a-command"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("\"definitely-not-a-command\" not found in PATH="),
        "{err}"
    );
    let (code, _, err) = run(&["--", noexec.to_str().unwrap()]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("not executable"), "{err}");
    let (code, _, err) = run(&["--", dir.path().to_str().unwrap()]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    // A script whose interpreter is missing fails at exec: still 127, and
    // reported as smartem-init's own failure, not as the service's exit.
    let badint = dir.path().join("badint");
    std::fs::write(&badint, "#!/nonexistent/interpreter\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&badint, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, err) = run(&["--", badint.to_str().unwrap()]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("cannot execute") && err.contains("interpreter"),
        "{err}"
    );
}

#[test]
fn not_pid_1_orphans_are_adopted_and_reaped() {
    let dir = shared_tempdir();
    let pidfile = dir.path().join("orphan");
    let script = format!("(sleep 1 & echo $! > {}); sleep 3", pidfile.display());
    let mut child = Command::new(bin())
        .args(["-q", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let init = child.id() as i32;
    wait_until(T, "the orphan's pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let orphan: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ppid = status_field(orphan, "PPid").expect("orphan alive");
    assert_eq!(
        ppid,
        init.to_string(),
        "the orphan was not adopted by smartem-init"
    );
    // Gone entirely (reaped, not a zombie) well before the service ends.
    wait_until(T, "the orphan to be reaped", || {
        std::fs::metadata(format!("/proc/{orphan}")).is_err()
    });
    let (code, _, err) = wait_output(&mut child, T);
    assert_eq!(code, 0, "{err}");
}

fn sig_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("Sig"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_service_inherits_the_mask_and_ignored_set_smartem_init_got() {
    let grep = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"];
    let (code, direct, _) =
        run_cmd(with_odd_inheritance(&mut Command::new(grep[0])).args(&grep[1..]));
    assert_eq!(code, 0);
    let direct = sig_lines(&direct);
    let mask = |lines: &[String], key: &str| {
        let v = lines.iter().find_map(|l| l.strip_prefix(key)).expect(key);
        u64::from_str_radix(v.trim(), 16).unwrap()
    };
    assert_ne!(
        mask(&direct, "SigBlk:") & (1 << (libc::SIGUSR1 - 1)),
        0,
        "setup: {direct:?}"
    );
    assert_ne!(
        mask(&direct, "SigIgn:") & (1 << (libc::SIGPIPE - 1)),
        0,
        "setup: {direct:?}"
    );
    let (code, via, err) = run_cmd(
        with_odd_inheritance(&mut Command::new(bin()))
            .arg("--")
            .args(grep),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sig_lines(&via),
        direct,
        "the service's signal state differs from what smartem-init inherited"
    );
    // And with nothing odd inherited, nothing odd is passed on (notably
    // SIGPIPE is not ignored, whatever Rust's runtime would do).
    let (_, plain_direct, _) = run_cmd(Command::new(grep[0]).args(&grep[1..]));
    let (_, plain, _) = run_cmd(Command::new(bin()).arg("--").args(grep));
    assert_eq!(sig_lines(&plain), sig_lines(&plain_direct));
    let plain = sig_lines(&plain);
    assert_eq!(
        mask(&plain, "SigIgn:") & (1 << (libc::SIGPIPE - 1)),
        0,
        "{plain:?}"
    );
    assert_eq!(mask(&plain, "SigBlk:"), 0, "{plain:?}");
}

#[test]
fn no_descriptor_leaks_into_the_service_and_inherited_ones_pass() {
    let ls = ["ls", "/proc/self/fd"];
    let (_, direct, _) = run_cmd(with_odd_inheritance(&mut Command::new(ls[0])).arg(ls[1]));
    let (code, via, err) = run_cmd(
        with_odd_inheritance(&mut Command::new(bin()))
            .arg("--")
            .args(ls),
    );
    assert_eq!(code, 0, "{err}");
    let fds = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert!(
        fds(&via).contains(&"5".to_string()),
        "inherited fd 5 missing: {via}"
    );
    assert_eq!(
        fds(&via),
        fds(&direct),
        "descriptors differ from a direct start"
    );
}

#[test]
fn without_a_tty_the_service_leads_its_own_session() {
    // /proc/self/stat of awk, the service itself: pid, pgrp, session.
    let (code, out, err) = run(&[
        "--",
        "awk",
        "{ print ($1 == $6) ? \"leader\" : \"member\" }",
        "/proc/self/stat",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "leader");
}

#[test]
fn with_a_tty_the_service_gets_the_foreground() {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !prerequisite(
        ok,
        "util-linux `script` is not installed (it provides a pty)",
    ) {
        return;
    }
    // pgrp (field 5) equals the terminal's foreground group (field 8).
    let inner = format!(
        "{} -q -- awk '{{ print ($5 == $8) ? \"FOREGROUND\" : \"BACKGROUND\" }}' /proc/self/stat",
        bin().display()
    );
    let (code, out, err) = run_cmd(Command::new("script").args(["-qec", &inner, "/dev/null"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("FOREGROUND"), "{out}");
}
