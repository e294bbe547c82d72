//! Supervising a child: forward every signal, reap every child (adopted
//! orphans too), SIGKILL what is left once the grace period after the first
//! SIGTERM/SIGINT is over, and turn the child's end into an exit code.
//! Signals are data here: they stay blocked and are taken by sigtimedwait.

use crate::signals;
use std::time::{Duration, Instant};

/// Longest sleep between reaping passes: a SIGCHLD coalesced with another
/// can never strand a zombie for more than this.
const REAP_INTERVAL: Duration = Duration::from_secs(1);
const TERMINATING: [i32; 2] = [libc::SIGTERM, libc::SIGINT];

pub struct Supervisor {
    pid1: bool,
    grace: Duration,
    /// The first SIGTERM/SIGINT received, and when SIGKILL is due.
    term: Option<(i32, Instant)>,
    set: libc::sigset_t,
}

impl Supervisor {
    pub fn new(pid1: bool, grace: Duration) -> Supervisor {
        Supervisor {
            pid1,
            grace,
            term: None,
            set: signals::full_set(),
        }
    }

    /// A termination request received so far, or waiting to be taken.
    /// Before starting anything new: if set, that thing must not start.
    pub fn termination_requested(&mut self) -> Option<i32> {
        if self.term.is_none() {
            if let Some(sig) = signals::pending(&TERMINATING) {
                self.term = Some((sig, Instant::now() + self.grace));
            }
        }
        self.term.map(|(sig, _)| sig)
    }

    /// Waits for `child` to end, forwarding and reaping meanwhile; returns
    /// its exit code (128+N for death by signal N).
    pub fn supervise(&mut self, child: libc::pid_t, what: &str) -> i32 {
        let mut killed = false;
        loop {
            if let Some(code) = reap(child) {
                debug!("{what} (pid {child}) ended: exit code {code}");
                return code;
            }
            let now = Instant::now();
            let mut timeout = REAP_INTERVAL;
            if let Some((_, due)) = self.term {
                if now >= due && !killed {
                    self.kill_all(child);
                    killed = true;
                }
                if !killed {
                    timeout = timeout.min(due - now);
                }
            }
            let Some(info) = signals::wait(&self.set, timeout) else {
                continue;
            };
            let sig = info.si_signo;
            if sig == libc::SIGCHLD {
                continue;
            }
            debug!("forwarding {} to {what} (pid {child})", signals::name(sig));
            // SAFETY: kill with plain integers.
            if unsafe { libc::kill(child, sig) } != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    warn!(
                        "cannot forward {} to pid {child}: {err}",
                        signals::name(sig)
                    );
                }
            }
            if TERMINATING.contains(&sig) && self.term.is_none() {
                self.term = Some((sig, Instant::now() + self.grace));
            }
        }
    }

    /// The grace period is over: SIGKILL the child and, as PID 1, every
    /// other process in the namespace; otherwise the child's process group.
    fn kill_all(&self, child: libc::pid_t) {
        info!(
            "grace period of {:.1}s is over: sending SIGKILL",
            self.grace.as_secs_f64()
        );
        // SAFETY: kill with plain integers; failures (nothing left) are harmless.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            if self.pid1 {
                libc::kill(-1, libc::SIGKILL);
            } else {
                libc::kill(-child, libc::SIGKILL);
            }
        }
    }
}

/// Reaps every child that has ended; returns `child`'s exit code if it is
/// among them.
pub fn reap(child: libc::pid_t) -> Option<i32> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status integer it is given.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: children left but none ended; -1: ECHILD, none at all.
            return result;
        }
        if pid == child {
            result = Some(exit_code(status));
        } else {
            debug!("reaped pid {pid}");
        }
    }
}

/// The shell's convention: the exit status, or 128+N for signal N.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        // Stopped/continued are not reported without WUNTRACED; be safe.
        1
    }
}
