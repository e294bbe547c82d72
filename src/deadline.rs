//! The start-up rule: no step before the service starts may block without a
//! bound, and SIGTERM/SIGINT during start-up ends smartem-init at once.
//!
//! A step that touches the file system (reading passwd, group and `.env`,
//! looking at the workdir, PATH and the data dir, chdir) runs in a helper
//! thread while the main thread waits for it, for the deadline, and for a
//! termination request, polling every 20 ms. The step says what it is doing
//! (`doing`), so a stall or an interruption is reported with the path it was
//! waiting on.
//!
//! A stuck helper cannot be cancelled (a stalled NFS or FUSE call), so it is
//! never waited for: the step fails and smartem-init exits, the kernel ending
//! the thread with the process. Credentials are only switched after every
//! helper has finished (a step returns only when its thread is done), so no
//! thread ever runs with the old identity beside the new one.
//!
//! When every mount is a local filesystem nothing can stall, and the step
//! runs inline (a thread costs ~0.15 ms of a ~0.8 ms start); a termination
//! request is then seen right after it, before anything starts.

use crate::error::{fail, Code, Result, Terminated};
use crate::inputs::steps::{read, recording, Record};
use std::any::Any;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

fn terminated(sig: i32, step: &str, rec: &Record) -> anyhow::Error {
    let at = read(rec);
    anyhow::Error::new(Terminated {
        signal: sig,
        msg: format!(
            "received {} during start-up while {}: exiting without starting the service",
            crate::pid1::signals::name(sig),
            if at.is_empty() { step.to_string() } else { at }
        ),
    })
}

/// Is every mount local, so that no file-system call can stall?
/// `mountinfo`: /proc/self/mountinfo as read once at start (empty when it
/// could not be read, which counts against).
pub fn all_local(mountinfo: &str) -> bool {
    if cfg!(feature = "bench-no-inline-steps") {
        return false;
    }
    crate::inputs::mountinfo::all_local(mountinfo)
}

/// Takes a pending SIGTERM/SIGINT, if any, without waiting.
fn termination() -> Option<i32> {
    let set = crate::pid1::signals::set_of(&[libc::SIGTERM, libc::SIGINT]);
    match crate::pid1::signals::wait(&set, Some(Duration::ZERO)) {
        Ok(Some(info)) => Some(info.si_signo),
        _ => None,
    }
}

/// Runs `f`, a file-system step named `step` ("planning"), within
/// `timeout`. A stall is exit 71 naming the path; a SIGTERM/SIGINT ends it
/// with 128+N.
pub fn run<T, F>(step: &str, timeout: Duration, local: bool, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_or_stalled(step, timeout, local, f)?.map_err(|stalled| fail(Code::OsErr, stalled))
}

/// "STEP did not finish within Ts (stuck AT)": for a caller that reports a
/// stall itself (the data-dir verdict, doctor's rows).
fn stalled_msg(step: &str, timeout: Duration, rec: &Record) -> String {
    let at = read(rec);
    format!(
        "stalled: {step} did not finish within {}s{}; a stalled NFS or FUSE mount? \
         fix the mount, or raise --io-timeout/SMARTEM_IO_TIMEOUT",
        crate::log::secs(timeout),
        if at.is_empty() {
            String::new()
        } else {
            format!(" (stuck {at})")
        }
    )
}

/// As `run`, but a stall is `Err(message)` inside `Ok` for the caller to
/// report (the data-dir verdict, doctor's rows).
pub fn run_or_stalled<T, F>(
    step: &str,
    timeout: Duration,
    local: bool,
    f: F,
) -> Result<std::result::Result<T, String>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    // One non-generic body for every step: each monomorphised copy of the
    // thread and channel code cost kilobytes of the size budget.
    let rec = Record::default();
    let boxed: Step = Box::new(move || Box::new(f()) as Box<dyn Any + Send>);
    match run_recorded(step, timeout, local, boxed, &rec)? {
        None => Ok(Err(stalled_msg(step, timeout, &rec))),
        Some(out) => out
            .downcast::<T>()
            .map(|b| Ok(*b))
            .map_err(|_| wrong_type(step)),
    }
}

fn wrong_type(step: &str) -> anyhow::Error {
    fail(
        Code::Software,
        format!("the helper for {step} answered with another type"),
    )
}

type Step = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

fn run_recorded(
    step: &str,
    timeout: Duration,
    local: bool,
    f: Step,
    rec: &Record,
) -> Result<Option<Box<dyn Any + Send>>> {
    if local {
        let out = recording(rec.clone(), f);
        return match termination() {
            Some(sig) => Err(terminated(sig, step, rec)),
            None => Ok(Some(out)),
        };
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let theirs = rec.clone();
    let handle = std::thread::Builder::new()
        .name("startup-step".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _ = tx.send(recording(theirs, f));
        })
        .map_err(|e| {
            fail(
                Code::OsErr,
                format!("cannot start a helper thread for {step}: {e}"),
            )
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(POLL)) {
            Ok(out) => {
                // Done: the thread is about to end; wait so that it has.
                let _ = handle.join();
                return Ok(Some(out));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(fail(
                    Code::Software,
                    format!("the helper for {step} ended without an answer"),
                ));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(sig) = termination() {
            return Err(terminated(sig, step, rec));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;
    use crate::inputs::doing;

    #[test]
    fn a_stall_is_71_naming_what_it_waited_on_and_in_time() {
        let t = Instant::now();
        let err = run("planning", Duration::from_millis(200), false, || {
            doing("reading /mnt/stuck/passwd");
            std::thread::sleep(Duration::from_secs(5));
        })
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(exit_code(&err), 71);
        let msg = format!("{err}");
        assert!(
            msg.contains("planning did not finish within 0.2s (stuck reading /mnt/stuck/passwd)"),
            "{msg}"
        );
    }

    #[test]
    fn a_quick_step_gives_its_value_inline_or_threaded() {
        for local in [true, false] {
            assert_eq!(run("x", Duration::from_secs(5), local, || 42).unwrap(), 42);
        }
    }
}
