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
