//! The privilege drop, proven by what the kernel reports for the service
//! (and for smartem-init itself): ids, groups, every capability set,
//! NoNewPrivs, securebits; and the refusals that keep it from ever running
//! anything as root by accident.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
smartem:x:5000:5000:smartem:/home/smartem:/sbin/nologin\n";
const GROUP: &str =
    "root:x:0:\nnogroup:x:65534:\nsmartem:x:5000:\ndls:x:6000:smartem\nbeam:x:6001:other,smartem\n";

fn etc() -> tempfile::TempDir {
    let d = shared_tempdir();
    std::fs::write(d.path().join("passwd"), PASSWD).unwrap();
    std::fs::write(d.path().join("group"), GROUP).unwrap();
    d
}

/// smartem-init with the test passwd/group files, as a plain child.
fn init(etc: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("SMARTEM_ETC_DIR", etc).env("HOME", "/root").arg("-q");
    c
}

fn status_of(out: &str, key: &str) -> String {
    smartem_init::status_field(out, key).unwrap_or_else(|| panic!("no {key} in {out}"))
}

fn assert_fully_dropped(out: &str, uid: &str, gid: &str, groups: &str) {
    assert_eq!(status_of(out, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(status_of(out, "Gid"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
    assert_eq!(status_of(out, "Groups"), groups);
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_of(out, cap), "0000000000000000", "{cap}");
    }
    assert_eq!(status_of(out, "NoNewPrivs"), "1");
}

#[test]
fn nobody_has_no_groups_no_capabilities_and_no_new_privs() {
    if !need_root() {
        return;
    }
    let e = etc();
    let (code, out, err) =
        run_cmd(init(e.path()).args(["--user", "65534:65534", "--", "cat", "/proc/self/status"]));
    assert_eq!(code, 0, "{err}");
    assert_fully_dropped(&out, "65534", "65534", "");
}

#[test]
fn supplementary_groups_come_from_etc_group() {
    if !need_root() {
        return;
    }
    let e = etc();
    let (code, out, err) =
        run_cmd(init(e.path()).args(["--user", "smartem", "--", "cat", "/proc/self/status"]));
    assert_eq!(code, 0, "{err}");
    assert_fully_dropped(&out, "5000", "5000", "6000 6001");
}

#[test]
fn the_pid_1_init_itself_runs_as_the_dropped_user() {
    if !need_pid_ns() {
        return;
    }
    let e = etc();
    let etc_dir = format!("--etc-dir={}", e.path().display());
    let init = Pid1::start(&[&etc_dir, "--user", "65534", "--", "sleep", "2"]);
    wait_until(Duration::from_secs(10), "the service to start", || {
        !children(init.pid).is_empty()
    });
    assert_eq!(
        status_field(init.pid, "Uid").unwrap(),
        "65534\t65534\t65534\t65534"
    );
    assert_eq!(
        status_field(init.pid, "Gid").unwrap(),
        "65534\t65534\t65534\t65534"
    );
    assert_eq!(
        status_field(init.pid, "CapEff").unwrap(),
        "0000000000000000"
    );
    assert_eq!(status_field(init.pid, "NoNewPrivs").unwrap(), "1");
    let (code, _, err) = init.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_setuid_root_program_cannot_regain_root() {
    if !need_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = shared_tempdir();
    let id = d.path().join("id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::os::unix::fs::chown(&id, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let id = id.to_str().unwrap();
    // The copy really is setuid root: without no_new_privs it gives euid 0.
    let (_, plain, _) = run_cmd(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        id,
        "-u",
    ]));
    if !prerequisite(
        plain.trim() == "0",
        "the temp dir is mounted nosuid, so the setuid test proves nothing",
    ) {
        return;
    }
    let e = etc();
    let (code, out, err) = run_cmd(init(e.path()).args(["--user", "65534", "--", id, "-u"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "65534");
}

#[test]
fn gosu_style_user_spec_matrix() {
    if !need_root() {
        return;
    }
    let e = etc();
    for (spec, want) in [
        ("0", "0 0 0 /root"),
        ("0:0", "0 0 0 /root"),
        ("root", "0 0 0 /root"),
        ("65534", "65534 65534 65534 /nonexistent"),
        ("nobody", "65534 65534 65534 /nonexistent"),
        ("nobody:nogroup", "65534 65534 65534 /nonexistent"),
        ("65534:0", "65534 0 0 /nonexistent"),
        ("1000", "1000 1000 1000 /"),
        ("smartem", "5000 5000 5000 6000 6001 /home/smartem"),
        ("smartem:dls", "5000 6000 6000 6001 /home/smartem"),
    ] {
        let (code, out, err) = run_cmd(init(e.path()).args([
            "--user",
            spec,
            "--",
            "sh",
            "-c",
            "echo $(id -u) $(id -g) $(id -G) $HOME",
        ]));
        assert_eq!(code, 0, "{spec}: {err}");
        assert_eq!(out.trim(), want, "--user {spec}");
    }
}

#[test]
fn unresolvable_specs_fail_and_run_nothing() {
    if !need_root() {
        return;
    }
    let e = etc();
    let d = shared_tempdir();
    let marker = d.path().join("ran");
    for (spec, want) in [
        ("bogus", 67),
        ("0day", 67),
        ("0:bogus", 67),
        ("nobody:bogus", 67),
        ("-1", 64),
        ("a b", 64),
        ("4294967295", 64),
    ] {
        let (code, _, err) =
            run_cmd(init(e.path()).args(["--user", spec, "--", "touch", marker.to_str().unwrap()]));
        assert_eq!(code, want, "--user {spec:?}: {err}");
        assert!(!marker.exists(), "--user {spec:?} ran the command");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{:?}", spec.split(':').next_back().unwrap()))
                || err.contains(spec),
            "{err}"
        );
    }
}

#[test]
fn securebits_are_locked_when_nothing_is_kept() {
    if !need_root() {
        return;
    }
    let e = etc();
    let (code, out, err) = run_cmd(init(e.path()).args(["--user", "65534", "--", "setpriv", "-d"]));
    assert_eq!(code, 0, "{err}");
    let bits = out
        .lines()
        .find(|l| l.starts_with("Securebits:"))
        .expect(&out);
    // Older setpriv prints the two ambient bits as a number (0xc0).
    let rest = bits
        .strip_prefix("Securebits: noroot,noroot_locked,no_setuid_fixup,no_setuid_fixup_locked,keep_caps_locked,")
        .unwrap_or_else(|| panic!("{bits}"));
    assert!(
        matches!(
            rest,
            "no_cap_ambient_raise,no_cap_ambient_raise_locked" | "0xc0"
        ),
        "{bits}"
    );
    let (code, out, err) = run_cmd(init(e.path()).args([
        "--user",
        "65534",
        "--keep-cap",
        "NET_BIND_SERVICE",
        "--",
        "setpriv",
        "-d",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Securebits: [none]"), "{out}");
    assert!(
        out.contains("Ambient capabilities: net_bind_service"),
        "{out}"
    );
}

/// smartem-init started by setpriv as uid/gid 1000 (a non-root runtime user).
fn as_1000(e: &Path, args: &[&str]) -> (i32, String, String) {
    run_cmd(
        Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
            .arg(bin())
            .env("SMARTEM_ETC_DIR", e)
            .arg("-q")
            .args(args),
    )
}

#[test]
fn non_root_start_must_match_the_configured_user() {
    if !need_root() {
        return;
    }
    let e = etc();
    let (code, _, err) = as_1000(e.path(), &["--user", "5000:5000", "--", "true"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("uid=1000 gid=1000") && err.contains("uid=5000 gid=5000"),
        "{err}"
    );
    assert!(err.contains("runAsUser"), "{err}");
    let (code, out, err) = as_1000(e.path(), &["--", "sh", "-c", "echo $(id -u) $(id -g)"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1000 1000");
    let (code, out, err) = as_1000(
        e.path(),
        &[
            "--user",
            "1000",
            "--",
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ],
    );
    assert_eq!(code, 0, "same identity goes on: {err}");
    assert_eq!(
        out.trim(),
        "NoNewPrivs:\t1",
        "no_new_privs set on a non-root start too"
    );
}

#[test]
fn require_non_root_refuses_uid_0() {
    if !need_root() {
        return;
    }
    let e = etc();
    for args in [
        &["--require-non-root", "--user", "root", "--", "true"][..],
        &["--require-non-root", "--", "true"],
    ] {
        let (code, _, err) = run_cmd(init(e.path()).args(args));
        assert_eq!(code, 77, "{args:?}: {err}");
        assert!(err.contains("require-non-root"), "{err}");
    }
    let (code, _, err) = run_cmd(
        init(e.path())
            .env("SMARTEM_REQUIRE_NON_ROOT", "1")
            .args(["--user", "nobody", "--", "true"]),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn kept_net_bind_service_binds_port_80_and_nothing_else() {
    if !need_root() {
        return;
    }
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap_or_default();
    if !prerequisite(
        start.trim().parse::<u32>().is_ok_and(|p| p > 80),
        "port 80 is not privileged here",
    ) {
        return;
    }
    let e = etc();
    let svc = testsvc();
    let (code, out, err) = run_cmd(init(e.path()).args([
        "--user",
        "65534",
        "--keep-cap",
        "NET_BIND_SERVICE",
        "--",
        &svc,
        "bind",
        "127.0.0.1:80",
    ]));
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, err) =
        run_cmd(init(e.path()).args(["--user", "65534", "--", &svc, "bind", "127.0.0.1:80"]));
    assert_eq!(
        code, 1,
        "binding port 80 without the capability must fail: {out} {err}"
    );
    assert!(out.contains("ermission denied"), "{out}");
    let (code, out, err) = run_cmd(init(e.path()).args([
        "--user",
        "65534",
        "--keep-cap",
        "cap_net_bind_service",
        "--",
        "cat",
        "/proc/self/status",
    ]));
    assert_eq!(code, 0, "{err}");
    let bit = format!("{:016x}", 1u64 << 10);
    assert_eq!(status_of(&out, "CapAmb"), bit);
    assert_eq!(status_of(&out, "CapEff"), bit);
    assert_eq!(status_of(&out, "CapBnd"), bit);
    assert_eq!(status_of(&out, "CapInh"), bit);
}

#[test]
fn a_setuid_installation_refuses_to_run() {
    if !need_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = shared_tempdir();
    let copy = d.path().join("smartem-init");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let marker = d.path().join("ran");
    let (code, _, err) = run_cmd(
        Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
            .arg(&copy)
            .args(["--", "touch", marker.to_str().unwrap()]),
    );
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("installed setuid"), "{err}");
    assert!(!marker.exists());
}
