//! What users of tini, dumb-init and gosu rely on, written from the peers'
//! documented behaviour: a command without `--`, a quiet plain init, the
//! init's own working directory, gosu's user specs.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_command_without_dashes_runs_with_its_own_options() {
    // As a subreaper here, as PID 1 below.
    let (code, out, err) = run(&["sh", "-c", "echo \"$@\"; exit 3", "sh", "--user", "x", "-v"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        out.trim(),
        "--user x -v",
        "options after the command are the command's"
    );
    let (code, _, err) = run(&["--frobnicate"]);
    assert_eq!(
        code, 64,
        "an unknown option before any command is still an error: {err}"
    );
    if need_pid_ns() {
        let (code, _, err) = run_as_pid1(&["sh", "-c", "exit 3"]);
        assert_eq!(code, 3, "{err}");
    }
}

#[test]
fn a_plain_init_says_nothing_about_dls_but_a_role_does() {
    // No /dls on this machine: a role warns, a plain command does not.
    assert!(
        !std::path::Path::new("/dls").exists(),
        "this test assumes no /dls"
    );
    let (code, _, err) = run(&["true"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("/dls"), "plain init use is quiet: {err}");
    let (code, _, err) = run_cmd(
        Command::new(bin())
            .env("SMARTEM_WORKER_CMD", "true")
            .env("ROLE", "worker"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("data dir /dls is absent"), "{err}");
    // A data dir configured for a plain command is checked.
    let (code, _, err) = run(&["--data-dir", "/nonexistent/dls", "true"]);
    assert_eq!(code, 0);
    assert!(err.contains("/nonexistent/dls is absent"), "{err}");
}

#[test]
fn pid_1_leaves_its_starting_directory_the_service_keeps_its_own() {
    if !need_pid_ns() {
        return;
    }
    // The init changes to / once the service runs (dumb-init does), so it
    // pins no mount; the service stays where it was started.
    let d = shared_tempdir();
    let init = Pid1::start_with(
        &["--workdir", d.path().to_str().unwrap(), "sleep", "30"],
        |_| {},
    );
    wait_until(Duration::from_secs(5), "the service", || {
        !children(init.pid).is_empty()
    });
    let svc = children(init.pid)[0].0;
    wait_until(
        Duration::from_secs(2),
        "the init to leave its workdir",
        || {
            std::fs::read_link(format!("/proc/{}/cwd", init.pid))
                .is_ok_and(|p| p == std::path::Path::new("/"))
        },
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{svc}/cwd")).unwrap(),
        d.path()
    );
    init.signal(libc::SIGTERM);
    let (code, _, _) = init.wait(Duration::from_secs(5));
    assert_eq!(code, 143);
}

#[test]
fn a_subreaper_leaves_its_starting_directory_too() {
    let d = shared_tempdir();
    let mut child = Command::new(bin())
        .args(["--workdir", d.path().to_str().unwrap(), "sleep", "30"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let init = child.id() as i32;
    wait_until(Duration::from_secs(5), "the service", || {
        !children(init).is_empty()
    });
    let svc = children(init)[0].0;
    wait_until(
        Duration::from_secs(2),
        "the init to leave its workdir",
        || {
            std::fs::read_link(format!("/proc/{init}/cwd"))
                .is_ok_and(|p| p == std::path::Path::new("/"))
        },
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{svc}/cwd")).unwrap(),
        d.path()
    );
    kill(init, libc::SIGTERM);
    let (code, _, err) = wait_output(&mut child, Duration::from_secs(5));
    assert_eq!(code, 143, "{err}");
}

#[test]
fn gosu_user_specs_user_colon_and_colon_group() {
    if !need_root() {
        return;
    }
    let ids = |spec: &str| {
        let (code, out, err) = run(&[
            "--user",
            spec,
            "sh",
            "-c",
            "echo $(id -u) $(id -g) $(id -G)",
        ]);
        assert_eq!(code, 0, "{spec}: {err}");
        out.trim().to_string()
    };
    // USER: is the user with its primary group, as gosu resolves it.
    assert_eq!(ids("nobody:"), ids("nobody"));
    assert_eq!(
        ids("nobody:").split(' ').take(2).collect::<Vec<_>>(),
        ["65534", "65534"]
    );
    // :GROUP is the current user (root here) with that group.
    assert_eq!(
        ids(":nogroup").split(' ').take(2).collect::<Vec<_>>(),
        ["0", "65534"]
    );
}

/// Pids whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want))
        .filter(|p| status_field(*p, "State").is_some_and(|s| !s.starts_with('Z')))
        .collect()
}

#[test]
fn a_pipeline_is_gone_after_a_stop_as_pid_1_and_as_a_subreaper() {
    // Unique sleep lengths name this test's processes.
    for (pid1, a, b) in [(false, "1001.1", "1001.2"), (true, "1002.1", "1002.2")] {
        if pid1 && !need_pid_ns() {
            continue;
        }
        let script = format!("sleep {a} | sleep {b}");
        let (mut child, ns) = if pid1 {
            (None, Some(Pid1::start(&["sh", "-c", &script])))
        } else {
            let c = Command::new(bin())
                .args(["sh", "-c", &script])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (Some(c), None)
        };
        let init = ns
            .as_ref()
            .map_or_else(|| child.as_ref().unwrap().id() as i32, |p| p.pid);
        wait_until(Duration::from_secs(5), "the pipeline", || {
            !pids_running(&["sleep", a]).is_empty() && !pids_running(&["sleep", b]).is_empty()
        });
        kill(init, libc::SIGTERM);
        let (code, _, err) = match (child.as_mut(), ns) {
            (Some(c), _) => wait_output(c, Duration::from_secs(10)),
            (None, Some(p)) => p.wait(Duration::from_secs(10)),
            _ => unreachable!(),
        };
        assert_eq!(code, 143, "pid1 {pid1}: {err}");
        wait_until(
            Duration::from_secs(2),
            "every part of the pipeline to end",
            || pids_running(&["sleep", a]).is_empty() && pids_running(&["sleep", b]).is_empty(),
        );
    }
}

#[test]
fn a_pipeline_is_gone_after_a_stop_with_a_terminal_too() {
    // script(1) gives smartem-init a real pty on stdin: the service gets
    // its own process group in the terminal's foreground.
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !prerequisite(ok, "script (util-linux) provides the pty") {
        return;
    }
    let (a, b) = ("1003.1", "1003.2");
    let inner = format!("{} -qq sh -c 'sleep {a} | sleep {b}'", bin().display());
    let mut script = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(5), "the pipeline", || {
        !pids_running(&["sleep", a]).is_empty() && !pids_running(&["sleep", b]).is_empty()
    });
    let sleeper = pids_running(&["sleep", a])[0];
    let pgid = |p: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<i32>()
            .unwrap()
    };
    // smartem-init is the parent of the service (sh), the sleeps' parent.
    let sh = status_field(sleeper, "PPid")
        .unwrap()
        .parse::<i32>()
        .unwrap();
    let init = status_field(sh, "PPid").unwrap().parse::<i32>().unwrap();
    assert_ne!(
        pgid(sleeper),
        pgid(init),
        "the service has a group of its own"
    );
    kill(init, libc::SIGTERM);
    wait_until(
        Duration::from_secs(5),
        "every part of the pipeline to end",
        || pids_running(&["sleep", a]).is_empty() && pids_running(&["sleep", b]).is_empty(),
    );
    let _ = wait_output(&mut script, Duration::from_secs(10));
}

#[test]
fn rewritten_signals_reach_the_service_as_the_rewrite_says() {
    if !need_pid_ns() {
        return;
    }
    let d = shared_tempdir();
    let log = d.path().join("signals");
    let svc = testsvc();
    let init = Pid1::start(&[
        "--rewrite-signal",
        "HUP:USR2,USR1:0",
        "--rewrite-signal",
        "INT:TERM",
        &svc,
        "signals",
        log.to_str().unwrap(),
    ]);
    wait_until(Duration::from_secs(5), "the service", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
    });
    let got = || std::fs::read_to_string(&log).unwrap_or_default();
    init.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(2), "SIGUSR2 for SIGHUP", || {
        got().contains(&libc::SIGUSR2.to_string())
    });
    init.signal(libc::SIGUSR1);
    // A later signal shows the dropped one never came.
    init.signal(libc::SIGINT);
    let (code, _, err) = init.wait(Duration::from_secs(5));
    assert_eq!(
        code, 0,
        "the service saw SIGTERM (for SIGINT) and exited 0: {err}"
    );
    let lines: Vec<String> = got().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        ["ready", "12", "15"],
        "HUP as USR2, USR1 dropped, INT as TERM"
    );

    // The same as a subreaper.
    let log = d.path().join("signals-subreaper");
    let mut child = Command::new(bin())
        .args([
            "--rewrite-signal",
            "HUP:USR2",
            &svc,
            "signals",
            log.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let got = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(5), "the service", || {
        got().contains("ready")
    });
    kill(child.id() as i32, libc::SIGHUP);
    wait_until(Duration::from_secs(2), "SIGUSR2 for SIGHUP", || {
        got().contains("12")
    });
    kill(child.id() as i32, libc::SIGTERM);
    let (code, _, err) = wait_output(&mut child, Duration::from_secs(5));
    assert_eq!(code, 0, "{err}");
    assert_eq!(got().lines().collect::<Vec<_>>(), ["ready", "12", "15"]);
}

