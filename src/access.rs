//! Permission arithmetic for a would-be identity: can uid/gid/groups
//! execute, list or enter a file with this owner and mode? Used before the
//! drop (command look-up, dry-run, doctor), when asking the kernel would
//! answer for root instead. Capabilities are not counted: the service has
//! none (bar --keep-cap), so the mode bits decide.

use std::os::unix::fs::MetadataExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The rwx triplet of `mode` that applies to `who` (owner, group or other).
pub fn bits_for(who: &Who, owner: u32, group: u32, mode: u32) -> u32 {
    if who.uid == owner {
        (mode >> 6) & 7
    } else if who.gid == group || who.groups.contains(&group) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

pub fn can_exec(who: &Who, meta: &std::fs::Metadata) -> bool {
    meta.is_file() && bits_for(who, meta.uid(), meta.gid(), meta.mode()) & 1 != 0
}

/// Listing a directory needs r, entering it needs x.
pub fn can_list_and_enter(who: &Who, owner: u32, group: u32, mode: u32) -> (bool, bool) {
    let b = bits_for(who, owner, group, mode);
    (b & 4 != 0, b & 1 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, gid: u32, groups: &[u32]) -> Who {
        Who {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn owner_then_group_then_other() {
        // Owner bits apply to the owner even when group/other are wider,
        // exactly as the kernel does.
        assert_eq!(bits_for(&who(5, 5, &[]), 5, 9, 0o077), 0);
        assert_eq!(bits_for(&who(6, 9, &[]), 5, 9, 0o750), 5);
        assert_eq!(bits_for(&who(6, 1, &[9]), 5, 9, 0o750), 5);
        assert_eq!(bits_for(&who(6, 1, &[]), 5, 9, 0o751), 1);
        assert_eq!(
            can_list_and_enter(&who(65534, 65534, &[]), 0, 0, 0o700),
            (false, false)
        );
        assert_eq!(
            can_list_and_enter(&who(65534, 65534, &[]), 0, 0, 0o755),
            (true, true)
        );
        assert_eq!(
            can_list_and_enter(&who(65534, 65534, &[]), 0, 0, 0o711),
            (false, true)
        );
    }
}
