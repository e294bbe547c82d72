//! `smartem-init gen-etc`: writes the generated passwd and group files.

use crate::config::GenEtcConfig;
use crate::error::{fail, Code, Result};
use crate::identity::etc_files::generate;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `dir/name` through a new temporary file in `dir` and rename(2):
/// whatever is at the destination, a symlink to someone's file included, is
/// replaced, never written through, and a reader sees the old file or the
/// new one, never half of one. Mode 0644 whatever the umask.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut n = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        // O_EXCL|O_NOFOLLOW: a name someone planted is never opened.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|_| file.set_permissions(std::fs::Permissions::from_mode(0o644)))
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::rename(&tmp, dir.join(name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub fn run(cfg: &GenEtcConfig) -> Result<()> {
    let (passwd, group) = generate(&cfg.spec)?;
    // Created here because the image build runs this in a scratch stage,
    // where there is no mkdir.
    std::fs::create_dir_all(&cfg.out).map_err(|e| {
        fail(
            Code::OsErr,
            format!(
                "cannot create --out {}: {e}; pick a writable directory",
                cfg.out.display()
            ),
        )
    })?;
    for (name, text) in [("passwd", passwd), ("group", group)] {
        let path = cfg.out.join(name);
        replace(&cfg.out, name, text.as_bytes())
            .map_err(|e| fail(Code::OsErr, format!("cannot write {}: {e}", path.display())))?;
    }
    crate::info!(
        "wrote {0}/passwd and {0}/group ({1})",
        cfg.out.display(),
        if cfg.spec.uid == 0 {
            "root mode".to_string()
        } else {
            format!("{}:{} {}", cfg.spec.uid, cfg.spec.gid, cfg.spec.name)
        }
    );
    Ok(())
}
