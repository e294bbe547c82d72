//! The validated configuration every mode runs on: plain values, no clap.
//! `cli` produces them from argv and the environment; the rest of the
//! program reads only these.

use crate::log::Level;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Identity-related settings shared by run mode and doctor.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub user: Option<String>,
    pub data_dir: PathBuf,
    /// Given by --data-dir/SMARTEM_DATA_DIR rather than the /dls default:
    /// as a plain init (a command given) only a configured one is checked.
    pub data_dir_given: bool,
    pub etc_dir: PathBuf,
    /// Bound on each file-system step before the service starts.
    pub io_timeout: Duration,
}

/// Run mode, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub id: IdentityConfig,
    pub role: String,
    pub workdir: Option<PathBuf>,
    pub require_data_dir: bool,
    pub data_dir_timeout: Duration,
    pub grace_period: Duration,
    pub require_non_root: bool,
    /// Supplementary groups exactly the group file's (no runtime groups).
    pub strict_groups: bool,
    /// How received signals reach the service.
    pub forwarding: Forwarding,
    /// Service exit codes reported as 0 (tini -e).
    pub success_exit: Vec<i32>,
    pub keep_caps: Vec<caps::Capability>,
    /// What confines the service beyond the drop (Landlock, seccomp).
    pub confine: ConfineConfig,
    pub skip_migrations: bool,
    pub api_cmd: Option<String>,
    pub worker_cmd: Option<String>,
    pub migrate_cmd: Option<String>,
    pub dry_run: bool,
    pub format: Format,
    pub log_level: Level,
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone)]
pub struct GenEtcConfig {
    pub spec: crate::identity::etc_files::GenSpec,
    pub out: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DoctorConfig {
    pub id: IdentityConfig,
    pub paths: Vec<PathBuf>,
    /// Run mode's settings from this environment with doctor's identity
    /// options on top (or why they don't resolve): the plan doctor explains.
    pub run: std::result::Result<RunConfig, String>,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub url: Option<String>,
    pub timeout: Duration,
    /// Run mode's settings from this environment, resolved exactly as a
    /// start would (or why they don't resolve): role, workdir, .env, port.
    pub run: std::result::Result<RunConfig, String>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Run(RunConfig),
    GenEtc(GenEtcConfig),
    Doctor(DoctorConfig),
    Health(HealthConfig),
    /// --help / --version: the text to print on stdout, exit 0.
    Info(String),
}

pub const DEFAULT_DATA_DIR: &str = "/dls";
pub const DEFAULT_GRACE: Duration = Duration::from_secs(25);
pub const DEFAULT_DATA_DIR_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The service's confinement: the data dir read-only by Landlock, a
/// baseline seccomp filter where the runtime set none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfineConfig {
    /// --data-dir-writable: no Landlock rule set.
    pub data_dir_writable: bool,
    /// --require-confinement: what the kernel or runtime cannot give is
    /// exit 77 instead of a warning.
    pub require: bool,
    pub seccomp: SeccompMode,
}

/// --seccomp / SMARTEM_SECCOMP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeccompMode {
    /// The baseline filter only when the process started with none.
    #[default]
    Baseline,
    /// The baseline filter on top of whatever the runtime set.
    Always,
    Off,
}

/// How received signals reach the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// (received, sent instead); sent 0 drops the signal (dumb-init -r).
    pub rewrite: Vec<(i32, i32)>,
    /// Only the service's own process, not its process group (tini's
    /// default; dumb-init's and ours is the group).
    pub child_only: bool,
    /// The service has the terminal's foreground: when Ctrl-Z stops it, we
    /// stop too (so the shell gets its prompt back), and when `fg`
    /// continues us, the service gets the terminal and SIGCONT again.
    pub job_control: bool,
}

impl Forwarding {
    /// The signal sent for `sig`; 0 when it is dropped.
    pub fn rewritten(&self, sig: i32) -> i32 {
        self.rewrite
            .iter()
            .find(|(from, _)| *from == sig)
            .map_or(sig, |(_, to)| *to)
    }
}
