//! The command line: clap definitions with their environment fallbacks.
//! This is the only module that sees clap; it hands the rest of the program
//! plain validated values (`Command`), and maps usage errors to exit 64.

use crate::config::*;
use crate::error::{fail, Code, Result};
use crate::log::Level;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "smartem-init",
    version,
    about = "Static PID-1 entrypoint: drops to the configured user, checks the data mount, runs the role's service, forwards signals and reaps zombies.",
    args_conflicts_with_subcommands = true,
    after_help = "Also read: HTTP_API_PORT (the api role's port, default 8000), KUBERNETES_SERVICE_HOST (set: WORKDIR/.env is not loaded), PATH (where commands are found), RABBITMQ_PORT (healthcheck: the worker's broker connection). The roles and every variable: README.md.",
    disable_help_subcommand = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Write passwd and group files for a FROM-scratch image
    GenEtc(GenEtcArgs),
    /// Explain identity, capabilities and data-dir access; change nothing
    Doctor(DoctorArgs),
    /// HTTP GET a health URL: exit 0 on 2xx, 1 otherwise
    Healthcheck(HealthArgs),
}

/// Options shared by run mode and doctor: who the service is and what it reads.
#[derive(Args, Debug)]
struct IdentityArgs {
    /// Run as USER[:GROUP] (names or numbers); unset keeps the current identity
    #[arg(long, env = "SMARTEM_USER", value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Data directory checked for readability as the service's user
    #[arg(long, env = "SMARTEM_DATA_DIR", value_name = "PATH")]
    data_dir: Option<PathBuf>,
    /// Seconds each file-system step before the service starts may take (reading passwd, group, .env;
    /// looking at the workdir and PATH) before it is reported as stalled [default: 5]
    #[arg(long, env = "SMARTEM_IO_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    io_timeout: Option<Duration>,
    /// Directory holding the passwd and group files (for tests and odd images)
    #[arg(
        long,
        env = "SMARTEM_ETC_DIR",
        value_name = "DIR",
        hide_short_help = true
    )]
    etc_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    id: IdentityArgs,
    /// Role whose command runs: api, worker or migrate (empty means api). Without it, the ROLE
    /// variable decides, from the environment or WORKDIR/.env (the environment wins) [env: ROLE=]
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
    /// Directory to chdir to before the service starts [default: /app if it exists]
    #[arg(long, env = "SMARTEM_WORKDIR", value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Make an unreadable data dir fatal (exit 78) instead of a warning
    #[arg(long, env = "SMARTEM_REQUIRE_DATA_DIR", action = ArgAction::SetTrue, value_parser = parse_switch)]
    require_data_dir: bool,
    /// Seconds to wait for the data-dir check before reporting a stall [default: 5]
    #[arg(long, env = "SMARTEM_DATA_DIR_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    data_dir_timeout: Option<Duration>,
    /// Seconds between forwarding SIGTERM/SIGINT and SIGKILL [default: 25]
    #[arg(long, env = "SMARTEM_GRACE_PERIOD", value_name = "SECS", value_parser = parse_secs)]
    grace_period: Option<Duration>,
    /// Started as root: supplementary groups exactly the user's /etc/group memberships, dropping
    /// those the runtime added (fsGroup, supplementalGroups, --group-add); default: both, merged
    #[arg(long, env = "SMARTEM_STRICT_GROUPS", action = ArgAction::SetTrue, value_parser = parse_switch)]
    strict_groups: bool,
    /// Send the service TO when FROM arrives (names or numbers, e.g. TERM:INT; TO 0 drops FROM),
    /// like dumb-init -r (repeatable)
    #[arg(
        long = "rewrite-signal",
        env = "SMARTEM_REWRITE_SIGNALS",
        value_name = "FROM:TO",
        value_delimiter = ','
    )]
    rewrite_signal: Vec<String>,
    /// Forward signals to the service's process only, not its process group (tini's default;
    /// ours, like dumb-init's, is the group)
    #[arg(long, env = "SMARTEM_SIGNAL_CHILD_ONLY", action = ArgAction::SetTrue, value_parser = parse_switch)]
    signal_child_only: bool,
    /// Report this service exit code as 0, like tini -e (repeatable; e.g. 143 for a service that
    /// ends a clean stop by dying of SIGTERM)
    #[arg(
        long = "success-exit",
        env = "SMARTEM_SUCCESS_EXIT",
        value_name = "CODE",
        value_delimiter = ','
    )]
    success_exit: Vec<String>,
    /// Refuse to run the service as uid 0
    #[arg(long, env = "SMARTEM_REQUIRE_NON_ROOT", action = ArgAction::SetTrue, value_parser = parse_switch)]
    require_non_root: bool,
    /// Keep this capability as ambient after the drop (repeatable; e.g. NET_BIND_SERVICE)
    #[arg(
        long = "keep-cap",
        env = "SMARTEM_KEEP_CAPS",
        value_name = "CAP",
        value_delimiter = ','
    )]
    keep_cap: Vec<String>,
    /// Leave the data dir writable to the service (no Landlock rule set); by default the service
    /// can read beneath it but not write, create, remove, rename, link or truncate there
    #[arg(long, env = "SMARTEM_DATA_DIR_WRITABLE", action = ArgAction::SetTrue, value_parser = parse_switch)]
    data_dir_writable: bool,
    /// Refuse to start (exit 77) when the kernel or runtime cannot give the planned confinement
    /// (Landlock, the seccomp filter); by default that is one warning
    #[arg(long, env = "SMARTEM_REQUIRE_CONFINEMENT", action = ArgAction::SetTrue, value_parser = parse_switch)]
    require_confinement: bool,
    /// Baseline seccomp filter: baseline (only when the runtime set no filter), always, off
    /// [default: baseline]
    #[arg(long, env = "SMARTEM_SECCOMP", value_name = "MODE")]
    seccomp: Option<String>,
    /// api role: do not run the migration before the service
    #[arg(long, env = "SMARTEM_SKIP_MIGRATIONS", action = ArgAction::SetTrue, value_parser = parse_switch)]
    skip_migrations: bool,
    /// Command line of the api role's service (split like a shell, no expansion)
    #[arg(long, env = "SMARTEM_API_CMD", value_name = "CMDLINE")]
    api_cmd: Option<String>,
    /// Command line of the worker role's service
    #[arg(long, env = "SMARTEM_WORKER_CMD", value_name = "CMDLINE")]
    worker_cmd: Option<String>,
    /// Command line of the api role's pre-start migration
    #[arg(long, env = "SMARTEM_MIGRATE_CMD", value_name = "CMDLINE")]
    migrate_cmd: Option<String>,
    /// Print the plan and exit (0, or the code the real run would fail with)
    #[arg(long)]
    dry_run: bool,
    /// Plan format for --dry-run
    #[arg(long, value_name = "text|json", requires = "dry_run", value_parser = ["text", "json"])]
    format: Option<String>,
    /// More of smartem-init's own messages (debug). Without -v/-q the level comes from
    /// SMARTEM_INIT_LOG=debug|info|warn|error [default: info]
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Fewer of smartem-init's own messages (-q warnings, -qq errors only)
    #[arg(short, long, action = ArgAction::Count)]
    quiet: u8,
    /// The command to run instead of the role's (generic init use), with or without `--` before
    /// it: the first argument that is not an option starts it, and everything after it, options
    /// included, is the command's (as with tini, dumb-init and gosu)
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Args, Debug)]
struct GenEtcArgs {
    /// The user's uid (0: root mode, no user created); env: the Dockerfile build arg
    #[arg(long, env = "userid", value_name = "UID")]
    uid: String,
    /// The user's primary gid
    #[arg(long, env = "groupid", value_name = "GID")]
    gid: String,
    /// Name of the user and of its group
    #[arg(long, env = "groupname", value_name = "NAME")]
    name: String,
    /// Home directory of the user [default: /nonexistent]
    #[arg(long, value_name = "DIR")]
    home: Option<String>,
    /// Directory to write passwd and group into (created if missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct DoctorArgs {
    #[command(flatten)]
    id: IdentityArgs,
    /// Further paths to check besides the data dir
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct HealthArgs {
    /// URL to GET [default: http://127.0.0.1:${HTTP_API_PORT:-8000}/health]
    #[arg(value_name = "URL")]
    url: Option<String>,
    /// Seconds before giving up
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    timeout: Duration,
}

/// Strict on/off for switches set from the environment: a typo must not
/// silently mean "on" (or "off").
fn parse_switch(s: &str) -> std::result::Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{s:?} is not a switch value; use 1 or 0")),
    }
}

