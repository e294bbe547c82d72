//! `smartem-init gen-etc`: writes the generated passwd and group files.

use crate::cli::GenEtcConfig;
use crate::error::{fail, Code, Result};
use crate::etc_files::generate;
use std::os::unix::fs::PermissionsExt;

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
        std::fs::write(&path, text)
            .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)))
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
