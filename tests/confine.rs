//! Confinement as the service meets it: from inside the service, every way
//! of changing the data dir is refused while reads work (Landlock), and the
//! escape interfaces are refused while the rest works (the baseline seccomp
//! filter); the opt-outs give them back, a runtime's own filter is kept,
//! and a runtime that blocks Landlock is a warning or, when required, 77.
//! Run as root in a PID namespace, the service dropped to 65534.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A data dir owned by the service's uid (so only Landlock can refuse),
/// holding `f` and `empty`, and a writable OUT beside it.
fn data_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let base = shared_tempdir();
    let dls = base.path().join("dls");
    let out = base.path().join("out");
    for d in [&dls, &out, &dls.join("empty")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(dls.join("f"), "data\n").unwrap();
    for p in [&dls, &out, &dls.join("empty"), &dls.join("f")] {
        nix::unistd::chown(p.as_path(), Some(65534.into()), Some(65534.into())).unwrap();
    }
    (base, dls, out)
}

/// Names and contents of the files in `dir` (and its directories' names),
/// to see that nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        // Regular files and directories only: a FIFO the attack made would
        // block the read.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_dir()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap_or_default())
        })
        .collect();
    v.sort();
    v
}

fn attack(extra: &[&str]) -> (i32, String, String, PathBuf, Vec<(String, String)>) {
    let (_base, dls, out) = data_dir();
    let before = snapshot(&dls);
    let svc = testsvc();
    let (d, o) = (dls.display().to_string(), out.display().to_string());
    let mut args = vec!["--user", "65534:65534", "--data-dir", &d];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", &svc, "attack", &d, &o]);
    let (code, stdout, stderr) = run_as_pid1(&args);
    let after = snapshot(&dls);
    assert!(before.len() >= 2);
    (
        code,
        stdout,
        stderr,
        dls,
        if after == before { vec![] } else { after },
    )
}

const CHANGES: &[&str] = &[
    "write",
    "append",
    "open-truncate",
    "truncate",
    "create",
    "mkdir",
    "rmdir",
    "unlink",
    "rename",
    "rename-out",
    "rename-in",
    "symlink",
    "link",
    "link-out",
    "mkfifo",
    "mknod",
    "socket",
];

#[test]
fn every_change_beneath_the_data_dir_is_refused_and_reads_work() {
    if !need_pid_ns() {
        return;
    }
    let (code, out, err, _dls, changed) = attack(&[]);
    assert_eq!(code, 0, "{out}{err}");
    for op in CHANGES {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{op}:")))
            .unwrap_or_default();
        assert!(line.contains("refused"), "{op}: {line}\n{out}");
    }
    assert!(out.contains("read: ok data"), "{out}");
    assert!(out.contains("list: ok"), "{out}");
    assert!(
        out.contains("outside: ok"),
        "writes beside the data dir work: {out}"
    );
    assert!(changed.is_empty(), "the data changed: {changed:?}");
    assert!(
        err.contains("read-only to the service (Landlock ABI"),
        "{err}"
    );
}

#[test]
fn data_dir_writable_gives_the_changes_back() {
    if !need_pid_ns() {
        return;
    }
    let (code, out, err, _dls, changed) = attack(&["--data-dir-writable"]);
    assert_eq!(code, 0, "{out}{err}");
    for op in [
        "write", "create", "mkdir", "symlink", "link", "mkfifo", "socket",
    ] {
        assert!(out.contains(&format!("{op}: ALLOWED")), "{op}\n{out}");
    }
    assert!(!changed.is_empty(), "the attack changed nothing: {out}");
    assert!(err.contains("writable to the service"), "{err}");
}

fn escape(env: &[(&str, &str)]) -> (i32, String, String) {
    let svc = testsvc();
    run_cmd(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(bin())
            .args(["--user", "65534:65534", "--", &svc, "escape"])
            .envs(env.iter().copied()),
    )
}

fn errno_of(out: &str, name: &str) -> i32 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: errno ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

#[test]
fn the_baseline_refuses_the_escape_interfaces_and_off_allows_them() {
    if !need_pid_ns() {
        return;
    }
    let (code, out, err) = escape(&[]);
    assert_eq!(code, 0, "{out}{err}");
    for name in ["unshare-user", "io_uring_setup", "keyctl", "bpf"] {
        assert_eq!(errno_of(&out, name), libc::EPERM, "{name}: {out}");
    }
    assert_eq!(errno_of(&out, "clone3"), libc::ENOSYS, "{out}");
    assert_eq!(errno_of(&out, "getppid"), 0);
    assert!(err.contains("baseline filter added"), "{err}");

    let (code, out, err) = escape(&[("SMARTEM_SECCOMP", "off")]);
    assert_eq!(code, 0, "{out}{err}");
    // The kernel's own answers: a user namespace and an io_uring are made,
    // keyctl and bpf reject the bogus command, clone3 the missing argument.
    assert_eq!(errno_of(&out, "unshare-user"), 0, "{out}");
    assert_eq!(errno_of(&out, "io_uring_setup"), 0, "{out}");
    assert_eq!(errno_of(&out, "keyctl"), libc::EOPNOTSUPP, "{out}");
    assert_eq!(errno_of(&out, "bpf"), libc::EINVAL, "{out}");
    assert_eq!(errno_of(&out, "clone3"), libc::EINVAL, "{out}");
    assert!(err.contains("no filter added (--seccomp off)"), "{err}");
}