/// Seconds as a non-negative decimal, at most a day.
pub fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=86400.0).contains(&v) {
        return Err(format!("{s:?} is out of range; use 0..=86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses argv (program name first). Usage errors are one line, exit 64.
pub fn parse(args: Vec<OsString>) -> Result<Command> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Command::Info(e.render().to_string()))
                }
                _ => Err(fail(Code::Usage, one_line(&e.render().to_string()))),
            };
        }
    };
    match cli.sub {
        Some(Sub::GenEtc(a)) => gen_etc(a),
        Some(Sub::Doctor(a)) => {
            let id = identity(a.id)?;
            let run = run_from(&[OsString::from("smartem-init")])
                .map(|mut c| {
                    c.id = id.clone();
                    c
                })
                .map_err(|e| format!("{e:#}"));
            Ok(Command::Doctor(DoctorConfig {
                id,
                paths: a.paths,
                run,
            }))
        }
        Some(Sub::Healthcheck(a)) => Ok(Command::Health(HealthConfig {
            url: a.url.filter(|u| !u.is_empty()),
            timeout: a.timeout,
            run: run_from(&[OsString::from("smartem-init")]).map_err(|e| format!("{e:#}")),
        })),
        None => run(cli.run).map(Command::Run),
    }
}

/// Run mode's configuration from `args` (program name first) and the
/// environment, as a start with those arguments would resolve it. For
/// `healthcheck`, which must see what the running init saw.
pub fn run_from(args: &[OsString]) -> Result<RunConfig> {
    match parse(args.to_vec())? {
        Command::Run(cfg) => Ok(cfg),
        _ => Err(fail(Code::Usage, "not run-mode arguments")),
    }
}

