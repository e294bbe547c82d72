//! The data-dir check (/dls by default): can the service's user list and
//! enter it? Run after the drop, so the kernel (and the NFS server, which
//! squashes root) answers for the real identity; callers run it under the
//! start-up deadline (src/deadline.rs), because a stalled NFS mount must not
//! hang start-up.

use crate::identity::access::can_list_and_enter;
use crate::identity::Ids;
use crate::inputs::{Inputs, Kind, Meta};
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Readable,
    Absent,
    NotADirectory,
    /// Owner, group and mode when stat worked (None when even that was refused).
    Denied(Option<(u32, u32, u32)>),
    Stalled(Duration),
    Error(String),
    /// Not looked at: a plain init for a command, no data dir configured.
    NotChecked,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Readable | Verdict::NotChecked)
    }

    /// One line: what is wrong, with the facts needed to fix it.
    pub fn describe(&self, path: &Path, uid: u32) -> String {
        let p = path.display();
        match self {
            Verdict::Readable => format!("data dir {p} is readable by uid {uid}"),
            Verdict::Absent => format!("data dir {p} is absent (checked as uid {uid}): mount it, or image endpoints will fail"),
            Verdict::NotADirectory => format!("data dir {p} is not a directory (checked as uid {uid}): mount the data directory there"),
            Verdict::Denied(Some((o, g, m))) => format!(
                "data dir {p} is not readable by uid {uid}: permission denied (owner {o}:{g}, mode {:04o}); \
                 run as its owner or make it readable (chmod o+rx), or image endpoints will fail",
                m & 0o7777
            ),
            Verdict::Denied(None) => format!(
                "data dir {p} is not readable by uid {uid}: permission denied even to stat it; \
                 check the parent directories and the mount's squash settings, or image endpoints will fail"
            ),
            Verdict::Stalled(t) => format!(
                "data dir {p} did not answer within {}s (checked as uid {uid}): stalled NFS mount?",
                crate::log::secs(*t)
            ),
            Verdict::Error(e) => format!("data dir {p} cannot be checked as uid {uid}: {e}"),
            Verdict::NotChecked => format!(
                "data dir {p} not checked: a command was given and no --data-dir/SMARTEM_DATA_DIR (plain init use)"
            ),
        }
    }
}

/// stat, classified: the metadata of a directory, or the verdict that
/// ends the check (absent, not a directory, refused).
fn stat_dir(path: &Path, fs: &dyn Inputs) -> Result<Meta, Verdict> {
    crate::inputs::doing(format!("checking the data dir {}", path.display()));
    match fs.metadata(path) {
        Ok(m) if m.kind == Kind::Dir => Ok(m),
        Ok(_) => Err(Verdict::NotADirectory),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Verdict::Absent),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(Verdict::Denied(None)),
        Err(e) => Err(Verdict::Error(e.to_string())),
    }
}

/// Asks the kernel, as the current identity: stat, list, enter.
pub fn check_now(path: &Path, fs: &dyn Inputs) -> Verdict {
    let meta = match stat_dir(path, fs) {
        Ok(m) => m,
        Err(v) => return v,
    };
    match fs.list_and_enter(path) {
        Ok(()) => Verdict::Readable,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            Verdict::Denied(Some((meta.uid, meta.gid, meta.mode)))
        }
        Err(e) => Verdict::Error(e.to_string()),
    }
}

/// Predicts the verdict for `who` from stat alone, without becoming them
/// (dry-run as root). Root's own stat may be refused on a root-squashed
/// mount: then there is nothing to predict from.
pub fn predict(path: &Path, who: &Ids, fs: &dyn Inputs) -> Verdict {
    let meta = match stat_dir(path, fs) {
        Ok(m) => m,
        Err(v) => return v,
    };
    match can_list_and_enter(who, meta.uid, meta.gid, meta.mode) {
        (true, true) => Verdict::Readable,
        _ => Verdict::Denied(Some((meta.uid, meta.gid, meta.mode))),
    }
}

/// The verdict for `who` without changing anything: asked of the kernel
/// when we already are `who` (same uid and gid), predicted from the mode
/// bits otherwise. The bool says whether the kernel was asked.
/// Callers bound it with the start-up deadline (`deadline::run_or_stalled`).
pub fn assess(path: &Path, who: &Ids, current: &Ids, fs: &dyn Inputs) -> (Verdict, bool) {
    if (who.uid, who.gid) == (current.uid, current.gid) {
        (check_now(path, fs), true)
    } else {
        (predict(path, who, fs), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Fs;
    use std::time::Instant;

    #[test]
    fn a_stalled_check_is_a_stalled_verdict_in_time() {
        // The deadline the callers put around the check.
        let t = Instant::now();
        let v = crate::deadline::run_or_stalled(
            "the data-dir check",
            Duration::from_millis(100),
            false,
            || {
                std::thread::sleep(Duration::from_secs(5));
                check_now(Path::new("/"), &Fs)
            },
        )
        .unwrap()
        .unwrap_or(Verdict::Stalled(Duration::from_millis(100)));
        assert_eq!(v, Verdict::Stalled(Duration::from_millis(100)));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn verdicts_for_real_paths() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(check_now(d.path(), &Fs), Verdict::Readable);
        assert_eq!(check_now(&d.path().join("nope"), &Fs), Verdict::Absent);
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(check_now(&f, &Fs), Verdict::NotADirectory);
    }

    #[test]
    fn prediction_uses_mode_bits_for_the_target() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = Ids {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        };
        let v = predict(d.path(), &stranger, &Fs);
        assert!(
            matches!(v, Verdict::Denied(Some((_, _, m))) if m & 0o777 == 0o700),
            "{v:?}"
        );
        let msg = v.describe(d.path(), 4242);
        assert!(
            msg.contains("mode 0700")
                && msg.contains("permission denied")
                && msg.contains("chmod o+rx"),
            "{msg}"
        );
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(predict(d.path(), &stranger, &Fs), Verdict::Readable);
    }
}
