//! Signal state: what smartem-init inherited (restored in the child so it
//! is transparent) and the "everything blocked" state it runs in, where
//! signals are taken as data by sigtimedwait in one place.

use std::io;
use std::mem::MaybeUninit;

/// The mask and dispositions smartem-init was started with.
#[derive(Clone, Copy)]
pub struct Inherited {
    pub mask: libc::sigset_t,
    /// SIGCHLD ignored would make the kernel auto-reap and break waitpid:
    /// smartem-init resets it to default for itself, the child gets it back.
    pub sigchld_ignored: bool,
}

/// Blocks every signal and records what was inherited. Called first thing
/// in main, so no signal can arrive before smartem-init can forward it.
pub fn block_all() -> io::Result<Inherited> {
    // SAFETY: plain libc calls on locally owned, initialised sigset/sigaction values.
    unsafe {
        let mut all = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        libc::sigfillset(&mut all);
        let mut old = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        if libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut act = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut act) != 0 {
            return Err(io::Error::last_os_error());
        }
        let sigchld_ignored = act.sa_sigaction == libc::SIG_IGN;
        if sigchld_ignored {
            let mut dfl = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
            dfl.sa_sigaction = libc::SIG_DFL;
            if libc::sigaction(libc::SIGCHLD, &dfl, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Inherited {
            mask: old,
            sigchld_ignored,
        })
    }
}

/// The full set, for sigtimedwait.
pub fn full_set() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the set it is given.
    unsafe {
        let mut all = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        libc::sigfillset(&mut all);
        all
    }
}

/// A set holding exactly `sigs`.
pub fn set_of(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset takes valid numbers.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Waits for a signal, up to `timeout` if given; None on timeout or
/// interruption. Without a timeout no timer is armed: an idle init never
/// wakes up.
pub fn wait(
    set: &libc::sigset_t,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<Option<libc::siginfo_t>> {
    // SAFETY: the set and timespec are valid for the call; info is written by the kernel.
    unsafe {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed().assume_init();
        let sig = match timeout {
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs() as _,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                libc::sigtimedwait(set, &mut info, &ts)
            }
            None => libc::sigwaitinfo(set, &mut info),
        };
        if sig > 0 {
            return Ok(Some(info));
        }
        // A timeout (EAGAIN) or an interruption (EINTR) means nothing
        // arrived; anything else is a fault that would make the caller
        // spin, so it is the caller's to treat as fatal (as tini does).
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(err),
        }
    }
}

/// Is any of `sigs` pending (blocked and not yet taken)?
pub fn pending(sigs: &[i32]) -> Option<i32> {
    // SAFETY: sigpending writes the set it is given.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        if libc::sigpending(&mut set) != 0 {
            return None;
        }
        sigs.iter()
            .copied()
            .find(|s| libc::sigismember(&set, *s) == 1)
    }
}

/// Signal name for messages ("SIGTERM"), or the number.
pub fn name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}