/// clap's first paragraph (e.g. "required arguments were not provided:"
/// and the list under it) as one line, with a pointer to --help.
fn one_line(rendered: &str) -> String {
    let para: Vec<&str> = rendered
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = para.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = if text.is_empty() {
        "invalid arguments"
    } else {
        text
    };
    format!("{text}; see smartem-init --help")
}

fn nonempty<T: AsRef<std::ffi::OsStr>>(v: Option<T>) -> Option<T> {
    v.filter(|s| !s.as_ref().is_empty())
}

fn absolute(path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(fail(
            Code::Usage,
            format!(
                "{what} {:?} is a relative path; give an absolute one",
                path.display().to_string()
            ),
        ))
    }
}

fn identity(a: IdentityArgs) -> Result<IdentityConfig> {
    Ok(IdentityConfig {
        user: nonempty(a.user),
        data_dir_given: a
            .data_dir
            .as_ref()
            .is_some_and(|d| !d.as_os_str().is_empty()),
        data_dir: absolute(
            nonempty(a.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            "--data-dir/SMARTEM_DATA_DIR",
        )?,
        etc_dir: absolute(
            nonempty(a.etc_dir).unwrap_or_else(|| "/etc".into()),
            "--etc-dir/SMARTEM_ETC_DIR",
        )?,
        io_timeout: a.io_timeout.unwrap_or(DEFAULT_IO_TIMEOUT),
    })
}

/// A signal by name (TERM, SIGTERM, any case) or number (1..=64); 0 only
/// where `zero_ok` (a rewrite's target: drop the signal).
pub fn parse_signal(s: &str, zero_ok: bool) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return ((1..=64).contains(&n) || (zero_ok && n == 0)).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|sig| sig as i32)
}

/// FROM:TO for --rewrite-signal.
fn parse_rewrite(r: &str) -> Result<(i32, i32)> {
    let bad = || {
        fail(
            Code::Usage,
            format!("--rewrite-signal/SMARTEM_REWRITE_SIGNALS {r:?} is not FROM:TO; use signal names or numbers, e.g. TERM:INT (TO 0 drops FROM)"),
        )
    };
    let (from, to) = r.split_once(':').ok_or_else(bad)?;
    let from = parse_signal(from, false).ok_or_else(bad)?;
    if from == libc::SIGKILL || from == libc::SIGSTOP || from == libc::SIGCHLD {
        return Err(fail(
            Code::Usage,
            format!("--rewrite-signal {r:?}: SIGKILL and SIGSTOP never arrive and SIGCHLD is not forwarded; rewrite another signal"),
        ));
    }
    Ok((from, parse_signal(to, true).ok_or_else(bad)?))
}

