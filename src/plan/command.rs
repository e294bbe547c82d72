//! Finding the program to run: PATH look-up as the service's user, with the
//! shell's distinction between "not found" (127) and "not executable" (126),
//! decided before anything privileged happens.

use crate::error::{fail, Code, Result};
use crate::identity::access::{can_exec, exec_denied_by};
use crate::identity::Ids;
use crate::inputs::{Inputs, Kind};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// PATH when the environment has none (what Docker sets by default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `program` as execve would after chdir to `cwd`: a name with a
/// slash is a path (relative to `cwd`), anything else is searched in PATH.
pub fn resolve(
    program: &OsStr,
    path_var: Option<&OsStr>,
    cwd: &Path,
    who: &Ids,
    fs: &dyn Inputs,
) -> Result<PathBuf> {
    let shown = Path::new(program).display().to_string();
    if program.as_bytes().contains(&b'/') {
        let path = cwd.join(program);
        crate::inputs::doing(format!("looking at the command {}", path.display()));
        return match fs.metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(fail(
                Code::NotFound,
                format!(
                    "command {shown:?} not found (looked at {}); check the path or the image",
                    path.display()
                ),
            )),
            Err(e) => Err(fail(
                Code::CantExec,
                format!("command {shown:?} cannot be inspected: {e}"),
            )),
            Ok(m) if m.kind == Kind::Dir => Err(fail(
                Code::CantExec,
                format!("command {shown:?} is a directory; name the program inside it"),
            )),
            Ok(m) if !can_exec(who, &m) => Err(not_executable(&shown, &path, who)),
            Ok(_) => match exec_denied_by(who, &path, fs) {
                Some(why) => Err(denied(&shown, &path, &why)),
                None => Ok(path),
            },
        };
    }
    let path_var = path_var
        .filter(|p| !p.is_empty())
        .unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_exec: Option<PathBuf> = None;
    for dir in path_var.as_bytes().split(|b| *b == b':') {
        // An empty PATH element means the current directory.
        let dir = if dir.is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        crate::inputs::doing(format!("looking for {shown:?} in {}", dir.display()));
        if let Ok(m) = fs.metadata(&candidate) {
            if can_exec(who, &m) {
                // Found as root; the service's execve also needs search
                // permission on every directory on the way.
                return match exec_denied_by(who, &candidate, fs) {
                    Some(why) => Err(denied(&shown, &candidate, &why)),
                    None => Ok(candidate),
                };
            }
            if m.kind == Kind::File && not_exec.is_none() {
                not_exec = Some(candidate);
            }
        }
    }
    match not_exec {
        Some(path) => Err(not_executable(&shown, &path, who)),
        None => Err(fail(
            Code::NotFound,
            format!(
                "command {shown:?} not found in PATH={}; install it in the image or give its full path",
                Path::new(path_var).display()
            ),
        )),
    }
}

fn denied(shown: &str, path: &Path, why: &str) -> anyhow::Error {
    fail(
        Code::CantExec,
        format!(
            "command {shown:?} ({}) cannot be executed: Permission denied: {why}; fix that mode or owner",
            path.display()
        ),
    )
}

fn not_executable(shown: &str, path: &Path, who: &Ids) -> anyhow::Error {
    fail(
        Code::CantExec,
        format!(
            "command {shown:?} ({}) is not executable by uid {} gid {}; chmod +x it or fix its owner",
            path.display(),
            who.uid,
            who.gid
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;
    use crate::inputs::Fs;
    use std::os::unix::fs::PermissionsExt;

    fn who() -> Ids {
        Ids {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        }
    }

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn path_search_prefers_the_first_executable() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        file(a.path(), "svc", 0o644);
        let good = file(b.path(), "svc", 0o755);
        let path = format!("{}:{}", a.path().display(), b.path().display());
        let got = resolve(
            OsStr::new("svc"),
            Some(OsStr::new(&path)),
            Path::new("/"),
            &who(),
            &Fs,
        )
        .unwrap();
        assert_eq!(got, good);
    }

    #[test]
    fn not_found_is_127_not_executable_126() {
        let a = tempfile::tempdir().unwrap();
        file(a.path(), "noexec", 0o644);
        std::fs::create_dir(a.path().join("adir")).unwrap();
        let path = a.path().as_os_str();
        let code = |p: &str| {
            exit_code(&resolve(OsStr::new(p), Some(path), a.path(), &who(), &Fs).unwrap_err())
        };
        assert_eq!(code("missing"), 127);
        assert_eq!(code("noexec"), 126);
        assert_eq!(code("./noexec"), 126);
        assert_eq!(code("./adir"), 126);
        assert_eq!(code("./missing"), 127);
        assert_eq!(code("adir"), 127, "a directory in PATH is not a command");
    }

    #[test]
    fn relative_paths_resolve_against_the_workdir() {
        let a = tempfile::tempdir().unwrap();
        let p = file(a.path(), "run", 0o700);
        let me = Ids {
            uid: nix::unistd::geteuid().as_raw(),
            ..who()
        };
        assert_eq!(
            resolve(OsStr::new("./run"), None, a.path(), &me, &Fs).unwrap(),
            a.path().join("./run")
        );
        assert!(p.exists());
    }
}
