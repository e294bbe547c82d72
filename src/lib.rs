//! smartem-init: a static PID-1 entrypoint. The binary is a thin `main`;
//! everything lives here so tests can reach the pure parts.

#[macro_use]
pub mod log;
pub mod access;
pub mod alloc;
pub mod cli;
pub mod command;
pub mod config;
pub mod config_file;
pub mod datadir;
pub mod deadline;
pub mod doctor;
pub mod dotenv;
pub mod error;
pub mod etc_files;
pub mod gen_etc;
pub mod healthcheck;
pub mod identity;
pub mod inputs;
pub mod mountinfo;
pub mod plan;
pub mod privileges;
pub mod roles;
pub mod run;
pub mod signals;
pub mod spawn;
pub mod supervise;
pub mod world;

use std::ffi::OsString;

/// Parse, dispatch, and map the outcome to the process status, printing
/// an error once. `inherited` is the signal state main() saved.
pub fn entry(args: Vec<OsString>, inherited: std::io::Result<signals::Inherited>) -> i32 {
    match dispatch(args, inherited) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            error::exit_code(&e)
        }
    }
}

fn dispatch(
    args: Vec<OsString>,
    inherited: std::io::Result<signals::Inherited>,
) -> error::Result<i32> {
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
        config::Command::GenEtc(cfg) => gen_etc::run(&cfg).map(|_| 0),
        config::Command::Doctor(cfg) => doctor::run(&cfg),
        config::Command::Health(cfg) => Ok(healthcheck::run(&cfg)),
    }
}
