//! Supervising a child: forward every signal, reap every child (adopted
//! orphans too), SIGKILL what is left once the grace period after the first
//! SIGTERM/SIGINT is over, and turn the child's end into an exit code.
//! Signals are data here: they stay blocked and are taken by sigwaitinfo
//! (sigtimedwait while a timer runs).

use crate::config::Forwarding;
use crate::pid1::signals;
use std::time::{Duration, Instant};

const TERMINATING: [i32; 2] = [libc::SIGTERM, libc::SIGINT];
/// A closing empty waitpid(-1) faster than this means few children: reap on
/// every SIGCHLD with no deferral.
const CHEAP_WALK: Duration = Duration::from_micros(20);
/// Deferral = this many times the walk, so walking stays near 5% of a CPU.
const DEFER_FACTOR: u32 = 20;
/// An orphan's zombie never waits longer than this for its pass.
const MAX_DEFER: Duration = Duration::from_millis(20);

/// How long to put off the next orphan-reaping pass after one whose closing
/// waitpid(-1), the call that finds nothing left, took `walk`.
///
/// waitpid(-1) walks the init's whole list of children in the kernel, and a
/// pass must end with a call that finds nothing, so each pass costs at least
/// one walk of every live child. When thousands of orphans exit over a few
/// hundred ms, each SIGCHLD brings one or two zombies: passing on every one
/// walked 10,000 children thousands of times (0.9 s of system time, bench
/// reaping row). Deferring lets the zombies collect and be reaped together.
/// With few children the walk is microseconds and nothing is deferred.
pub fn defer_after(walk: Duration) -> Duration {
    if walk < CHEAP_WALK {
        Duration::ZERO
    } else {
        walk.saturating_mul(DEFER_FACTOR).min(MAX_DEFER)
    }
}

pub struct Supervisor {
    pid1: bool,
    grace: Duration,
    /// The first SIGTERM/SIGINT received, and when SIGKILL is due.
    term: Option<(i32, Instant)>,
    set: libc::sigset_t,
    forwarding: Forwarding,
}

impl Supervisor {
    pub fn new(pid1: bool, grace: Duration, forwarding: Forwarding) -> Supervisor {
        Supervisor {
            pid1,
            grace,
            term: None,
            set: signals::full_set(),
            forwarding,
        }
    }

