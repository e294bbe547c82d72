//! Which paths keep their write rights when the data dir is made read-only.
//!
//! Landlock only grants: once a ruleset handles the write rights, every
//! write is refused unless a rule grants it beneath some directory, and a
//! grant cannot have a hole. So the data dir is carved out by granting the
//! write rights beneath every entry *beside* the way down to it, and
//! beneath none of the directories on that way. For /dls that is every
//! entry of / but dls; for /mnt/data/x, every entry of / but mnt, of /mnt
//! but data, of /mnt/data but x. The price: no new entries directly in
//! those directories (/, /mnt, /mnt/data), which containers rarely want
//! (/ is usually read-only anyway).
//!
//! Rules belong to inodes, not names: the same files mounted a second time
//! elsewhere (a volume at /dls and again at /scratch) would be writable
//! through the other mount, so every other mount of the data dir's
//! filesystem that shows some of its files is carved out too (found in
//! mountinfo by device and root).

use crate::inputs::mountinfo;
use crate::inputs::{Inputs, Kind};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The protected paths, the grants and the closed directories for
/// `data_dir`, or why the file system could not be listed.
pub type Carve = (Vec<PathBuf>, Vec<Grant>, Vec<PathBuf>);

/// An entry beside the way down: the write rights beneath it are granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    /// From the listing: a directory gets the directory rights too, and is
    /// opened as one (so one replaced since is skipped, not misgranted).
    pub dir: bool,
}

// Paths are handled as bytes of absolute, normalised paths: Path's
// component-wise comparisons and sorting cost kilobytes of the binary's
// budget for what a '/' test does here.
type P = Vec<u8>;

/// `p` is `dir` or lies beneath it.
fn beneath(p: &[u8], dir: &[u8]) -> bool {
    p.starts_with(dir) && (p.len() == dir.len() || dir == b"/" || p[dir.len()] == b'/')
}

/// `p` below `dir`, without the leading '/' ("" for `dir` itself).
fn below<'a>(p: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    beneath(p, dir).then(|| {
        let rest = &p[dir.len()..];
        rest.strip_prefix(b"/").unwrap_or(rest)
    })
}

fn join(dir: &[u8], name: &[u8]) -> P {
    let mut out = dir.to_vec();
    if !name.is_empty() {
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(name);
    }
    out
}

/// The strict ancestors of an absolute path, "/" included.
fn parents(p: &[u8]) -> Vec<P> {
    let mut out = Vec::new();
    let mut cur = p;
    while let Some(i) = cur.iter().rposition(|b| *b == b'/') {
        if cur == b"/" {
            break;
        }
        cur = if i == 0 { b"/" } else { &cur[..i] };
        out.push(cur.to_vec());
    }
    out
}

fn path(p: P) -> PathBuf {
    PathBuf::from(OsString::from_vec(p))
}

pub fn read_only(data_dir: &Path, mountinfo: &str, fs: &dyn Inputs) -> Result<Carve, String> {
    crate::inputs::doing(format!(
        "listing the way to the data dir {}",
        data_dir.display()
    ));
    // Where a mount can stall, the data dir itself (an NFS or FUSE mount
    // point, typically) is left to the data-dir check, whose stall is a
    // verdict: only its parent is resolved. A symlinked data dir on such a
    // system is protected under the name it is given (README).
    let may_stall = !mountinfo::all_local(mountinfo);
    let dir = resolve(data_dir, may_stall, fs).into_os_string().into_vec();
    let mut protected = vec![dir.clone()];
    for alias in aliases(&dir, mountinfo) {
        if !protected.iter().any(|p| beneath(&alias, p)) {
            protected.retain(|p| !beneath(p, &alias));
            protected.push(alias);
        }
    }
    protected.sort();
    let mut closed: Vec<P> = protected.iter().flat_map(|p| parents(p)).collect();
    closed.sort();
    closed.dedup();
    let (mut grants, mut dirs) = (Vec::new(), Vec::new());
    for parent in &closed {
        let names = match fs.list_dir(Path::new(std::ffi::OsStr::from_bytes(parent))) {
            Ok(n) => n,
            // Not there: nothing in it to grant, and nobody of the
            // service's can create it (its own parent is closed).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(format!(
                    "cannot list {}: {e}",
                    String::from_utf8_lossy(parent)
                ))
            }
        };
        for (name, kind) in names {
            let child = join(parent, name.as_bytes());
            // A symlink is not granted: the kernel checks the path it
            // resolves to, which has its own rule where it should, so a link
            // beside the data dir pointing into it grants nothing.
            if kind != Kind::Link
                && !protected.contains(&child)
                && closed.binary_search(&child).is_err()
            {
                if kind == Kind::Dir {
                    dirs.push(child.clone());
                }
                grants.push(child);
            }
        }
    }
    // Two sorts of byte paths, not one of (path, kind) pairs: another
    // instantiation of the sort costs 4 KB of the binary (measured).
    grants.sort();
    dirs.sort();
    let grants = grants
        .into_iter()
        .map(|p| Grant {
            dir: dirs.binary_search(&p).is_ok(),
            path: path(p),
        })
        .collect();
    let paths = |v: Vec<P>| v.into_iter().map(path).collect();
    Ok((paths(protected), grants, paths(closed)))
}

