//! smartem-init: a static PID-1 entrypoint. The binary is a thin `main`;
//! everything lives here so tests can reach the pure parts.

// Modules are private: the compiler reports whatever nothing uses. What
// crosses the crate's edge is re-exported below (the binary's main, the
// fuzz targets).
#[macro_use]
mod log;
mod alloc;
mod cli;
mod commands;
mod config;
mod confine;
mod deadline;
mod error;
mod identity;
mod inputs;
mod pid1;
mod plan;
mod run;
mod smartem;
mod world;

pub use alloc::Arena;
/// The one parser of /proc/PID/status, for the tests and testsvc too.
pub use inputs::procfs::status_field;
pub use pid1::signals::{block_all, Inherited};

/// The parsers the fuzz targets drive (fuzz/).
pub mod fuzzing {
    pub use crate::identity::etc_files::{parse_group, parse_passwd, EtcDb, MAX_ID};
    pub use crate::identity::resolve;
    pub use crate::smartem::dotenv::parse as parse_dotenv;
}

use std::ffi::OsString;

/// Parse, dispatch, and map the outcome to the process status, printing
/// an error once. `inherited` is the signal state main() saved.
pub fn entry(args: Vec<OsString>, inherited: std::io::Result<Inherited>) -> i32 {
    match dispatch(args, inherited) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            error::exit_code(&e)
        }
    }
}

fn dispatch(args: Vec<OsString>, inherited: std::io::Result<Inherited>) -> error::Result<i32> {
    let inherited = inherited.map_err(|e| error::os_fail("blocking signals", e))?;
    // Refuse a setuid/setgid installation before even parsing arguments.
    let current = identity::Current::read().map_err(|e| error::os_fail("getresuid", e))?;
    identity::check_not_setuid(&current)?;
    match cli::parse(args)? {
        config::Command::Info(text) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(0)
        }
        config::Command::Run(cfg) => {
            log::set_level(cfg.log_level);
            run::run(&cfg, &inherited)
        }
        config::Command::GenEtc(cfg) => commands::gen_etc::run(&cfg).map(|_| 0),
        config::Command::Doctor(cfg) => commands::doctor::run(&cfg),
        config::Command::Health(cfg) => Ok(commands::healthcheck::run(&cfg)),
    }
}