/// smartem-init started under a seccomp filter of a runtime's: `prog` as
/// (code, jt, jf, k) instructions, installed just before exec.
fn under_filter(
    prog: &'static [(u16, u8, u8, u32)],
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(bin())
        .args(args)
        .envs(env.iter().copied());
    // SAFETY: only prctl between fork and exec, on a program built before.
    unsafe {
        cmd.pre_exec(move || {
            let insns: Vec<libc::sock_filter> = prog
                .iter()
                .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
                .collect();
            let fprog = libc::sock_fprog {
                len: insns.len() as u16,
                filter: insns.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_cmd(&mut cmd)
}

const ALLOW_ALL: &[(u16, u8, u8, u32)] = &[(0x06, 0, 0, 0x7fff_0000)];
/// landlock_create_ruleset (444 on both architectures) gets ENOSYS, as
/// from a runtime profile that predates Landlock.
const NO_LANDLOCK: &[(u16, u8, u8, u32)] = &[
    (0x20, 0, 0, 0),
    (0x15, 0, 1, 444),
    (0x06, 0, 0, 0x0005_0000 | libc::ENOSYS as u32),
    (0x06, 0, 0, 0x7fff_0000),
];

#[test]
fn a_runtime_filter_is_kept_and_always_adds_the_baseline_on_top() {
    if !need_pid_ns() {
        return;
    }
    let svc = testsvc();
    let args = ["--user", "65534:65534", "--", &svc, "status"];
    let (code, out, err) = under_filter(ALLOW_ALL, &args, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Seccomp_filters:\t1"),
        "the runtime's only: {out}"
    );
    assert!(err.contains("the runtime's filter kept"), "{err}");
    let (code, out, err) = under_filter(ALLOW_ALL, &args, &[("SMARTEM_SECCOMP", "always")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Seccomp_filters:\t2"),
        "the runtime's and ours: {out}"
    );
}

#[test]
fn landlock_blocked_by_the_runtime_warns_or_with_the_requirement_is_77() {
    if !need_pid_ns() {
        return;
    }
    let (_base, dls, _out) = data_dir();
    let d = dls.display().to_string();
    let svc = testsvc();
    let args = [
        "--user",
        "65534:65534",
        "--data-dir",
        &d,
        "--",
        &svc,
        "argv",
        "/dev/null",
        "ran",
    ];
    let (code, out, err) = under_filter(NO_LANDLOCK, &args, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let warning: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot be made read-only"))
        .collect();
    assert_eq!(warning.len(), 1, "one warning line: {err}");
    assert!(warning[0].contains("seccomp profile blocks"), "{err}");
    assert!(err.contains("service started"), "{err}");

    let (code, out, err) =
        under_filter(NO_LANDLOCK, &args, &[("SMARTEM_REQUIRE_CONFINEMENT", "1")]);
    assert_eq!(code, 77, "{out}{err}");
    assert!(err.contains("--require-confinement"), "{err}");
    assert!(!err.contains("service started"), "nothing ran: {err}");
    // The dry run predicts it.
    let mut dry = args.to_vec();
    dry.insert(0, "--dry-run");
    let (code, out, _) = under_filter(NO_LANDLOCK, &dry, &[("SMARTEM_REQUIRE_CONFINEMENT", "1")]);
    assert_eq!(code, 77, "{out}");
    assert!(out.contains("NOT protected"), "{out}");
}

#[test]
fn the_dry_run_shows_the_confinement_in_text_and_json() {
    let (_base, dls, _out) = data_dir();
    let d = dls.display().to_string();
    let (code, out, err) = run(&["--dry-run", "--data-dir", &d, "--", "true"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("read-only to the service (Landlock ABI"),
        "{out}"
    );
    assert!(out.contains(&format!("beneath {d}")), "{out}");
    let (code, out, _) = run(&[
        "--dry-run",
        "--format",
        "json",
        "--data-dir",
        &d,
        "--seccomp",
        "off",
        "--",
        "true",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = &v["confinement"];
    assert_eq!(c["landlock"]["data_dir"], "read-only");
    assert_eq!(c["landlock"]["rule"]["protected"][0], d.as_str());
    assert_eq!(c["seccomp"]["filter"], "off");
    let (code, out, _) = run(&[
        "--dry-run",
        "--format",
        "json",
        "--data-dir-writable",
        "--data-dir",
        &d,
        "--",
        "true",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["confinement"]["landlock"]["data_dir"], "writable");
    let (code, _, err) = run(&["--dry-run", "--seccomp", "sometimes", "--", "true"]);
    assert_eq!(code, 64);
    assert!(err.contains("use baseline, always or off"), "{err}");
}