/// The data dir with symlinks resolved (its parent's, when it is absent or
/// may stall),
/// since Landlock checks the path the kernel resolves.
fn resolve(dir: &Path, may_stall: bool, fs: &dyn Inputs) -> PathBuf {
    if !may_stall {
        if let Ok(c) = fs.canonicalize(dir) {
            return c;
        }
    }
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => fs
            .canonicalize(parent)
            .map_or_else(|_| dir.to_path_buf(), |p| p.join(name)),
        _ => dir.to_path_buf(),
    }
}

/// Other places where files beneath `dir` are mounted: mounts of the same
/// device whose root lies inside the data dir's part of that filesystem, or
/// contains it.
pub fn aliases(dir: &[u8], mountinfo: &str) -> Vec<P> {
    let mounts: Vec<_> = mountinfo
        .lines()
        .filter_map(mountinfo::parse_line)
        .collect();
    // The mount the data dir is on: the longest mount point above it, the
    // latest of equals (it is mounted over the earlier ones).
    let Some((at, own)) = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| beneath(dir, m.mount_point.as_bytes()))
        .max_by_key(|(i, m)| (m.mount_point.len(), *i))
    else {
        return vec![];
    };
    let Some(rest) = below(dir, own.mount_point.as_bytes()) else {
        return vec![];
    };
    let in_fs = join(own.root.as_bytes(), rest);
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        if i == at || m.dev != own.dev {
            continue;
        }
        let alias = if let Some(b) = below(&in_fs, m.root.as_bytes()) {
            join(m.mount_point.as_bytes(), b)
        } else if beneath(m.root.as_bytes(), &in_fs) {
            m.mount_point.as_bytes().to_vec()
        } else {
            continue;
        };
        if !beneath(&alias, dir) {
            out.push(alias);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::mem::Mem;

    /// A mount table of local filesystems only: nothing can stall, so the
    /// data dir itself is resolved.
    const LOCAL: &str = "22 1 0:21 / / rw - overlay overlay rw\n";

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    fn container() -> Mem {
        let mut m = Mem::new();
        for d in [
            "/app",
            "/dls",
            "/etc",
            "/proc",
            "/tmp",
            "/usr",
            "/mnt",
            "/mnt/data",
        ] {
            m.dir(d, 0, 0, 0o755);
        }
        m.dir("/mnt/data/x", 0, 0, 0o755)
            .dir("/mnt/data/y", 0, 0, 0o755)
            .dir("/mnt/other", 0, 0, 0o755)
            .file("/mnt/data/notes", "", 0, 0, 0o644)
            .link("/lib", "/usr/lib")
            .link("/data", "/mnt/data/x");
        m
    }

    /// The container's files, where listing fails with `list_errno`, and
    /// resolving `forbidden` fails the test (a stalled mount).
    struct Strict {
        mem: Mem,
        list_errno: Option<i32>,
        forbidden: Option<&'static str>,
    }

    fn strict(list_errno: Option<i32>, forbidden: Option<&'static str>) -> Strict {
        Strict {
            mem: container(),
            list_errno,
            forbidden,
        }
    }

    impl Inputs for Strict {
        fn config_file(
            &self,
            p: &Path,
            max: u64,
            what: &str,
            fix: &str,
        ) -> crate::error::Result<Option<Vec<u8>>> {
            self.mem.config_file(p, max, what, fix)
        }
        fn metadata(&self, p: &Path) -> std::io::Result<crate::inputs::Meta> {
            self.mem.metadata(p)
        }
        fn canonicalize(&self, p: &Path) -> std::io::Result<PathBuf> {
            assert_ne!(
                Some(p),
                self.forbidden.map(Path::new),
                "the stalled mount was touched"
            );
            self.mem.canonicalize(p)
        }
        fn current_dir(&self) -> std::io::Result<PathBuf> {
            self.mem.current_dir()
        }
        fn list_and_enter(&self, p: &Path) -> std::io::Result<()> {
            self.mem.list_and_enter(p)
        }
        fn list_dir(&self, p: &Path) -> std::io::Result<Vec<(std::ffi::OsString, Kind)>> {
            match self.list_errno {
                Some(e) => Err(std::io::Error::from_raw_os_error(e)),
                None => self.mem.list_dir(p),
            }
        }
    }

    #[test]
    fn dls_keeps_every_other_entry_of_root_writable() {
        let (protected, grants, closed) =
            read_only(Path::new("/dls"), LOCAL, &container()).unwrap();
        assert_eq!(protected, paths(&["/dls"]));
        assert_eq!(closed, paths(&["/"]));
        // /data and /lib are symlinks: granting them would grant nothing
        // (the kernel checks where they lead), so they are left out.
        assert_eq!(
            granted(&grants),
            paths(&["/app", "/etc", "/mnt", "/proc", "/tmp", "/usr"])
        );
        assert!(grants.iter().all(|g| g.dir), "{grants:?}");
    }

    fn granted(grants: &[Grant]) -> Vec<PathBuf> {
        grants.iter().map(|g| g.path.clone()).collect()
    }

    #[test]
    fn a_deep_data_dir_closes_each_directory_on_the_way() {
        let (protected, grants, closed) =
            read_only(Path::new("/mnt/data/x"), LOCAL, &container()).unwrap();
        assert_eq!(protected, paths(&["/mnt/data/x"]));
        assert_eq!(closed, paths(&["/", "/mnt", "/mnt/data"]));
        let file = |p: &str, dir| Grant {
            path: p.into(),
            dir,
        };
        assert!(grants.contains(&file("/mnt/data/y", true)));
        assert!(grants.contains(&file("/mnt/data/notes", false)));
        assert!(grants.contains(&file("/mnt/other", true)));
        assert!(grants.contains(&file("/app", true)));
        let grants = granted(&grants);
        for never in ["/mnt", "/mnt/data", "/mnt/data/x", "/"] {
            assert!(
                !grants.contains(&never.into()),
                "{never} granted: {grants:?}"
            );
        }
    }

    #[test]
    fn a_symlinked_data_dir_is_protected_where_it_resolves() {
        let (protected, _, closed) = read_only(Path::new("/data"), LOCAL, &container()).unwrap();
        assert_eq!(protected, paths(&["/mnt/data/x"]));
        assert_eq!(closed, paths(&["/", "/mnt", "/mnt/data"]));
    }

    #[test]
    fn where_a_mount_can_stall_the_data_dir_itself_is_not_touched() {
        let nfs =
            "22 1 0:21 / / rw - overlay overlay rw\n30 22 0:50 / /mnt/data/x rw - nfs4 srv:/e rw\n";
        let (protected, _, closed) = read_only(
            Path::new("/mnt/data/x"),
            nfs,
            &strict(None, Some("/mnt/data/x")),
        )
        .unwrap();
        assert_eq!(protected, paths(&["/mnt/data/x"]));
        assert_eq!(closed, paths(&["/", "/mnt", "/mnt/data"]));
    }

    #[test]
    fn an_absent_data_dir_still_closes_its_parent() {
        let (protected, grants, closed) =
            read_only(Path::new("/mnt/new/deeper"), LOCAL, &container()).unwrap();
        assert_eq!(protected, paths(&["/mnt/new/deeper"]));
        assert_eq!(closed, paths(&["/", "/mnt", "/mnt/new"]));
        assert!(!grants.iter().any(|g| g.path.starts_with("/mnt/new")));
    }

    const MOUNTS: &str = "\
22 1 0:21 / / rw - overlay overlay rw
25 22 0:50 /visits /dls rw - nfs4 srv:/export rw
26 22 0:50 /visits/cm1234 /scratch rw - nfs4 srv:/export rw
27 22 0:50 / /export rw - nfs4 srv:/export rw
28 22 0:50 /other /unrelated rw - nfs4 srv:/export rw
29 25 0:50 /visits/cm1 /dls/cm1 rw - nfs4 srv:/export rw
30 22 8:1 /visits /elsewhere rw - ext4 /dev/sda1 rw
";

    #[test]
    fn other_mounts_of_the_same_files_are_protected_too() {
        let mut a: Vec<PathBuf> = aliases(b"/dls", MOUNTS).into_iter().map(path).collect();
        a.sort();
        // The export's root shows /visits at /export/visits; /scratch is a
        // visit inside the data dir; /unrelated and another device are not
        // the data; /dls/cm1 is already beneath the data dir.
        assert_eq!(a, paths(&["/export/visits", "/scratch"]));
        let mut m = container();
        m.dir("/export", 0, 0, 0o755)
            .dir("/export/visits", 0, 0, 0o755)
            .dir("/export/keep", 0, 0, 0o755)
            .dir("/scratch", 0, 0, 0o755);
        let (protected, grants, closed) = read_only(Path::new("/dls"), MOUNTS, &m).unwrap();
        assert_eq!(protected, paths(&["/dls", "/export/visits", "/scratch"]));
        assert_eq!(closed, paths(&["/", "/export"]));
        let grants = granted(&grants);
        assert!(grants.contains(&"/export/keep".into()), "{grants:?}");
        assert!(!grants.contains(&"/scratch".into()));
    }

    #[test]
    fn a_data_dir_inside_the_root_filesystem_has_no_alias_in_root_itself() {
        let m =
            "22 1 0:21 / / rw - overlay overlay rw\n23 22 0:21 /srv /srv rw - overlay overlay rw\n";
        assert!(aliases(b"/tmp/d", m).is_empty());
        assert!(aliases(b"/srv/d", m).is_empty());
        let bind = "22 1 0:21 / / rw - overlay overlay rw\n23 22 0:21 /tmp/d /mnt/d2 rw - overlay overlay rw\n";
        assert_eq!(aliases(b"/tmp/d", bind), vec![b"/mnt/d2".to_vec()]);
    }

    #[test]
    fn byte_paths_compare_by_components() {
        assert!(beneath(b"/dls/x", b"/dls") && beneath(b"/dls", b"/dls") && beneath(b"/a", b"/"));
        assert!(!beneath(b"/dlsx", b"/dls"));
        assert_eq!(below(b"/dls/x/y", b"/dls"), Some(&b"x/y"[..]));
        assert_eq!(below(b"/dls", b"/"), Some(&b"dls"[..]));
        assert_eq!(
            parents(b"/a/b/c"),
            vec![b"/a/b".to_vec(), b"/a".to_vec(), b"/".to_vec()]
        );
        assert!(parents(b"/").is_empty());
        assert_eq!(join(b"/", b"x"), b"/x".to_vec());
        assert_eq!(join(b"/a", b""), b"/a".to_vec());
    }

    #[test]
    fn an_unlistable_parent_is_a_reason_not_a_guess() {
        let e = read_only(Path::new("/dls"), LOCAL, &strict(Some(libc::EACCES), None)).unwrap_err();
        assert!(e.contains("cannot list /"), "{e}");
    }
}
