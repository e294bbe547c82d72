//! The data-dir check (/dls by default): can the service's user list and
//! enter it? Run after the drop, so the kernel (and the NFS server, which
//! squashes root) answers for the real identity, in a helper thread with a
//! deadline, because a stalled NFS mount must not hang start-up. When every
//! mount in the namespace is a local filesystem nothing can stall, and the
//! check runs inline: the thread cost 0.13-0.17 ms of a 0.8 ms start.

use crate::access::{can_list_and_enter, Who};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        *self == Verdict::Readable
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
                "data dir {p} did not answer within {:.1}s (checked as uid {uid}): stalled NFS mount?",
                t.as_secs_f64()
            ),
            Verdict::Error(e) => format!("data dir {p} cannot be checked as uid {uid}: {e}"),
        }
    }
}

/// stat, classified: the metadata of a directory, or the verdict that
/// ends the check (absent, not a directory, refused).
fn stat_dir(path: &Path) -> Result<std::fs::Metadata, Verdict> {
    crate::deadline::doing(format!("checking the data dir {}", path.display()));
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(m),
        Ok(_) => Err(Verdict::NotADirectory),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Verdict::Absent),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(Verdict::Denied(None)),
        Err(e) => Err(Verdict::Error(e.to_string())),
    }
}

/// Asks the kernel, as the current identity: stat, list, enter.
pub fn check_now(path: &Path) -> Verdict {
    let meta = match stat_dir(path) {
        Ok(m) => m,
        Err(v) => return v,
    };
    let facts = Some((meta.uid(), meta.gid(), meta.mode()));
    let listed = std::fs::read_dir(path).and_then(|mut it| it.next().transpose().map(drop));
    let entered = std::fs::metadata(path.join("."));
    match (listed, entered) {
        (Ok(()), Ok(_)) => Verdict::Readable,
        (Err(e), _) | (_, Err(e)) if e.kind() == ErrorKind::PermissionDenied => {
            Verdict::Denied(facts)
        }
        (Err(e), _) | (_, Err(e)) => Verdict::Error(e.to_string()),
    }
}

/// Runs `check` in a helper thread and gives up after `timeout`. A stalled
/// thread is left behind (it cannot be cancelled out of an uninterruptible
/// NFS call); it holds nothing and the service starts regardless.
pub fn bounded<F>(timeout: Duration, check: F) -> Verdict
where
    F: FnOnce() -> Verdict + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("datadir-check".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(check());
        });
    if let Err(e) = spawned {
        return Verdict::Error(format!("cannot start the check: {e}"));
    }
    rx.recv_timeout(timeout)
        .unwrap_or(Verdict::Stalled(timeout))
}

/// Predicts the verdict for `who` from stat alone, without becoming them
/// (dry-run as root). Root's own stat may be refused on a root-squashed
/// mount: then there is nothing to predict from.
pub fn predict(path: &Path, who: &Who) -> Verdict {
    let meta = match stat_dir(path) {
        Ok(m) => m,
        Err(v) => return v,
    };
    match can_list_and_enter(who, meta.uid(), meta.gid(), meta.mode()) {
        (true, true) => Verdict::Readable,
        _ => Verdict::Denied(Some((meta.uid(), meta.gid(), meta.mode()))),
    }
}

/// The verdict for `who` without changing anything: asked of the kernel
/// when we already are `who` (same uid and gid), predicted from the mode
/// bits otherwise. The bool says whether the kernel was asked.
pub fn assess(path: &Path, who: &Who, current: (u32, u32), timeout: Duration) -> (Verdict, bool) {
    if (who.uid, who.gid) == current {
        (check(path, timeout), true)
    } else {
        (predict(path, who), false)
    }
}

/// The check as the real run does it.
pub fn check(path: &Path, timeout: Duration) -> Verdict {
    let local = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| all_local(&m));
    check_in(path, timeout, local)
}

