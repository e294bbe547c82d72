//! --dry-run: prints every decision, runs nothing, changes nothing, and
//! exits as the real run would.

mod common;
use common::*;

#[test]
fn dry_run_executes_nothing_and_its_json_holds_every_decision() {
    let dir = shared_tempdir();
    let marker = dir.path().join("marker");
    let (code, out, err) = run(&[
        "--dry-run",
        "--format",
        "json",
        "--grace-period",
        "7",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!marker.exists(), "--dry-run ran the command");
    let plan: serde_json::Value = serde_json::from_str(&out).expect("dry-run JSON parses");
    for key in [
        "supervision",
        "identity",
        "capabilities",
        "role",
        "pre_start",
        "service",
        "workdir",
        "env_added",
        "env_file",
        "data_dir",
        "grace_period_secs",
        "tty",
        "problems",
    ] {
        assert!(plan.get(key).is_some(), "missing {key} in {out}");
    }
    assert_eq!(plan["supervision"], "subreaper");
    assert_eq!(plan["grace_period_secs"], 7.0);
    assert_eq!(plan["service"]["argv"][0], "touch");
    assert!(plan["service"]["program"]
        .as_str()
        .unwrap()
        .ends_with("/touch"));
    assert_eq!(plan["data_dir"]["ok"], true);
    assert_eq!(plan["identity"]["uid"], nix::unistd::geteuid().as_raw());
    assert!(plan["capabilities"]["ambient"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn dry_run_as_pid_1_says_so_and_text_is_readable() {
    if !need_pid_ns() {
        return;
    }
    let (code, out, err) =
        run_as_pid1(&["--dry-run", "--role", "worker", "--worker-cmd", "sleep 1"]);
    assert_eq!(code, 0, "{err}");
    for row in [
        "supervision    PID 1",
        "role           worker",
        "service        ",
        "data dir",
    ] {
        assert!(out.contains(row), "missing {row:?} in\n{out}");
    }
}

#[test]
fn dry_run_fails_as_the_real_run_would() {
    let dir = shared_tempdir();
    let (code, out, err) = run(&["--dry-run", "--", "no-such-program-here"]);
    assert_eq!(code, 127, "{err}");
    assert!(out.contains("PROBLEM"), "the plan shows the problem: {out}");
    assert!(err.contains("no-such-program-here"), "{err}");
    let missing = dir.path().join("absent");
    let (code, _, err) = run(&[
        "--dry-run",
        "--require-data-dir",
        "--data-dir",
        missing.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("absent"), "{err}");
}

#[test]
fn usage_errors_are_one_line_and_64() {
    for args in [
        &["--no-such-flag"][..],
        &["--grace-period", "soon", "--", "true"],
        &["--format", "json"],
        &["--keep-cap", "CAP_FLY", "--", "true"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("smartem-init: error: "), "{err}");
        assert!(out.is_empty());
    }
    // An explicit command overrides the role, so a bad role is no error then.
    let (code, _, err) = run(&["-q", "--role", "bogus", "--", "true"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["--role", "bogus", "--dry-run"]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("\"bogus\"") && err.contains("api, worker"),
        "{err}"
    );
}

#[test]
fn help_and_version_exit_0() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for opt in [
        "--user",
        "--role",
        "--workdir",
        "--data-dir",
        "--require-data-dir",
        "--grace-period",
        "--require-non-root",
        "--keep-cap",
        "--skip-migrations",
        "--dry-run",
        "SMARTEM_USER",
        "ROLE",
    ] {
        assert!(out.contains(opt), "--help lacks {opt}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("smartem-init "));
}

#[test]
fn home_of_a_uid_without_passwd_entry_is_labelled_as_a_default() {
    if !need_root() {
        return;
    }
    let (code, out, err) = run(&[
        "--dry-run",
        "--user",
        "4321",
        "--data-dir",
        "/tmp",
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "{err}");
    let env = out
        .lines()
        .find(|l| l.trim_start().starts_with("environment"))
        .expect(&out);
    assert!(
        env.contains("HOME=/ (default: uid 4321 has no passwd entry)"),
        "{env}"
    );
    assert!(!env.contains("(passwd)"), "{env}");
    let (code, out, err) = run(&[
        "--dry-run",
        "--user",
        "nobody",
        "--data-dir",
        "/tmp",
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("HOME=/nonexistent (passwd)"), "{out}");
}
