//! The aarch64 binary (scripts/build arm64) under qemu-user
//! (qemu-aarch64-static from Debian's qemu-user-static): its PID-1 duties
//! and its privilege drop, as PID 1 of a PID namespace and as a subreaper,
//! read back from /proc. The services it starts are the host's own
//! programs (qemu-user runs a native program natively after execve), so
//! what is emulated is exactly smartem-init.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn arm64() -> Option<PathBuf> {
    let bin = std::env::var_os("SMARTEM_INIT_ARM64_BIN").map(PathBuf::from);
    let qemu = Command::new("qemu-aarch64-static")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = qemu && bin.as_ref().is_some_and(|b| b.exists());
    if prerequisite(
        ok,
        "no aarch64 binary (SMARTEM_INIT_ARM64_BIN, scripts/build arm64) or no qemu-aarch64-static",
    ) {
        bin
    } else {
        None
    }
}

/// qemu-aarch64-static BIN ARGS, optionally as PID 1 of a new namespace.
fn cmd(bin: &PathBuf, pid1: bool, args: &[&str]) -> Command {
    let mut c = if pid1 {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "qemu-aarch64-static"]);
        c
    } else {
        Command::new("qemu-aarch64-static")
    };
    c.arg(bin).args(args);
    c
}

#[test]
fn it_is_an_aarch64_static_binary_within_budget() {
    let Some(bin) = arm64() else { return };
    let (_, kind, _) = run_cmd(Command::new("file").arg("-b").arg(&bin));
    assert!(
        kind.contains("ARM aarch64") && kind.contains("statically linked"),
        "{kind}"
    );
    assert!(std::fs::metadata(&bin).unwrap().len() <= 512 * 1024);
}

#[test]
fn exit_codes_as_pid_1_and_as_a_subreaper() {
    let Some(bin) = arm64() else { return };
    for pid1 in [false, true] {
        if pid1 && !need_pid_ns() {
            continue;
        }
        for (script, want) in [
            ("exit 0", 0),
            ("exit 42", 42),
            ("kill -TERM $$", 143),
            ("kill -KILL $$", 137),
        ] {
            let (code, _, err) = run_cmd(&mut cmd(
                &bin,
                pid1,
                &["--data-dir", "/tmp", "sh", "-c", script],
            ));
            assert_eq!(code, want, "pid1 {pid1}, {script}: {err}");
        }
        let (code, _, _) = run_cmd(&mut cmd(&bin, pid1, &["no-such-program-xyz"]));
        assert_eq!(code, 127);
    }
}

#[test]
fn signals_are_forwarded_and_orphans_reaped_as_pid_1_and_as_a_subreaper() {
    let Some(bin) = arm64() else { return };
    let svc = testsvc();
    for pid1 in [false, true] {
        if pid1 && !need_pid_ns() {
            continue;
        }
        let d = shared_tempdir();
        let log = d.path().join("signals");
        let mut child = cmd(&bin, pid1, &[&svc, "signals", log.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let got = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_until(Duration::from_secs(10), "the service", || {
            got().contains("ready")
        });
        // The init is the emulator process (as PID 1: unshare's child).
        let init = if pid1 {
            children(child.id() as i32)[0].0
        } else {
            child.id() as i32
        };
        for sig in [libc::SIGUSR1, libc::SIGHUP, libc::SIGWINCH] {
            kill(init, sig);
            wait_until(Duration::from_secs(5), "the forwarded signal", || {
                got().lines().any(|l| l == sig.to_string())
            });
        }
        kill(init, libc::SIGTERM);
        let (code, _, err) = wait_output(&mut child, Duration::from_secs(10));
        assert_eq!(code, 0, "pid1 {pid1}: {err}");
        assert!(got().lines().any(|l| l == "15"), "{}", got());
    }
    // Orphans: 50 grandchildren left behind, reaped (no zombie) as PID 1.
    if need_pid_ns() {
        let (code, out, err) = run_cmd(&mut cmd(
            &bin,
            true,
            &["sh", "-c", "for i in $(seq 50); do (sleep 0.2 &) ; done; sleep 1; ps -eo stat= | grep -c '^Z' || true"],
        ));
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), "0", "zombies left: {out}");
    }
}

#[test]
fn the_privilege_drop_is_real_as_pid_1_and_as_a_subreaper() {
    let Some(bin) = arm64() else { return };
    if !need_root() {
        return;
    }
    for pid1 in [false, true] {
        if pid1 && !need_pid_ns() {
            continue;
        }
        let (code, out, err) = run_cmd(&mut cmd(
            &bin,
            pid1,
            &[
                "--user",
                "nobody",
                "--data-dir",
                "/tmp",
                "grep",
                "-E",
                "^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):",
                "/proc/self/status",
            ],
        ));
        assert_eq!(code, 0, "pid1 {pid1}: {err}");
        let field =
            |k: &str| smartem_init::status_field(&out, k).unwrap_or_else(|| panic!("{k} in {out}"));
        assert_eq!(field("Uid"), "65534\t65534\t65534\t65534");
        assert_eq!(field("Gid"), "65534\t65534\t65534\t65534");
        assert_eq!(field("Groups"), "");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(field(set), "0000000000000000", "{set}");
        }
        assert_eq!(field("NoNewPrivs"), "1");
    }
}