fn check_in(path: &Path, timeout: Duration, local: bool) -> Verdict {
    if local {
        return check_now(path);
    }
    let owned: PathBuf = path.to_path_buf();
    bounded(timeout, move || check_now(&owned))
}

/// Filesystems whose calls are served by this kernel from memory or a local
/// disk: a stat on them cannot wait on a network or a user-space daemon.
/// Anything else (nfs, cifs, ceph, fuse, 9p, virtiofs, autofs, types not
/// known here) may stall.
const LOCAL_FS: &[&str] = &[
    "overlay",
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "zfs",
    "f2fs",
    "vfat",
    "squashfs",
    "erofs",
    "iso9660",
    "tmpfs",
    "ramfs",
    "rootfs",
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "nsfs",
    "securityfs",
    "hugetlbfs",
    "bpf",
    "debugfs",
    "tracefs",
    "configfs",
    "pstore",
    "binfmt_misc",
    "fusectl",
    "efivarfs",
    "selinuxfs",
];

/// Is every mount in `mountinfo` (/proc/self/mountinfo) a local filesystem?
/// Every mount, not only the data dir's: the path may be a symlink into
/// another mount, and telling that would mean touching it. A line that
/// cannot be read counts as not local.
pub fn all_local(mountinfo: &str) -> bool {
    mountinfo.lines().filter(|l| !l.is_empty()).all(|line| {
        crate::mountinfo::parse_line(line).is_some_and(|e| LOCAL_FS.contains(&e.fstype))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const LOCAL: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
23 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
24 22 0:23 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
25 22 8:1 /data /dls ro,relatime - ext4 /dev/sda1 rw
";

    #[test]
    fn only_local_mounts_let_the_check_run_inline() {
        assert!(all_local(LOCAL));
        let nfs = format!("{LOCAL}26 22 0:50 / /dls rw - nfs4 server:/export rw,vers=4.2\n");
        assert!(!all_local(&nfs));
        for fstype in [
            "fuse.sshfs",
            "cifs",
            "ceph",
            "9p",
            "virtiofs",
            "autofs",
            "newfs",
        ] {
            let m = format!("{LOCAL}26 22 0:50 / /x rw - {fstype} src rw\n");
            assert!(!all_local(&m), "{fstype}");
        }
        // Unreadable lines count against.
        assert!(!all_local(&format!("{LOCAL}garbage without separator\n")));
    }

    #[test]
    fn inline_and_threaded_checks_give_the_same_verdicts() {
        let dir = std::env::temp_dir();
        let missing = dir.join("smartem-init-no-such-dir");
        let file = std::env::current_exe().expect("test binary path");
        for local in [true, false] {
            let t = Duration::from_secs(5);
            assert_eq!(check_in(&dir, t, local), Verdict::Readable, "{local}");
            assert_eq!(check_in(&missing, t, local), Verdict::Absent, "{local}");
            assert_eq!(check_in(&file, t, local), Verdict::NotADirectory, "{local}");
        }
    }

    #[test]
    fn a_stalled_check_is_reported_in_time() {
        let start = Instant::now();
        let v = bounded(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(5));
            Verdict::Readable
        });
        assert_eq!(v, Verdict::Stalled(Duration::from_millis(100)));
        assert!(start.elapsed() < Duration::from_secs(2));
        let msg = v.describe(Path::new("/dls"), 5000);
        assert!(
            msg.contains("did not answer within 0.1s") && msg.contains("uid 5000"),
            "{msg}"
        );
    }

    #[test]
    fn verdicts_for_real_paths() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(check(d.path(), Duration::from_secs(5)), Verdict::Readable);
        assert_eq!(
            check(&d.path().join("nope"), Duration::from_secs(5)),
            Verdict::Absent
        );
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(check(&f, Duration::from_secs(5)), Verdict::NotADirectory);
    }

    #[test]
    fn prediction_uses_mode_bits_for_the_target() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = Who {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        };
        let v = predict(d.path(), &stranger);
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
        assert_eq!(predict(d.path(), &stranger), Verdict::Readable);
    }
}
