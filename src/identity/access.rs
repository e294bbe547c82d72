//! Permission arithmetic for a would-be identity: can uid/gid/groups
//! execute, list or enter a file with this owner and mode? Used before the
//! drop (command look-up, dry-run, doctor), when asking the kernel would
//! answer for root instead. Capabilities are not counted: the service has
//! none (bar --keep-cap), so the mode bits decide.

use crate::identity::Ids;
use crate::inputs::{Inputs, Kind, Meta};

/// The rwx triplet of `mode` that applies to `who` (owner, group or other).
pub fn bits_for(who: &Ids, owner: u32, group: u32, mode: u32) -> u32 {
    if who.uid == owner {
        (mode >> 6) & 7
    } else if who.gid == group || who.groups.contains(&group) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

pub fn can_exec(who: &Ids, meta: &Meta) -> bool {
    meta.kind == Kind::File && bits_for(who, meta.uid, meta.gid, meta.mode) & 1 != 0
}

/// Listing a directory needs r, entering it needs x.
pub fn can_list_and_enter(who: &Ids, owner: u32, group: u32, mode: u32) -> (bool, bool) {
    let b = bits_for(who, owner, group, mode);
    (b & 4 != 0, b & 1 != 0)
}

/// Why `who` cannot execute `path`, naming the path component that denies:
/// a directory on the way without search (x) permission, or the file
/// without x. Both the path as given and its symlink-resolved form are
/// walked, since exec needs search permission on the directories of each.
/// None when the mode bits allow it (a noexec mount or a bad format can
/// still refuse).
pub fn exec_denied_by(who: &Ids, path: &std::path::Path, fs: &dyn Inputs) -> Option<String> {
    let real = fs.canonicalize(path).ok();
    // The resolved path first, so a denying directory is named by its real
    // name rather than by a symlink to it.
    let walks = real.as_deref().into_iter().chain(std::iter::once(path));
    for p in walks {
        let dirs: Vec<&std::path::Path> = p.ancestors().skip(1).collect();
        for dir in dirs.into_iter().rev() {
            let Ok(m) = fs.metadata(dir) else {
                continue;
            };
            if bits_for(who, m.uid, m.gid, m.mode) & 1 == 0 {
                return Some(format!(
                    "directory {} (owner {}:{}, mode {:04o}) denies search to uid {}",
                    dir.display(),
                    m.uid,
                    m.gid,
                    m.mode & 0o7777,
                    who.uid
                ));
            }
        }
    }
    let target = real.as_deref().unwrap_or(path);
    let m = fs.metadata(target).ok()?;
    (!can_exec(who, &m)).then(|| {
        format!(
            "{} (owner {}:{}, mode {:04o}) is not executable by uid {}",
            target.display(),
            m.uid,
            m.gid,
            m.mode & 0o7777,
            who.uid
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, gid: u32, groups: &[u32]) -> Ids {
        Ids {
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

    #[test]
    fn the_denying_component_is_named_through_symlinks() {
        use crate::inputs::Fs;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let set = |p: &std::path::Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let t = tempfile::tempdir().unwrap();
        set(t.path(), 0o755);
        let private = t.path().join("private");
        std::fs::create_dir(&private).unwrap();
        let prog = private.join("prog");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        set(&prog, 0o755);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&prog, &link).unwrap();
        let me = std::fs::metadata(t.path()).unwrap().uid();
        let other = who(me.wrapping_add(4242), 4242, &[]);
        set(&private, 0o755);
        assert_eq!(exec_denied_by(&other, &link, &Fs), None);
        set(&private, 0o700);
        let why = exec_denied_by(&other, &link, &Fs).unwrap();
        assert!(
            why.contains(&format!("directory {}", private.display())),
            "{why}"
        );
        assert!(
            why.contains("mode 0700") && why.contains("denies search"),
            "{why}"
        );
        set(&private, 0o755);
        set(&prog, 0o744);
        let why = exec_denied_by(&other, &link, &Fs).unwrap();
        assert!(
            why.contains("prog") && why.contains("not executable"),
            "{why}"
        );
    }
}
