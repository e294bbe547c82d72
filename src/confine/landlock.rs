//! Landlock for the data dir, with the Landlock maintainers' crate: the
//! kernel's ABI asked at start, then the planned grants opened and the
//! rule set applied to the init itself after the drop, so the pre-start
//! step, the service and all they start inherit it (a Landlock domain
//! passes across fork and exec, and can only be narrowed).

use super::Grant;
use crate::error::{fail, os_fail, Code, Result};
use landlock::{
    AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};
use std::os::fd::OwnedFd;

/// The ABI the handled rights are written for: every write right up to
/// truncate (ABI 3, Linux 6.2). Older kernels enforce what they know
/// (best effort); reading, executing, ioctl and unix-socket connects are
/// not handled, so they stay as the permissions allow.
const TARGET: ABI = ABI::V3;

fn handled() -> BitFlags<AccessFs> {
    AccessFs::from_write(TARGET)
}

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the
/// kernel's Landlock ABI, or the errno that says why there is none.
pub fn probe() -> std::result::Result<i32, i32> {
    const VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute and size 0 the call reads no memory; it
    // only reports the ABI version.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            VERSION,
        )
    };
    if rc >= 0 {
        Ok(rc as i32)
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOSYS))
    }
}

/// A grant, opened: the descriptor and whether it is a directory.
pub type Opened = Vec<(OwnedFd, bool)>;

/// Opens every grant with O_PATH|O_NOFOLLOW, a directory with O_DIRECTORY
/// too: the type comes from the listing, so no stat per grant. A directory
/// replaced since by anything else fails to open and is skipped; a file
/// replaced by a symlink gets the file rights on the link itself, which no
/// write goes through (the kernel checks the path a link resolves to, and
/// a rule applies beneath its inode only). An entry gone since the plan,
/// or one the service's user cannot reach, needs no rule. openat, not
/// open: musl's open adds an fcntl(FD_CLOEXEC) per call for kernels older
/// than 2.6.23. Callers bound this (a grant may be a stalled network mount).
pub fn open_grants(grants: &[Grant]) -> Result<Opened> {
    use nix::errno::Errno;
    use nix::fcntl::{openat, OFlag, AT_FDCWD};
    use nix::sys::stat::Mode;
    let mut out = Vec::with_capacity(grants.len());
    for g in grants {
        crate::inputs::doing(format!(
            "opening {} for the Landlock rules",
            g.path.display()
        ));
        let mut flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if g.dir {
            flags |= OFlag::O_DIRECTORY;
        }
        match openat(AT_FDCWD, g.path.as_path(), flags, Mode::empty()) {
            Ok(fd) => out.push((fd, g.dir)),
            Err(Errno::ENOENT | Errno::EACCES | Errno::ENOTDIR | Errno::ELOOP) => {}
            Err(e) => return Err(os_fail(format!("open({}, O_PATH)", g.path.display()), e)),
        }
    }
    Ok(out)
}

fn refused(step: &str, e: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Code::NoPerm,
        format!("Landlock {step} failed: {e}; the service was not started (--data-dir-writable starts it without)"),
    )
}

/// Applies the rule set to the calling thread (the init, single-threaded
/// apart from helpers that have finished or are stuck in a stalled call):
/// the handled write rights everywhere beneath the grants, nowhere else.
pub fn restrict(opened: Opened) -> Result<RulesetStatus> {
    let all = handled();
    let file = all & AccessFs::from_file(TARGET);
    let mut rules = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .and_then(|r| r.create())
        .map_err(|e| refused("ruleset creation", e))?;
    for (fd, is_dir) in opened {
        rules = rules
            .add_rule(PathBeneath::new(fd, if is_dir { all } else { file }))
            .map_err(|e| refused("landlock_add_rule", e))?;
    }
    // no_new_privs is already set by the drop.
    let status = rules
        .no_new_privs(false)
        .restrict_self()
        .map_err(|e| refused("landlock_restrict_self", e))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(refused(
            "enforcement",
            "the kernel enforced none of the rules",
        ));
    }
    Ok(status.ruleset)
}
