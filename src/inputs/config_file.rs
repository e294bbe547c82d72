//! Reading the small files smartem-init trusts for configuration (passwd,
//! group, `.env`) so that none of them can hang start-up or exhaust memory:
//! opened with O_NONBLOCK (a FIFO opens at once instead of waiting for a
//! writer), refused unless fstat says it is a regular file, read up to a
//! size limit. Symlinks are followed: Kubernetes ConfigMap and Secret
//! mounts are symlinks. Errors are classified once, here: content and
//! permission problems are the operator's (78), the system's own failures
//! (no descriptors, no memory, I/O errors) are 71 with advice that fits.

use crate::error::{fail, Code, Result};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The exit code and advice for an errno met while reading `path`.
pub fn classify(err: &std::io::Error, path: &Path, fix: &str) -> anyhow::Error {
    let shown = path.display();
    let (code, advice) = match err.raw_os_error() {
        Some(libc::EMFILE) => (
            Code::OsErr,
            "the process is out of file descriptors: raise RLIMIT_NOFILE (ulimit -n)".to_string(),
        ),
        Some(libc::ENFILE) => (
            Code::OsErr,
            "the system is out of file descriptors (fs.file-max)".to_string(),
        ),
        Some(libc::ENOMEM) => (
            Code::OsErr,
            "out of memory: raise the container's memory limit".to_string(),
        ),
        Some(libc::EIO) => (
            Code::OsErr,
            "an I/O error: the filesystem or device under it is failing".to_string(),
        ),
        Some(libc::EINTR) | Some(libc::EAGAIN) => {
            (Code::OsErr, "interrupted: try again".to_string())
        }
        _ => (Code::Config, fix.to_string()),
    };
    fail(code, format!("cannot read {shown}: {err}; {advice}"))
}

fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The bytes of `path`, None when it does not exist. `what` names the file
/// in messages ("passwd file"); `fix` is the advice for a permission problem.
pub fn read(path: &Path, max: u64, what: &str, fix: &str) -> Result<Option<Vec<u8>>> {
    crate::inputs::doing(format!("reading {}", path.display()));
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(classify(&e, path, fix)),
    };
    let meta = file.metadata().map_err(|e| classify(&e, path, fix))?;
    if !meta.is_file() {
        return Err(fail(
            Code::Config,
            format!(
                "{} is {}, not a regular file; the {what} must be a plain file",
                path.display(),
                kind(meta.file_type())
            ),
        ));
    }
    if meta.len() > max {
        return Err(too_large(path, max, what));
    }
    let mut bytes = Vec::new();
    // The limit again while reading: the file may grow after fstat.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| classify(&e, path, fix))?;
    if bytes.len() as u64 > max {
        return Err(too_large(path, max, what));
    }
    Ok(Some(bytes))
}

fn too_large(path: &Path, max: u64, what: &str) -> anyhow::Error {
    fail(
        Code::Config,
        format!(
            "{} is larger than {max} bytes; is it really a {what}?",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    #[test]
    fn regular_files_only_and_fifos_do_not_block() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read(&fifo, 100, "passwd file", "fix it").unwrap_err();
        assert_eq!(exit_code(&err), 78);
        assert!(
            format!("{err}").contains("is a FIFO, not a regular file"),
            "{err}"
        );
        let err = read(d.path(), 100, "passwd file", "fix it").unwrap_err();
        assert!(format!("{err}").contains("is a directory"), "{err}");
        assert_eq!(read(&d.path().join("none"), 100, "x", "y").unwrap(), None);
        let f = d.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(read(&f, 3, "x", "y").unwrap().unwrap(), b"abc");
        let err = read(&f, 2, ".env file", "y").unwrap_err();
        assert!(format!("{err}").contains("larger than 2 bytes; is it really a .env file?"));
        // Followed, as a ConfigMap mount needs.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read(&link, 3, "x", "y").unwrap().unwrap(), b"abc");
        let err = read(Path::new("/dev/zero"), 3, ".env file", "y").unwrap_err();
        assert!(format!("{err}").contains("character device"), "{err}");
    }

    #[test]
    fn system_failures_are_71_content_and_permission_78() {
        let p = Path::new("/etc/passwd");
        for (errno, code) in [
            (libc::EMFILE, 71),
            (libc::ENFILE, 71),
            (libc::ENOMEM, 71),
            (libc::EIO, 71),
            (libc::EACCES, 78),
            (libc::ELOOP, 78),
        ] {
            let e = classify(
                &std::io::Error::from_raw_os_error(errno),
                p,
                "make it readable",
            );
            assert_eq!(exit_code(&e), code, "errno {errno}: {e}");
        }
        let e = classify(
            &std::io::Error::from_raw_os_error(libc::EMFILE),
            p,
            "make it readable",
        );
        assert!(
            format!("{e}").contains("RLIMIT_NOFILE")
                && !format!("{e}").contains("make it readable")
        );
    }
}
