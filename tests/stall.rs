//! The start-up rule against a real stalled filesystem: a FUSE mount whose
//! daemon never answers (smartem-testsvc fuse-stall, in a private mount
//! namespace so nothing else on the machine trips over it). Every path
//! smartem-init touches before the service starts, in run mode, dry run and
//! doctor, is bounded and reported naming the path; SIGTERM/SIGINT during a
//! stall ends it within 1 s with 128+N; a FIFO where a file is expected is
//! refused at once.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The holder of the stalled mount; its mount namespace has it at `dir`.
struct Stall {
    holder: Child,
    dir: tempfile::TempDir,
}

/// Some thread of `pid` sleeps inside the FUSE filesystem (its wchan, the
/// kernel function it waits in, names fuse): it is stuck on the stalled
/// mount, not still starting up.
fn stuck_in_fuse(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
        tasks.flatten().any(|t| {
            std::fs::read_to_string(t.path().join("wchan"))
                .is_ok_and(|w| w.contains("fuse") || w.contains("request_wait_answer"))
        })
    })
}

impl Stall {
    fn new() -> Option<Stall> {
        let ok = is_root() && std::path::Path::new("/dev/fuse").exists();
        if !prerequisite(ok, "needs root and /dev/fuse for a stalled FUSE mount") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(testsvc())
            .arg("fuse-stall")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the FUSE holder did not mount");
        Some(Stall { holder, dir })
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir.path().display())
    }

    /// smartem-init in the holder's mount namespace.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--target={}", self.holder.id()))
            .arg("--mount")
            .arg(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        // SAFETY: kill with plain integers.
        unsafe { libc::kill(self.holder.id() as i32, libc::SIGTERM) };
        let _ = self.holder.wait();
    }
}

#[test]
fn every_path_before_the_service_is_bounded_and_named() {
    let Some(s) = Stall::new() else { return };
    let etc = s.path("etc");
    let app = s.path("app");
    let cmd = s.path("bin/serve");
    let dls = s.path("dls");
    // (args, code, what the line names)
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec![
                "--etc-dir",
                &etc,
                "--user",
                "nobody",
                "--data-dir",
                "/tmp",
                "--",
                "true",
            ],
            71,
            format!("stuck reading {etc}/passwd"),
        ),
        (
            vec![
                "--dry-run",
                "--etc-dir",
                &etc,
                "--user",
                "nobody",
                "--data-dir",
                "/tmp",
                "--",
                "true",
            ],
            71,
            format!("stuck reading {etc}/passwd"),
        ),
        (
            vec!["--workdir", &app, "--data-dir", "/tmp", "--", "true"],
            71,
            format!("stuck looking at the workdir {app}"),
        ),
        (
            vec!["--data-dir", "/tmp", "--", &cmd],
            71,
            format!("stuck looking at the command {cmd}"),
        ),
        (vec!["--data-dir", "/tmp", "--", "serve"], 0, String::new()),
        (
            vec![
                "--data-dir",
                &dls,
                "--require-data-dir",
                "--data-dir-timeout",
                "1",
                "--",
                "true",
            ],
            78,
            format!("data dir {dls} did not answer within 1.0s"),
        ),
        (
            vec![
                "--dry-run",
                "--user",
                "nobody",
                "--data-dir",
                &dls,
                "--data-dir-timeout",
                "1",
                "--require-data-dir",
                "--",
                "true",
            ],
            78,
            format!("data dir {dls} did not answer within 1.0s"),
        ),
        (
            vec!["doctor", "--data-dir", &dls],
            1,
            format!("checking {dls} did not finish within 1.0s"),
        ),
        (
            vec![
                "doctor",
                "--user",
                "nobody",
                "--etc-dir",
                &etc,
                "--data-dir",
                "/tmp",
            ],
            1,
            format!("planning did not finish within 1.0s (stuck reading {etc}/passwd)"),
        ),
    ];
    let path_var = format!("PATH={}:/usr/bin:/bin", s.path("bin"));
    for (args, code, needle) in cases {
        let mut full = vec!["--io-timeout", "1"];
        if args[0] == "doctor" {
            full = vec!["doctor", "--io-timeout", "1"];
            full.extend_from_slice(&args[1..]);
        } else {
            full.extend_from_slice(&args);
        }
        let t = Instant::now();
        let mut c = s.cmd(&full);
        if args.last() == Some(&"serve") {
            // A PATH entry on the stalled mount: the look-up is bounded too.
            c.env("PATH", &path_var[5..]);
        }
        let mut child = c.spawn().unwrap();
        let (got, out, err) = wait_output(&mut child, Duration::from_secs(20));
        let secs = t.elapsed().as_secs_f64();
        assert!(secs < 2.5, "{args:?}: took {secs:.2} s");
        if args.last() == Some(&"serve") {
            assert_eq!(got, 71, "{args:?}: {err}");
            assert!(
                err.contains(&format!("looking for \"serve\" in {}", s.path("bin"))),
                "{err}"
            );
            continue;
        }
        assert_eq!(got, code, "{args:?}: {out}{err}");
        assert!(
            out.contains(&needle) || err.contains(&needle),
            "{args:?}: {needle:?} in {out}{err}"
        );
    }
}

#[test]
fn sigterm_or_sigint_during_a_stall_ends_start_up_at_once() {
    let Some(s) = Stall::new() else { return };
    let etc = s.path("etc");
    let dls = s.path("dls");
    for (args, sig, what) in [
        (
            vec![
                "--io-timeout",
                "30",
                "--etc-dir",
                &etc,
                "--user",
                "nobody",
                "--data-dir",
                "/tmp",
                "--",
                "true",
            ],
            libc::SIGTERM,
            format!("while reading {etc}/passwd"),
        ),
        (
            vec!["--data-dir-timeout", "30", "--data-dir", &dls, "--", "true"],
            libc::SIGINT,
            format!("while checking the data dir {dls}"),
        ),
        (
            vec![
                "--dry-run",
                "--data-dir-timeout",
                "30",
                "--data-dir",
                &dls,
                "--",
                "true",
            ],
            libc::SIGTERM,
            format!("while checking the data dir {dls}"),
        ),
        (
            vec!["doctor", "--io-timeout", "30", "--data-dir", &dls],
            libc::SIGTERM,
            format!("while looking at {dls}"),
        ),
    ] {
        let mut child = s.cmd(&args).spawn().unwrap();
        let pid = child.id() as i32;
        wait_until(Duration::from_secs(10), "the stalled FUSE call", || {
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "{args:?} ended before the signal"
            );
            stuck_in_fuse(pid)
        });
        let t = Instant::now();
        kill(child.id() as i32, sig);
        let (code, _, err) = wait_output(&mut child, Duration::from_secs(10));
        let secs = t.elapsed().as_secs_f64();
        assert!(secs < 1.0, "{args:?}: {secs:.2} s after the signal");
        assert_eq!(code, 128 + sig, "{args:?}: {err}");
        let line = err.lines().last().unwrap_or("");
        assert!(
            line.contains(&format!(
                "received {}",
                if sig == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                }
            )) && line.contains(&what),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_fifo_is_refused_at_once_where_a_file_is_expected() {
    let d = shared_tempdir();
    nix::unistd::mkfifo(
        &d.path().join(".env"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let t = Instant::now();
    let (code, _, err) = run_cmd(Command::new(bin()).arg("--workdir").arg(d.path()).args([
        "--data-dir",
        "/tmp",
        "--",
        "true",
    ]));
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(".env is a FIFO, not a regular file"), "{err}");
}