/// Accepts NET_BIND_SERVICE, cap_net_bind_service, CAP_NET_BIND_SERVICE.
pub fn parse_cap(name: &str) -> Result<caps::Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<caps::Capability>().map_err(|_| {
        fail(
            Code::Usage,
            format!("unknown capability {name:?} in --keep-cap/SMARTEM_KEEP_CAPS; use a name such as NET_BIND_SERVICE"),
        )
    })
}

/// --seccomp/SMARTEM_SECCOMP; empty means the default.
fn parse_seccomp(mode: &str) -> Result<SeccompMode> {
    match mode.trim().to_ascii_lowercase().as_str() {
        "" | "baseline" => Ok(SeccompMode::Baseline),
        "always" => Ok(SeccompMode::Always),
        "off" => Ok(SeccompMode::Off),
        _ => Err(fail(
            Code::Usage,
            format!(
                "--seccomp/SMARTEM_SECCOMP {mode:?} is not a mode; use baseline, always or off"
            ),
        )),
    }
}

fn log_level(verbose: u8, quiet: u8) -> Result<Level> {
    if verbose > 0 {
        return Ok(Level::Debug);
    }
    match quiet {
        1 => return Ok(Level::Warn),
        q if q >= 2 => return Ok(Level::Error),
        _ => {}
    }
    match std::env::var("SMARTEM_INIT_LOG") {
        Ok(v) if !v.is_empty() => Level::parse(&v).ok_or_else(|| {
            fail(
                Code::Usage,
                format!("SMARTEM_INIT_LOG={v:?} is not a level; use debug, info, warn or error"),
            )
        }),
        Err(std::env::VarError::NotUnicode(v)) => Err(fail(
            Code::Usage,
            format!("SMARTEM_INIT_LOG={v:?} is not a level (not even UTF-8); use debug, info, warn or error"),
        )),
        _ => Ok(Level::Info),
    }
}

fn run(a: RunArgs) -> Result<RunConfig> {
    let mut keep_caps = Vec::new();
    for name in a.keep_cap.iter().filter(|n| !n.trim().is_empty()) {
        let cap = parse_cap(name)?;
        if !keep_caps.contains(&cap) {
            keep_caps.push(cap);
        }
    }
    let workdir = match nonempty(a.workdir) {
        Some(w) => Some(absolute(w, "--workdir/SMARTEM_WORKDIR")?),
        None => None,
    };
    if a.command.first().is_some_and(|c| c.is_empty()) {
        return Err(fail(
            Code::Usage,
            "the command after -- is an empty string; give a program to run",
        ));
    }
    Ok(RunConfig {
        id: identity(a.id)?,
        role: a.role.unwrap_or_default(),
        workdir,
        require_data_dir: a.require_data_dir,
        data_dir_timeout: a.data_dir_timeout.unwrap_or(DEFAULT_DATA_DIR_TIMEOUT),
        grace_period: a.grace_period.unwrap_or(DEFAULT_GRACE),
        require_non_root: a.require_non_root,
        strict_groups: a.strict_groups,
        forwarding: crate::config::Forwarding {
            rewrite: a
                .rewrite_signal
                .iter()
                .filter(|r| !r.trim().is_empty())
                .map(|r| parse_rewrite(r))
                .collect::<Result<_>>()?,
            child_only: a.signal_child_only,
            job_control: false,
        },
        success_exit: a
            .success_exit
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                c.trim()
                    .parse::<u8>()
                    .map(i32::from)
                    .map_err(|_| fail(Code::Usage, format!("--success-exit/SMARTEM_SUCCESS_EXIT {c:?} is not an exit code; use 0..=255")))
            })
            .collect::<Result<_>>()?,
        keep_caps,
        confine: ConfineConfig {
            data_dir_writable: a.data_dir_writable,
            require: a.require_confinement,
            seccomp: parse_seccomp(a.seccomp.as_deref().unwrap_or_default())?,
        },
        skip_migrations: a.skip_migrations,
        api_cmd: nonempty(a.api_cmd),
        worker_cmd: nonempty(a.worker_cmd),
        migrate_cmd: nonempty(a.migrate_cmd),
        dry_run: a.dry_run,
        format: if a.format.as_deref() == Some("json") {
            Format::Json
        } else {
            Format::Text
        },
        log_level: log_level(a.verbose, a.quiet)?,
        command: a.command,
    })
}

