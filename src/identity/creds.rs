//! The read side of credentials: the uids, gids, groups, capability sets,
//! no_new_privs and securebits as the kernel reports them. Everyone reads
//! them (the plan, the drop's verification, doctor); only
//! `identity::privileges` changes them.

use crate::identity::{Current, Ids};
use caps::Capability;
use std::io;

/// A capability set as the kernel keeps it: bit N is capability N.
pub type CapMask = u64;

/// The mask of a list of capabilities.
pub fn mask_of(caps: &[Capability]) -> CapMask {
    caps.iter().fold(0, |m, c| m | c.bitmask())
}

/// The capabilities in a mask, in kernel order.
pub fn caps_in(mask: CapMask) -> Vec<Capability> {
    let mut v: Vec<Capability> = caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .collect();
    v.sort_by_key(|c| c.index());
    v
}

/// Credentials as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredState {
    /// The ids: real, effective (with the groups) and saved.
    pub current: Current,
    pub effective: CapMask,
    pub permitted: CapMask,
    pub inheritable: CapMask,
    pub ambient: CapMask,
    pub bounding: CapMask,
    /// Every capability this kernel knows.
    pub supported: CapMask,
    pub no_new_privs: bool,
    pub securebits: u32,
}

/// Capability names in kernel order, "none" when empty.
pub fn names(mask: CapMask) -> String {
    if mask == 0 {
        return "none".into();
    }
    caps_in(mask)
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// capget(2)'s header and per-32-bit data (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Reads the current credentials, capability sets, no_new_privs and
/// securebits. Masks straight from the kernel: this runs twice per start,
/// and building hash sets of capabilities cost more than the system calls.
pub fn read_state() -> io::Result<CredState> {
    let uids = nix::unistd::getresuid().map_err(nix_io)?;
    let gids = nix::unistd::getresgid().map_err(nix_io)?;
    let groups = nix::unistd::getgroups()
        .map_err(nix_io)?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and two data structs, both valid here.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| ((hi as u64) << 32) | lo as u64;
    // The bounding set is read one capability at a time; EINVAL marks the
    // first number this kernel does not know.
    let (mut bounding, mut supported, mut ambient) = (0u64, 0u64, 0u64);
    for cap in 0..64u64 {
        // SAFETY: PR_CAPBSET_READ and PR_CAP_AMBIENT_IS_SET take integers only.
        let (rc, amb) = unsafe {
            (
                libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0),
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                ),
            )
        };
        if rc < 0 {
            break;
        }
        supported |= 1 << cap;
        if rc == 1 {
            bounding |= 1 << cap;
        }
        if amb == 1 {
            ambient |= 1 << cap;
        }
    }
    // SAFETY: PR_GET_SECUREBITS takes no argument and returns the bits.
    let securebits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    if securebits < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CredState {
        current: Current {
            ids: Ids {
                uid: uids.effective.as_raw(),
                gid: gids.effective.as_raw(),
                groups,
            },
            ruid: uids.real.as_raw(),
            suid: uids.saved.as_raw(),
            rgid: gids.real.as_raw(),
            sgid: gids.saved.as_raw(),
        },
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
        ambient,
        bounding,
        supported,
        no_new_privs: nix::sys::prctl::get_no_new_privs().map_err(nix_io)?,
        securebits: securebits as u32,
    })
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}