    /// Sends `sig` to the service: its whole process group (it leads one:
    /// spawn made it a session or group leader), so a pipeline such as
    /// `sh -c 'yes | tail'` stops as a whole, as under dumb-init; or the
    /// process alone with `child_only`.
    fn send(&self, child: libc::pid_t, sig: i32) -> std::io::Result<()> {
        let target = if self.forwarding.child_only {
            child
        } else {
            -child
        };
        // SAFETY: kill with plain integers.
        if unsafe { libc::kill(target, sig) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // No such group (setpgid failed with a foreign terminal): the child.
        // SAFETY: kill with plain integers.
        if target != child && unsafe { libc::kill(child, sig) } == 0 {
            return Ok(());
        }
        Err(err)
    }

    /// The service was stopped from the terminal (Ctrl-Z): stop ourselves,
    /// as dumb-init does, so the shell sees its job stop. SIGCONT (`fg`,
    /// `bg`) resumes us whatever our mask; it then arrives as a signal and
    /// is forwarded. As PID 1 nothing can stop us (the kernel protects a
    /// namespace's init), so this is for interactive use as a subreaper.
    fn stop_with(&self, child: libc::pid_t) {
        debug!("service (pid {child}) stopped from the terminal: stopping too");
        // SAFETY: raise with a plain signal number.
        unsafe { libc::raise(libc::SIGSTOP) };
    }

    /// After the service ended: as a subreaper, what it left in its process
    /// group (the rest of a pipeline) gets SIGTERM, as dumb-init does. As
    /// PID 1 our exit ends the whole namespace anyway.
    pub fn end_group(&self, child: libc::pid_t) {
        if !self.pid1 && !self.forwarding.child_only {
            // SAFETY: kill with plain integers; ESRCH (nothing left) is fine.
            unsafe { libc::kill(-child, libc::SIGTERM) };
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
    ///
    /// `child` itself is asked for by pid on every wake-up, a lookup rather
    /// than a walk, so a deferred orphan pass never delays noticing that
    /// the service ended.
    pub fn supervise(&mut self, child: libc::pid_t, what: &str) -> i32 {
        let mut killed = false;
        let mut pass_due = true;
        let mut not_before = Instant::now();
        loop {
            if let Some(code) = wait_child(child) {
                return code;
            }
            let mut now = Instant::now();
            if pass_due && now >= not_before {
                let (code, walk) = reap_all(child);
                if let Some(code) = code {
                    return code;
                }
                pass_due = false;
                now = Instant::now();
                not_before = now + defer_after(walk);
            }
            // No periodic pass is needed, unlike tini's 1 s timeout: every
            // pass runs until waitpid finds nothing, and a child ending after
            // that raises a SIGCHLD of its own (coalescing only merges ends
            // that happened before the pass). So without a deferred pass or a
            // grace period running, the wait has no timeout at all.
            let pass_in = pass_due.then(|| not_before.saturating_duration_since(now));
            let timeout = self.grace_timer(child, now, &mut killed, pass_in);
            match signals::wait(&self.set, timeout) {
                // The deferred pass is due (a spare pass after the grace
                // timer or an interruption costs one waitpid).
                Ok(None) => pass_due = true,
                Ok(Some(info)) if info.si_signo == libc::SIGCHLD => {
                    pass_due = true;
                    if let Some(code) = self.job_control(child) {
                        return code;
                    }
                }
                Ok(Some(info)) => self.forward(child, info.si_signo, what),
                Err(e) => return self.wait_failed(child, what, e),
            }
        }
    }

    /// The wait's bound: the deferred pass's, and once a stop was asked the
    /// grace period's, whose end SIGKILLs what is left (once).
    fn grace_timer(
        &self,
        child: libc::pid_t,
        now: Instant,
        killed: &mut bool,
        pass_in: Option<Duration>,
    ) -> Option<Duration> {
        let Some((_, due)) = self.term else {
            return pass_in;
        };
        if now >= due && !*killed {
            self.kill_all(child);
            *killed = true;
        }
        if *killed {
            return pass_in;
        }
        let left = due.saturating_duration_since(now);
        Some(pass_in.map_or(left, |t| t.min(left)))
    }

    /// Waiting again would fail again at once: a spin that forwards
    /// nothing. Fatal, as in tini.
    fn wait_failed(&self, child: libc::pid_t, what: &str, e: std::io::Error) -> i32 {
        crate::error!("sigwaitinfo failed: {e}; stopping {what} (pid {child}) and exiting");
        self.kill_all(child);
        // Blocking: it was just SIGKILLed.
        let _ = wait_status(child, 0);
        crate::error::Code::OsErr as i32
    }

    /// On SIGCHLD with a terminal, not as PID 1: a service stopped from it
    /// stops us too; one that ended gives its code.
    fn job_control(&self, child: libc::pid_t) -> Option<i32> {
        if !self.forwarding.job_control || self.pid1 {
            return None;
        }
        match stopped_or_ended(child) {
            Some(Ok(())) => {
                self.stop_with(child);
                None
            }
            Some(Err(code)) => Some(code),
            None => None,
        }
    }

    /// Forwards `sig` (rewritten if asked) to the service; the first
    /// SIGTERM/SIGINT forwarded starts the grace period.
    fn forward(&mut self, child: libc::pid_t, sig: i32, what: &str) {
        if sig == libc::SIGCONT && self.forwarding.job_control {
            // `fg` made our group the terminal's foreground: hand it back to
            // the service before it continues (the SIGCONT is forwarded
            // below).
            // SAFETY: tcsetpgrp on stdin with a plain pid; signals are
            // blocked, so SIGTTOU cannot stop us if we are not in front.
            unsafe { libc::tcsetpgrp(0, child) };
        }
        let sent = self.forwarding.rewritten(sig);
        let shown = forwarded(sig, sent);
        // A stop is the one forwarded signal an operator asks about
        // afterwards ("did it get the SIGTERM?"): logged at info.
        let stop = TERMINATING.contains(&sig) && sent != 0;
        if stop {
            info!(
                "forwarding {shown} to {what} (pid {child}){}",
                if self.term.is_none() {
                    format!(
                        "; SIGKILL in {}s if it has not ended",
                        crate::log::secs(self.grace)
                    )
                } else {
                    String::new()
                }
            );
        } else {
            debug!("forwarding {shown} to {what} (pid {child})");
        }
        if sent != 0 {
            if let Err(err) = self.send(child, sent) {
                if err.raw_os_error() != Some(libc::ESRCH) {
                    warn!("cannot forward {shown} to pid {child}: {err}");
                }
            }
        }
        // A stop dropped by a rewrite is no stop: no grace period runs.
        if stop && self.term.is_none() {
            self.term = Some((sig, Instant::now() + self.grace));
        }
    }

    /// The grace period is over: SIGKILL the child and, as PID 1, every
    /// other process in the namespace; otherwise the child's process group.
    fn kill_all(&self, child: libc::pid_t) {
        info!(
            "grace period of {}s is over: sending SIGKILL",
            crate::log::secs(self.grace)
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

/// What is forwarded for `sig` when `sent` goes out, for the log.
fn forwarded(sig: i32, sent: i32) -> String {
    if sent == sig {
        signals::name(sig)
    } else if sent == 0 {
        format!(
            "nothing for {} (dropped by --rewrite-signal)",
            signals::name(sig)
        )
    } else {
        format!(
            "{} for {} (--rewrite-signal)",
            signals::name(sent),
            signals::name(sig)
        )
    }
}

/// waitpid(child, flags): the raw status when `child` reported.
fn wait_status(child: libc::pid_t, flags: libc::c_int) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid writes the status integer it is given.
    let pid = unsafe { libc::waitpid(child, &mut status, flags) };
    (pid == child).then_some(status)
}

/// Has `child` stopped (Ok, reported once per stop by WUNTRACED) or ended
/// (Err with its exit code: the call reaped it)? None: neither.
fn stopped_or_ended(child: libc::pid_t) -> Option<Result<(), i32>> {
    wait_status(child, libc::WNOHANG | libc::WUNTRACED).map(|s| {
        if libc::WIFSTOPPED(s) {
            Ok(())
        } else {
            Err(exit_code(s))
        }
    })
}

/// `child`'s exit code if it has ended (and is now reaped).
fn wait_child(child: libc::pid_t) -> Option<i32> {
    wait_status(child, libc::WNOHANG).map(exit_code)
}

/// Reaps every child that has ended; returns `child`'s exit code if it is
/// among them, and how long the closing call (the one that found nothing
/// more) took: the cost of one walk over the live children.
fn reap_all(child: libc::pid_t) -> (Option<i32>, Duration) {
    let mut result = None;
    loop {
        let mut status = 0;
        let started = Instant::now();
        // SAFETY: waitpid writes the status integer it is given.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: children left but none ended; -1: ECHILD, none at all.
            return (result, started.elapsed());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_children_are_reaped_on_every_sigchld() {
        assert_eq!(defer_after(Duration::from_micros(2)), Duration::ZERO);
        assert_eq!(defer_after(Duration::from_micros(19)), Duration::ZERO);
    }

    #[test]
    fn a_long_walk_defers_the_next_pass_in_proportion_but_boundedly() {
        assert_eq!(
            defer_after(Duration::from_micros(150)),
            Duration::from_millis(3)
        );
        assert_eq!(defer_after(Duration::from_millis(5)), MAX_DEFER);
        assert_eq!(defer_after(Duration::MAX), MAX_DEFER);
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(42 << 8), 42);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(exit_code(libc::SIGKILL), 137);
    }
}
