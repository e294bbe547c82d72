//! What the plan reads from the file system, behind one read-only trait:
//! the read-side twin of the privilege drop's `Sys`. The plan asks for the
//! text of passwd, group and `.env` and the metadata of the workdir, PATH
//! candidates and the command; `Fs` answers from the real file system (each
//! look recorded for the start-up deadline's messages), and the plan's unit
//! tests answer from memory. Process state (credentials, environment) comes
//! in `plan::Facts`, read once by the caller.

pub mod config_file;
pub mod mountinfo;
pub mod procfs;
pub mod steps;

pub use steps::doing;

use crate::error::Result;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Other,
    /// Only from `list_dir`: `metadata` follows symlinks.
    Link,
}

/// The part of stat(2) the decisions use (symlinks followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl From<&std::fs::Metadata> for Meta {
    fn from(m: &std::fs::Metadata) -> Meta {
        Meta {
            kind: if m.is_file() {
                Kind::File
            } else if m.is_dir() {
                Kind::Dir
            } else {
                Kind::Other
            },
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
        }
    }
}

pub trait Inputs {
    /// A configuration file's bytes (None when absent), refused unless a
    /// regular file of at most `max` bytes (see config_file).
    fn config_file(&self, path: &Path, max: u64, what: &str, fix: &str) -> Result<Option<Vec<u8>>>;
    fn metadata(&self, path: &Path) -> std::io::Result<Meta>;
    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf>;
    fn current_dir(&self) -> std::io::Result<PathBuf>;
    /// The names in a directory (no `.` or `..`) and what each is,
    /// symlinks not followed (the type comes with the listing: no stat).
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<(std::ffi::OsString, Kind)>>;
    /// Lists a directory's first entry and enters it (stat of `path/.`):
    /// what the service needs of the data dir, asked as the current user.
    fn list_and_enter(&self, path: &Path) -> std::io::Result<()>;
}

/// The real file system.
pub struct Fs;

impl Inputs for Fs {
    fn config_file(&self, path: &Path, max: u64, what: &str, fix: &str) -> Result<Option<Vec<u8>>> {
        crate::inputs::config_file::read(path, max, what, fix)
    }
    fn metadata(&self, path: &Path) -> std::io::Result<Meta> {
        std::fs::metadata(path).map(|m| Meta::from(&m))
    }
    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }
    fn current_dir(&self) -> std::io::Result<PathBuf> {
        std::env::current_dir()
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<(std::ffi::OsString, Kind)>> {
        std::fs::read_dir(path)?
            .map(|e| {
                let e = e?;
                let t = e.file_type()?;
                let kind = if t.is_symlink() {
                    Kind::Link
                } else if t.is_dir() {
                    Kind::Dir
                } else if t.is_file() {
                    Kind::File
                } else {
                    Kind::Other
                };
                Ok((e.file_name(), kind))
            })
            .collect()
    }
    fn list_and_enter(&self, path: &Path) -> std::io::Result<()> {
        // The first entry only: a visit holds thousands of files.
        std::fs::read_dir(path)?.next().transpose()?;
        std::fs::metadata(path.join(".")).map(drop)
    }
}

/// In-memory inputs for unit tests: files with content, directories,
/// symlinks (absolute targets), each with owner and mode.
#[cfg(test)]
pub mod mem {
    use super::*;
    use crate::error::{fail, Code};
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct Mem {
        nodes: HashMap<PathBuf, (Meta, Vec<u8>)>,
        links: HashMap<PathBuf, PathBuf>,
        pub cwd: PathBuf,
    }

    impl Mem {
        pub fn new() -> Mem {
            let mut m = Mem {
                cwd: "/".into(),
                ..Default::default()
            };
            m.dir("/", 0, 0, 0o755);
            m
        }
        pub fn dir(&mut self, p: &str, uid: u32, gid: u32, mode: u32) -> &mut Mem {
            let meta = Meta {
                kind: Kind::Dir,
                uid,
                gid,
                mode: 0o40000 | mode,
            };
            self.nodes.insert(p.into(), (meta, vec![]));
            self
        }
        pub fn file(&mut self, p: &str, text: &str, uid: u32, gid: u32, mode: u32) -> &mut Mem {
            let meta = Meta {
                kind: Kind::File,
                uid,
                gid,
                mode: 0o100000 | mode,
            };
            self.nodes
                .insert(p.into(), (meta, text.as_bytes().to_vec()));
            self
        }
        pub fn fifo(&mut self, p: &str) -> &mut Mem {
            let meta = Meta {
                kind: Kind::Other,
                uid: 0,
                gid: 0,
                mode: 0o10644,
            };
            self.nodes.insert(p.into(), (meta, vec![]));
            self
        }
        pub fn link(&mut self, p: &str, target: &str) -> &mut Mem {
            self.links.insert(p.into(), target.into());
            self
        }
        fn resolve(&self, p: &Path) -> PathBuf {
            let mut out = PathBuf::from("/");
            for c in p.components().skip(1) {
                out.push(c);
                let mut hops = 0;
                while let Some(t) = self.links.get(&out) {
                    out = t.clone();
                    hops += 1;
                    if hops > 8 {
                        break;
                    }
                }
            }
            out
        }
    }

    fn not_found() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::ENOENT)
    }

    impl Inputs for Mem {
        fn config_file(
            &self,
            path: &Path,
            max: u64,
            what: &str,
            _fix: &str,
        ) -> Result<Option<Vec<u8>>> {
            match self.nodes.get(&self.resolve(path)) {
                None => Ok(None),
                Some((m, _)) if m.kind != Kind::File => Err(fail(
                    Code::Config,
                    format!(
                        "{} is not a regular file; the {what} must be a plain file",
                        path.display()
                    ),
                )),
                Some((_, b)) if b.len() as u64 > max => Err(fail(
                    Code::Config,
                    format!("{} is larger than {max} bytes", path.display()),
                )),
                Some((_, b)) => Ok(Some(b.clone())),
            }
        }
        fn metadata(&self, path: &Path) -> std::io::Result<Meta> {
            self.nodes
                .get(&self.resolve(path))
                .map(|(m, _)| *m)
                .ok_or_else(not_found)
        }
        fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
            let r = self.resolve(path);
            if self.nodes.contains_key(&r) {
                Ok(r)
            } else {
                Err(not_found())
            }
        }
        fn current_dir(&self) -> std::io::Result<PathBuf> {
            Ok(self.cwd.clone())
        }
        fn list_and_enter(&self, path: &Path) -> std::io::Result<()> {
            self.list_dir(path).map(drop)
        }
        fn list_dir(&self, path: &Path) -> std::io::Result<Vec<(std::ffi::OsString, Kind)>> {
            let dir = self.resolve(path);
            match self.nodes.get(&dir) {
                Some((m, _)) if m.kind == Kind::Dir => {}
                Some(_) => return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
                None => return Err(not_found()),
            }
            let mut names: Vec<_> = self
                .nodes
                .iter()
                .map(|(p, (m, _))| (p, m.kind))
                .chain(self.links.keys().map(|p| (p, Kind::Link)))
                .filter(|(p, _)| p.parent() == Some(dir.as_path()))
                .filter_map(|(p, k)| p.file_name().map(|n| (n.to_os_string(), k)))
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(names)
        }
    }
}
