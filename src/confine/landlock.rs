//! Landlock for the data dir, with the Landlock maintainers' crate: the
//! kernel's ABI asked at start, then the planned grants opened and the
//! rule set applied to the init itself after the drop, so the pre-start
//! step, the service and all they start inherit it (a Landlock domain
//! passes across fork and exec, and can only be narrowed).

use crate::error::{fail, os_fail, Code, Result};
use landlock::{
    AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

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

/// Opens every grant with O_PATH|O_NOFOLLOW. A symlink is not granted (the
/// kernel checks the path it resolves to, which has its own rule where it
/// should), so a link beside the data dir pointing into it or above it
/// grants nothing. An entry gone since the plan, or one the service's user
/// cannot reach, needs no rule. Callers bound this (a grant may be a
/// stalled network mount).
pub fn open_grants(grants: &[PathBuf]) -> Result<Opened> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::{fstat, Mode, SFlag};
    let mut out = Vec::with_capacity(grants.len());
    for g in grants {
        crate::inputs::deadline::doing(format!("opening {} for the Landlock rules", g.display()));
        let fd = match open(
            g.as_path(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EACCES) => continue,
            Err(e) => return Err(os_fail(format!("open({}, O_PATH)", g.display()), e)),
        };
        let st = fstat(&fd).map_err(|e| os_fail(format!("fstat({})", g.display()), e))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind != SFlag::S_IFLNK {
            out.push((fd, kind == SFlag::S_IFDIR));
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
