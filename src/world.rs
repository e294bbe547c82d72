//! The I/O edge of planning: the process's state read once (`facts`), and
//! the plan built against the real file system within the start-up
//! deadline (`plan`). Run mode, the dry run, doctor and healthcheck all
//! plan through here, so they decide alike.

use crate::config::RunConfig;
use crate::deadline;
use crate::error::{os_fail, Result};
use crate::identity::creds;
use crate::inputs::procfs;
use crate::plan::{self, Facts, Plan};

/// Reads the process's identity, capabilities, terminal and environment.
pub fn facts() -> Result<Facts> {
    let creds = creds::read_state().map_err(|e| os_fail("reading credentials", e))?;
    Ok(Facts {
        pid: std::process::id() as i32,
        creds,
        stdin_tty: nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
        env: std::env::vars_os().collect(),
        ngroups_max: std::fs::read_to_string("/proc/sys/kernel/ngroups_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65536),
        setgroups_denied: std::fs::read_to_string("/proc/self/setgroups")
            .is_ok_and(|s| s.trim() == "deny"),
        in_userns: std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]),
        kernel: crate::confine::KernelFacts {
            landlock_abi: crate::confine::landlock::probe(),
            seccomp: procfs::status("self")
                .ok()
                .and_then(|s| procfs::seccomp_of(&s)),
        },
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    })
}

/// plan::build in a bounded step: it reads passwd, group and .env and looks
/// at the workdir and PATH, any of which may sit on a stalled mount.
pub fn plan(cfg: &RunConfig, facts: &Facts, local: bool) -> Result<Plan> {
    let (c, f) = (cfg.clone(), facts.clone());
    deadline::run("planning", cfg.id.io_timeout, local, move || {
        plan::build(&c, &f, &crate::inputs::Fs)
    })?
}
