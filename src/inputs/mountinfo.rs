//! Lines of /proc/self/mountinfo, read by doctor (which mount holds a path)
//! and the data-dir check (is any mount a filesystem that can stall).

use std::path::Path;

/// One mount: the fields smartem-init uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// major:minor of the filesystem.
    pub dev: &'a str,
    /// The directory of that filesystem mounted here (a bind mount's source).
    pub root: String,
    /// With mountinfo's octal escapes (`\040` space, `\011` tab, `\012`
    /// newline, `\134` backslash) turned back into their characters.
    pub mount_point: String,
    pub options: &'a str,
    /// "?" when the line names none.
    pub fstype: &'a str,
}

/// Parses one line; None when it lacks the " - " separator or the mount
/// point and options fields.
pub fn parse_line(line: &str) -> Option<Entry<'_>> {
    let (left, right) = line.split_once(" - ")?;
    let mut fields = left.split_whitespace().skip(2);
    let dev = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let options = fields.next()?;
    Some(Entry {
        dev,
        root,
        mount_point,
        options,
        fstype: right.split_whitespace().next().unwrap_or("?"),
    })
}

/// The kernel writes space, tab, newline and backslash in mountinfo paths
/// as a backslash and three octal digits; anything else stays as it is.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: u8| (b'0'..=b'7').contains(&c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(|c| octal(*c)) {
            let v = b[i + 1..=i + 3]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + (c - b'0') as u32);
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    // No line at all: mountinfo could not be read, which counts against.
    !mountinfo.trim().is_empty()
        && mountinfo.lines().filter(|l| !l.is_empty()).all(|line| {
            crate::inputs::mountinfo::parse_line(line).is_some_and(|e| LOCAL_FS.contains(&e.fstype))
        })
}

/// A mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub read_only: bool,
}

/// The mount that holds `path`: the longest mount point that is a prefix.
pub fn mount_of(path: &Path, mountinfo: &str) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    // A line that does not parse is skipped, not the end of the search.
    for e in mountinfo.lines().filter_map(parse_line) {
        if !path.starts_with(&e.mount_point) {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|b| b.mount_point.len() > e.mount_point.len())
        {
            continue;
        }
        best = Some(Mount {
            read_only: e.options.split(',').any(|o| o == "ro"),
            fstype: e.fstype.to_string(),
            mount_point: e.mount_point,
        });
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_its_mount_point_options_and_type() {
        let e = parse_line("25 22 8:1 /data /my\\040dls ro,relatime - ext4 /dev/sda1 rw")
            .expect("a valid line");
        assert_eq!(e.mount_point, "/my dls");
        assert_eq!((e.dev, e.root.as_str()), ("8:1", "/data"));
        assert_eq!(e.options, "ro,relatime");
        assert_eq!(e.fstype, "ext4");
        assert_eq!(parse_line("no separator here"), None);
        assert_eq!(parse_line("1 2 - ext4 x rw"), None);
    }

    #[test]
    fn every_escape_the_kernel_writes() {
        assert_eq!(unescape("/a\\040b\\011c\\012d\\134e"), "/a b\tc\nd\\e");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/x\\04"), "/x\\04", "too short: left alone");
        assert_eq!(unescape("/x\\999"), "/x\\999", "not octal: left alone");
        assert_eq!(unescape("/end\\"), "/end\\");
    }

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
        // Unreadable lines, or none at all, count against.
        assert!(!all_local(""));
        assert!(!all_local(&format!("{LOCAL}garbage without separator\n")));
    }

    const MOUNTINFO: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
        40 22 0:50 / /dls ro,nosuid - nfs4 server:/export ro,vers=4.2\n\
        41 22 0:51 / /dls/sub\\040dir rw - tmpfs tmpfs rw\n";

    #[test]
    fn finds_the_longest_mount() {
        let odd = format!("garbage without a separator\n{MOUNTINFO}");
        assert_eq!(mount_of(Path::new("/dls"), &odd).unwrap().fstype, "nfs4");
        let m = mount_of(Path::new("/dls/grid1"), MOUNTINFO).unwrap();
        assert_eq!(
            (m.mount_point.as_str(), m.fstype.as_str(), m.read_only),
            ("/dls", "nfs4", true)
        );
        let m = mount_of(Path::new("/dls/sub dir/x"), MOUNTINFO).unwrap();
        assert_eq!(m.fstype, "tmpfs");
        assert!(!mount_of(Path::new("/app"), MOUNTINFO).unwrap().read_only);
        assert!(
            mount_of(Path::new("/dlsx"), MOUNTINFO).unwrap().mount_point == "/",
            "prefix is by component"
        );
    }
}