fn gen_etc(a: GenEtcArgs) -> Result<Command> {
    let id = |what: &str, v: &str| {
        crate::identity::etc_files::parse_id_str(v).ok_or_else(|| {
            fail(
                Code::Usage,
                format!("{what} {v:?} is not an id; use a number in 0..=4294967294"),
            )
        })
    };
    Ok(Command::GenEtc(GenEtcConfig {
        spec: crate::identity::etc_files::GenSpec {
            uid: id("--uid", &a.uid)?,
            gid: id("--gid", &a.gid)?,
            name: a.name,
            home: a.home,
        },
        out: a.out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("smartem-init")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn run_cfg(list: &[&str]) -> RunConfig {
        match parse(args(list)).unwrap() {
            Command::Run(r) => r,
            other => panic!("not run mode: {other:?}"),
        }
    }

    #[test]
    fn flags_and_trailing_command() {
        let r = run_cfg(&[
            "--user",
            "5000:5000",
            "--role",
            "worker",
            "--grace-period",
            "1.5",
            "--keep-cap",
            "net_bind_service",
            "--keep-cap",
            "CAP_NET_BIND_SERVICE",
            "--dry-run",
            "--format",
            "json",
            "--",
            "sleep",
            "--",
            "5",
        ]);
        assert_eq!(r.id.user.as_deref(), Some("5000:5000"));
        assert_eq!(r.role, "worker");
        assert_eq!(r.grace_period, Duration::from_millis(1500));
        assert_eq!(r.keep_caps, vec![caps::Capability::CAP_NET_BIND_SERVICE]);
        assert!(r.dry_run);
        assert_eq!(r.format, Format::Json);
        assert_eq!(r.command, vec!["sleep", "--", "5"]);
        assert_eq!(r.id.data_dir, PathBuf::from("/dls"));
    }

    #[test]
    fn usage_errors_are_64_and_one_line() {
        for bad in [
            &["--bogus"][..],
            &["--grace-period", "-1"],
            &["--grace-period", "abc"],
            &["--grace-period", "NaN"],
            &["--grace-period", "1e9"],
            &["--keep-cap", "FLY"],
            &["--format", "json"],
            &["--data-dir", "relative/dir"],
            &["--workdir", "app"],
            &["--format", "yaml", "--dry-run"],
            &["-v", "-q"],
            &["gen-etc", "--uid", "-1", "--gid", "0", "--name", "x"],
            &[
                "gen-etc",
                "--uid",
                "4294967295",
                "--gid",
                "0",
                "--name",
                "x",
            ],
            &["--", ""],
        ] {
            let err = parse(args(bad)).unwrap_err();
            assert_eq!(exit_code(&err), 64, "{bad:?}");
            let msg = format!("{err:#}");
            assert!(!msg.contains('\n'), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn help_and_version_are_info() {
        assert!(
            matches!(parse(args(&["--help"])).unwrap(), Command::Info(t) if t.contains("--grace-period"))
        );
        assert!(matches!(
            parse(args(&["--version"])).unwrap(),
            Command::Info(_)
        ));
    }

    #[test]
    fn switches_are_strict() {
        assert_eq!(parse_switch("1"), Ok(true));
        assert_eq!(parse_switch("off"), Ok(false));
        assert_eq!(parse_switch(""), Ok(false));
        assert!(parse_switch("maybe").is_err());
    }

    #[test]
    fn subcommands() {
        match parse(args(&[
            "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "smartem",
        ]))
        .unwrap()
        {
            Command::GenEtc(g) => assert_eq!(
                (g.spec.uid, g.spec.gid, g.spec.name.as_str()),
                (5000, 5000, "smartem")
            ),
            other => panic!("{other:?}"),
        }
        match parse(args(&["healthcheck", "--timeout", "0.5"])).unwrap() {
            Command::Health(h) => assert_eq!(h.timeout, Duration::from_millis(500)),
            other => panic!("{other:?}"),
        }
        match parse(args(&["doctor", "/dls", "/data"])).unwrap() {
            Command::Doctor(d) => assert_eq!(d.paths.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