#[test]
fn a_listed_exit_code_is_reported_as_0_like_tini_e() {
    let (code, _, err) = run(&["--success-exit", "143", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exit code 143 reported as 0"), "{err}");
    let (code, _, _) = run(&["--success-exit", "143,130", "sh", "-c", "exit 130"]);
    assert_eq!(code, 0);
    let (code, _, _) = run(&["--success-exit", "143", "sh", "-c", "exit 3"]);
    assert_eq!(code, 3, "other codes pass through");
    let (code, _, _) = run_cmd(
        Command::new(bin())
            .env("SMARTEM_SUCCESS_EXIT", "3")
            .args(["sh", "-c", "exit 3"]),
    );
    assert_eq!(code, 0);
    if need_pid_ns() {
        let (code, _, err) = run_as_pid1(&["--success-exit", "143", "sh", "-c", "kill -TERM $$"]);
        assert_eq!(code, 0, "as PID 1 too: {err}");
    }
}

#[test]
fn ctrl_z_gives_the_prompt_back_and_fg_resumes_through_a_real_pty() {
    let ok = Command::new("python3")
        .args(["-c", "import pty"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("bash")
            .arg("-c")
            .arg("true")
            .status()
            .is_ok_and(|s| s.success());
    if !prerequisite(ok, "python3 (pty) and bash drive the pseudo-terminal") {
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tty/job_control.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(bin())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = wait_output(&mut child, Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("job control ok"), "{out}");
}

/// smartem-init ARGS with a real pty on its stdin (script(1)); the
/// process's exit code comes back through script -e.
fn with_tty(args: &[&str]) -> Option<std::process::Child> {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !prerequisite(ok, "script (util-linux) provides the pty") {
        return None;
    }
    let mut line = bin().display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(&format!("'{}'", a.replace('\'', r"'\''")));
    }
    Some(
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// The smartem-init that `script` (pid `script`) started: its child or
/// grandchild (script runs the line through $SHELL -c, which may exec it).
fn tty_init(script: u32) -> i32 {
    let ppid = |p: i32| {
        status_field(p, "PPid")
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0)
    };
    let mut found = 0;
    wait_until(Duration::from_secs(5), "smartem-init under script", || {
        found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "smartem-init")
                    && (ppid(*p) == script as i32 || ppid(ppid(*p)) == script as i32)
            })
            .unwrap_or(0);
        found != 0
    });
    found
}

#[test]
fn with_a_terminal_rewriting_and_remapping_work_alike() {
    // Rewriting: HUP arrives as USR2.
    let d = shared_tempdir();
    let log = d.path().join("tty-signals");
    let svc = testsvc();
    let Some(mut script) = with_tty(&[
        "--rewrite-signal",
        "HUP:USR2",
        &svc,
        "signals",
        log.to_str().unwrap(),
    ]) else {
        return;
    };
    let got = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(5), "the service", || {
        got().contains("ready")
    });
    let init = tty_init(script.id());
    kill(init, libc::SIGHUP);
    wait_until(Duration::from_secs(2), "SIGUSR2 for SIGHUP", || {
        got().contains("12")
    });
    kill(init, libc::SIGTERM);
    let (code, _, _) = wait_output(&mut script, Duration::from_secs(10));
    assert_eq!(code, 0);
    assert_eq!(got().lines().collect::<Vec<_>>(), ["ready", "12", "15"]);

    // Remapping: 143 reported as 0 through the terminal too.
    let mut script =
        with_tty(&["-qq", "--success-exit", "143", "sh", "-c", "kill -TERM $$"]).unwrap();
    let (code, out, err) = wait_output(&mut script, Duration::from_secs(10));
    assert_eq!(code, 0, "{out}{err}");
    let mut script = with_tty(&["-qq", "sh", "-c", "kill -TERM $$"]).unwrap();
    let (code, _, _) = wait_output(&mut script, Duration::from_secs(10));
    assert_eq!(code, 143, "without the remap");
}
