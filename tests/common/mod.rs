//! Helpers shared by the integration tests: the binaries, prerequisites
//! that may skip on a laptop but must hold in CI, and a handle on
//! smartem-init running as PID 1 of a fresh PID namespace.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: the shipped release build when the test script
/// names it in SMARTEM_INIT_BIN, else the one cargo built for the tests.
pub fn bin() -> PathBuf {
    match std::env::var_os("SMARTEM_INIT_BIN") {
        Some(p) if !p.is_empty() => std::fs::canonicalize(p).expect("SMARTEM_INIT_BIN exists"),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_smartem-init")),
    }
}

/// Held by tests of one binary that must not overlap: ones that share a
/// service, or that load the machine enough to starve another's timing.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The source tree (Dockerfiles, scripts, Cargo.toml).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `key = "value"` of Cargo.toml's package, e.g. its version.
pub fn cargo_field(key: &str) -> String {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {key} in Cargo.toml"))
        .to_string()
}

/// Whether a Docker engine answers (scripts/docker-engine starts one).
pub fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Copies files out of an image into `dest`, each under its own name
/// (docker create, cp, rm).
pub fn files_from_image(image: &str, paths: &[&str], dest: &Path) {
    let (code, id, err) = run_cmd(Command::new("docker").args(["create", image]));
    assert_eq!(code, 0, "docker create {image}: {err}");
    let id = id.trim();
    let copied: Vec<_> = paths
        .iter()
        .map(|p| {
            let r = run_cmd(
                Command::new("docker")
                    .arg("cp")
                    .arg(format!("{id}:{p}"))
                    .arg(dest),
            );
            (p, r)
        })
        .collect();
    let _ = run_cmd(Command::new("docker").args(["rm", "-f", id]));
    for (p, (code, _, err)) in copied {
        assert_eq!(code, 0, "docker cp {image}:{p}: {err}");
    }
}

pub fn testsvc() -> String {
    env!("CARGO_BIN_EXE_smartem-testsvc").to_string()
}

pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// True when `ok`; otherwise skips (printing why) on a developer machine
/// and fails the test under CI=true, where nothing may skip.
pub fn prerequisite(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!in_ci(), "CI=true but {what}: this test must run in CI");
    eprintln!("SKIPPED (not in CI): {what}");
    // libtest captures a passing test's stderr: scripts/test counts and
    // prints the skips from this file instead.
    if let Some(log) = std::env::var_os("SMARTEM_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let _ = writeln!(f, "{test}: {what}");
        }
    }
    false
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn need_root() -> bool {
    prerequisite(is_root(), "not running as root")
}

pub fn need_pid_ns() -> bool {
    let ok = is_root()
        && Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    prerequisite(
        ok,
        "cannot create a PID namespace (unshare --pid --fork --mount-proc)",
    )
}

/// A scratch directory every uid can use (the tests drop to 65534).
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// One field of /proc/PID/status, trimmed (the crate's own parser).
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    smartem_init::status_field(&text, key)
}

/// The direct children of `pid`, with their state letter.
pub fn children(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the parenthesised comm: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
            out.push((child, state));
        }
    }
    out
}

pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill with plain integers.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// smartem-init as PID 1 of a new PID namespace, seen from outside.
pub struct Pid1 {
    child: Child,
    /// smartem-init's pid in our namespace.
    pub pid: i32,
}

impl Pid1 {
    pub fn start(args: &[&str]) -> Pid1 {
        Self::start_with(args, |_| {})
    }

    pub fn start_with(args: &[&str], tweak: impl FnOnce(&mut Command)) -> Pid1 {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .arg(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("spawn unshare");
        let upid = child.id() as i32;
        let mut pid = 0;
        // Started means: exec'd and past its first instruction, which
        // blocks every signal (the window before that is the kernel's).
        // While it sits in sigwaitinfo the kernel shows SigBlk as 0, but by
        // then it has a child: either sign proves the blocking happened.
        wait_until(
            Duration::from_secs(10),
            "smartem-init to start as PID 1",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("smartem-init ended ({status}) before it could be seen running");
                }
                if let Some((p, _)) = children(upid).first() {
                    pid = *p;
                    let comm =
                        std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                    let blocked =
                        status_field(*p, "SigBlk").is_some_and(|b| b != "0000000000000000");
                    comm.trim() == "smartem-init" && (blocked || !children(*p).is_empty())
                } else {
                    false
                }
            },
        );
        Pid1 { child, pid }
    }

    pub fn signal(&self, sig: i32) {
        kill(self.pid, sig);
    }

    /// Waits for the end; returns exit code, stdout, stderr.
    pub fn wait(mut self, timeout: Duration) -> (i32, String, String) {
        wait_output(&mut self.child, timeout)
    }
}

impl Drop for Pid1 {
    /// A test that failed half-way must not leave its namespace running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill with plain integers.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_output(child: &mut Child, timeout: Duration) -> (i32, String, String) {
    let deadline = Instant::now() + timeout;
    // Drain both pipes while waiting, so a chatty child can't block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out_reader = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_reader = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = out_reader.join().unwrap();
            let err = err_reader.join().unwrap();
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            return (code, out, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs smartem-init as PID 1 of a new PID namespace to completion.
pub fn run_as_pid1(args: &[&str]) -> (i32, String, String) {
    run_cmd(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(bin())
            .args(args),
    )
}

/// Runs smartem-init (not as PID 1) to completion.
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_cmd(Command::new(bin()).args(args))
}

pub fn run_cmd(cmd: &mut Command) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_output(&mut child, Duration::from_secs(30))
}

/// A command whose child starts with SIGPIPE ignored and SIGUSR1 blocked
/// and an extra inherited descriptor 5.
pub fn with_odd_inheritance(cmd: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if libc::dup2(2, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
