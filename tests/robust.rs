//! Robust start-up: what an attacker or an unlucky operator found before
//! supervision began (issue "Robust start-up"): links at gen-etc's
//! destination, an environment too big for execve, descriptor limits, a user
//! namespace that denies setgroups, a kernel that refuses the subreaper.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
fn gen_etc_replaces_a_symlink_at_its_destination_never_writing_through_it() {
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, "secret\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("passwd")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("group")).unwrap();
    // A umask that would make a plain create 0600.
    let (code, _, err) = run_cmd(
        Command::new("sh")
            .arg("-c")
            .arg("umask 077; exec \"$0\" gen-etc --uid 5000 --gid 5000 --name smartem --out \"$1\"")
            .arg(bin())
            .arg(&out),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o600);
    for name in ["passwd", "group"] {
        let p = out.join(name);
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_file(), "{name} is a regular file now");
        assert_eq!(m.mode() & 0o7777, 0o644, "{name}: 0644 whatever the umask");
        assert!(std::fs::read_to_string(&p).unwrap().contains("smartem"));
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.as_bytes().starts_with(b"."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_environment_too_big_for_execve_is_named_as_such() {
    // One .env value over the kernel's 128 KiB limit for a single string.
    let d = shared_tempdir();
    std::fs::write(
        d.path().join(".env"),
        format!("BIG={}\n", "x".repeat(200_000)),
    )
    .unwrap();
    let (code, _, err) = run_cmd(
        Command::new(bin())
            .args(["--data-dir", "/tmp", "--workdir"])
            .arg(d.path())
            .args(["--", "true"]),
    );
    assert_eq!(code, 126, "{err}");
    let line = err.lines().find(|l| l.contains("error")).unwrap_or(&err);
    assert!(
        line.contains("the environment (") && line.contains("too big for execve (E2BIG)"),
        "{line}"
    );
    assert!(
        !line.contains("check its mode"),
        "not blamed on the file: {line}"
    );
}

#[test]
fn out_of_descriptors_is_a_system_failure_not_configuration() {
    if !need_root() {
        return;
    }
    let mut cmd = Command::new(bin());
    cmd.args(["--user", "nobody", "--data-dir", "/tmp", "--", "true"]);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 3,
                rlim_max: 3,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (code, _, err) = run_cmd(&mut cmd);
    assert_eq!(code, 71, "{err}");
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    assert!(!err.contains("make it readable"), "{err}");
}

fn userns_ok() -> bool {
    let ok = Command::new("unshare")
        .args(["-U", "-r", "true"])
        .status()
        .is_ok_and(|s| s.success());
    prerequisite(ok, "cannot create a user namespace (unshare -U -r)")
}

#[test]
fn root_mode_in_a_user_namespace_that_denies_setgroups() {
    if !userns_ok() {
        return;
    }
    for spec in ["0", "0:0"] {
        let (code, out, err) = run_cmd(
            Command::new("unshare")
                .args(["-U", "-r"])
                .arg(bin())
                .args(["--user", spec, "--data-dir", "/tmp", "--"])
                .args([
                    "grep",
                    "-E",
                    "^(Uid|Groups|NoNewPrivs):",
                    "/proc/self/status",
                ]),
        );
        assert_eq!(code, 0, "--user {spec}: {err}");
        assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    }
    // Groups that would need setgroups there: a clear 77, not a capability hint.
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(etc.path().join("group"), "root:x:0:\nwheel:x:10:root\n").unwrap();
    let (code, _, err) = run_cmd(
        Command::new("unshare")
            .args(["-U", "-r"])
            .arg(bin())
            .arg("--etc-dir")
            .arg(etc.path())
            .args(["--user", "0", "--data-dir", "/tmp", "--", "true"]),
    );
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("/proc/self/setgroups: deny"), "{err}");
    assert!(!err.contains("CAP_SETUID"), "{err}");
}

/// A seccomp filter that fails prctl(PR_SET_CHILD_SUBREAPER) with EINVAL,
/// as qemu-user does, and allows everything else.
fn refuse_subreaper() -> std::io::Result<()> {
    const PR_SET_CHILD_SUBREAPER: u32 = 36;
    let nr_prctl = libc::SYS_prctl as u32;
    let arch = 0xc000_003e_u32; // AUDIT_ARCH_X86_64
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let prog = [
        stmt(ld, 4), // arch
        jeq(arch, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ld, 0), // nr
        jeq(nr_prctl, 0, 3),
        stmt(ld, 16), // args[0], low word
        jeq(PR_SET_CHILD_SUBREAPER, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut _,
    };
    // SAFETY: a valid filter program that outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn a_refused_subreaper_is_a_warning_and_the_service_still_runs() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut cmd = Command::new(bin());
    cmd.args([
        "--data-dir",
        "/tmp",
        "--",
        "sh",
        "-c",
        "sleep 0.1 & wait; exit 3",
    ]);
    // SAFETY: prctl calls only, between fork and exec.
    unsafe { cmd.pre_exec(refuse_subreaper) };
    let (code, _, err) = run_cmd(&mut cmd);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot become a child subreaper") && err.contains("going on"),
        "{err}"
    );
}

#[test]
fn small_ones() {
    // A log level that is not UTF-8 is a bad value, not silently "info".
    let (code, _, err) = run_cmd(
        Command::new(bin())
            .env(
                "SMARTEM_INIT_LOG",
                std::ffi::OsStr::from_bytes(b"deb\xffug"),
            )
            .args(["--data-dir", "/tmp", "--", "true"]),
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("SMARTEM_INIT_LOG"), "{err}");

    // "+204" is not a status code.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Some(Ok(mut c)) = listener.incoming().next() {
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 +204 No Content\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let (code, _, err) = run(&["healthcheck", &format!("http://127.0.0.1:{port}/health")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not HTTP"), "{err}");
}

#[test]
fn differing_real_and_effective_gids_are_named_as_what_they_are() {
    if !need_root() {
        return;
    }
    let (code, _, err) = run_cmd(
        Command::new("setpriv")
            .args(["--egid=1000", "--keep-groups"])
            .arg(bin())
            .args(["--data-dir", "/tmp", "--", "true"]),
    );
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("real and effective gid differ"), "{err}");
    assert!(
        !err.contains("chmod u-s"),
        "not blamed on a setuid bit: {err}"
    );
}
