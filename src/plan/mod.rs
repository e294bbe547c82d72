//! The plan: every decision of a run, made from the configuration, a
//! snapshot of the process (`Facts`) and read-only looks at files, with no
//! side effects. `--dry-run` prints it; the real run applies it.

pub mod command;
mod render;

pub use render::fmt_ids;

use crate::config::RunConfig;
use crate::error::{fail, Code, Result};
use crate::identity::creds::{caps_in, names, CredState};
use crate::identity::etc_files::EtcDb;
use crate::identity::privileges::DropPlan;
use crate::identity::Ids;
use crate::identity::{self, Action, Current, Target};
use crate::inputs::{Inputs, Kind};
use crate::smartem::roles::{self, RoleInput};
use crate::smartem::{datadir, dotenv};
use caps::Capability;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the process is at start, read once by the caller.
#[derive(Debug, Clone)]
pub struct Facts {
    pub pid: i32,
    /// Ids, groups and capability sets: the one record of who we are.
    pub creds: CredState,
    pub stdin_tty: bool,
    pub env: Vec<(OsString, OsString)>,
    /// /proc/sys/kernel/ngroups_max: setgroups refuses more groups.
    pub ngroups_max: usize,
    /// /proc/self/setgroups says "deny" (a user namespace set up so).
    pub setgroups_denied: bool,
    /// /proc/self/uid_map is not the identity map of the initial namespace.
    pub in_userns: bool,
    /// Landlock's ABI and the seccomp state at start.
    pub kernel: crate::confine::KernelFacts,
    /// /proc/self/mountinfo: where else the data dir's files are mounted.
    pub mountinfo: String,
}

impl Facts {
    /// The ids and groups part of `creds`.
    pub fn current(&self) -> &Current {
        &self.creds.current
    }
}

/// A program to run: the argv as given and the file found for argv[0].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<OsString>,
    pub program: PathBuf,
}

/// A variable the service gets that the environment didn't have (or that
/// smartem-init overrides). Values from .env are never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNote {
    pub name: String,
    pub source: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub pid1: bool,
    /// Who we are at start (effective ids and groups).
    pub current: Ids,
    pub action: Action,
    /// The switch (to the service's ids, `ids()`), if any.
    pub drop: DropPlan,
    pub role: Option<String>,
    /// The api role's port (HTTP_API_PORT after .env), checked once here:
    /// the service's `--port` and what `healthcheck` probes.
    pub http_api_port: Option<u16>,
    pub pre_start: Option<Cmd>,
    pub service: Cmd,
    pub workdir: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub env_added: Vec<EnvNote>,
    pub dotenv: String,
    pub data_dir: PathBuf,
    /// False as a plain init (a command given, no data dir configured):
    /// nothing SmartEM-specific happens then.
    pub check_data_dir: bool,
    pub require_data_dir: bool,
    /// Landlock for the data dir and the seccomp filter.
    pub confinement: crate::confine::Confinement,
    pub data_dir_timeout: Duration,
    /// Bound on each file-system step before the service (chdir).
    pub io_timeout: Duration,
    pub grace: Duration,
    pub forwarding: crate::config::Forwarding,
    pub success_exit: Vec<i32>,
    pub tty: bool,
    /// Facts worth knowing that change nothing (shown by --dry-run).
    pub notes: Vec<String>,
    /// Why the migration is likely to fail (no alembic.ini), repeated if it does.
    pub migration_hint: Option<String>,
    /// Failures found while planning that --dry-run shows in the plan
    /// instead of stopping at (a missing program): exit code and message.
    /// The real run fails on the first before changing anything.
    pub problems: Vec<(Code, String)>,
}

fn env_get<'a>(env: &'a [(OsString, OsString)], key: &str) -> Option<&'a OsStr> {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_os_str())
}

fn env_set(env: &mut Vec<(OsString, OsString)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
}

/// Every decision of a run, from the configuration, the process's state and
/// what `fs` answers; no other I/O.
pub fn build(cfg: &RunConfig, facts: &Facts, fs: &dyn Inputs) -> Result<Plan> {
    let mut notes = Vec::new();
    let current = facts.current();
    let (action, switch_to) = plan_identity(cfg, current, fs, &mut notes)?;
    let drop = plan_drop(cfg, facts, &action, switch_to, &mut notes)?;
    let ids = drop.switch_to.as_ref().unwrap_or(&current.ids);
    let workdir = plan_workdir(cfg, fs)?;
    let mut env = facts.env.clone();
    let mut env_added = Vec::new();
    let dotenv_note = load_dotenv(workdir.as_deref(), &mut env, &mut env_added, fs)?;
    identity_env(&action, &mut env, &mut env_added);
    let (role, http_api_port, pre_start_argv, service_argv) = what_to_run(cfg, &env)?;
    let cwd = match &workdir {
        Some(w) => w.clone(),
        None => fs.current_dir().map_err(|e| {
            fail(
                Code::OsErr,
                format!("cannot read the current directory: {e}"),
            )
        })?,
    };
    let mut problems = Vec::new();
    let mut resolve = |argv: Vec<OsString>| -> Cmd {
        match command::resolve(&argv[0], env_get(&env, "PATH"), &cwd, ids, fs) {
            Ok(program) => Cmd { argv, program },
            Err(e) => {
                problems.push((crate::error::code(&e), format!("{e:#}")));
                let program = PathBuf::from(&argv[0]);
                Cmd { argv, program }
            }
        }
    };
    let pre_start = pre_start_argv.map(&mut resolve);
    let service = resolve(service_argv);
    let migration = match (&pre_start, role.as_deref()) {
        (Some(pre), _) => Some(pre),
        (None, Some("migrate")) => Some(&service),
        _ => None,
    };
    let migration_hint = migration.and_then(|m| alembic_hint(&m.argv, &cwd, fs));
    if let Some(hint) = &migration_hint {
        notes.push(hint.clone());
    }
    let check_data_dir = cfg.command.is_empty() || cfg.id.data_dir_given || cfg.require_data_dir;
    let confinement = crate::confine::plan(&cfg.confine, &facts.kernel, check_data_dir);
    problems.extend(confinement.problems());

    Ok(Plan {
        pid1: facts.pid == 1,
        current: current.ids.clone(),
        action,
        drop,
        role,
        http_api_port,
        pre_start,
        service,
        workdir,
        env,
        env_added,
        dotenv: dotenv_note,
        data_dir: cfg.id.data_dir.clone(),
        check_data_dir,
        require_data_dir: cfg.require_data_dir,
        confinement,
        data_dir_timeout: cfg.data_dir_timeout,
        io_timeout: cfg.id.io_timeout,
        grace: cfg.grace_period,
        // Job control needs the terminal the service is given.
        forwarding: crate::config::Forwarding {
            job_control: facts.stdin_tty,
            ..cfg.forwarding.clone()
        },
        success_exit: cfg.success_exit.clone(),
        tty: facts.stdin_tty,
        notes,
        migration_hint,
        problems,
    })
}

/// The user to become (resolved against passwd and group), what to do
/// about it given who we are, and the ids a switch gives the service (none
/// without a switch: it keeps ours, which already are the user's when
/// `AlreadyTarget`).
fn plan_identity(
    cfg: &RunConfig,
    cur: &Current,
    fs: &dyn Inputs,
    notes: &mut Vec<String>,
) -> Result<(Action, Option<Ids>)> {
    let target = match &cfg.id.user {
        Some(spec) => {
            let db = EtcDb::load(&cfg.id.etc_dir, fs)?;
            Some(identity::resolve(spec, &db, cur.ids.uid)?)
        }
        None => None,
    };
    let action = identity::decide(cur, target, cfg.require_non_root)?;
    let switch_to = match &action {
        Action::Switch(t) => Some(Ids {
            groups: merged_groups(t, &cur.ids.groups, cfg.strict_groups, notes),
            ..t.ids.clone()
        }),
        Action::AlreadyTarget(_) | Action::KeepCurrent => None,
    };
    Ok((action, switch_to))
}

/// The working directory: the configured one (which must exist), else /app
/// for a role when the image has it, else none (the current directory).
fn plan_workdir(cfg: &RunConfig, fs: &dyn Inputs) -> Result<Option<PathBuf>> {
    match &cfg.workdir {
        Some(w) if {
            crate::inputs::doing(format!("looking at the workdir {}", w.display()));
            is_dir(fs, w)
        } =>
        {
            Ok(Some(w.clone()))
        }
        Some(w) => Err(fail(
            Code::Config,
            format!("workdir {} does not exist or is not a directory; create it or fix --workdir/SMARTEM_WORKDIR", w.display()),
        )),
        // /app is the SmartEM image's directory: entered for a role, not
        // when smartem-init is a plain init for a command.
        None if !cfg.command.is_empty() => Ok(None),
        None => {
            crate::inputs::doing("looking for /app");
            Ok(Some(PathBuf::from("/app")).filter(|p| is_dir(fs, p)))
        }
    }
}

/// HOME, USER and LOGNAME of the user switched to, each noted with where
/// it really came from: a uid without a passwd entry gets defaults, not
/// passwd's word.
fn identity_env(action: &Action, env: &mut Vec<(OsString, OsString)>, added: &mut Vec<EnvNote>) {
    let (Action::Switch(t) | Action::AlreadyTarget(t)) = action else {
        return;
    };
    let (home_from, user_from) = if t.has_passwd_entry {
        ("passwd".to_string(), "passwd".to_string())
    } else {
        (
            format!("default: uid {} has no passwd entry", t.ids.uid),
            "the uid: no passwd entry".to_string(),
        )
    };
    for (name, value, source) in [
        ("HOME", t.home.as_str(), &home_from),
        ("USER", &t.user_name, &user_from),
        ("LOGNAME", &t.user_name, &user_from),
    ] {
        env_set(env, name, value);
        added.push(EnvNote {
            name: name.into(),
            source: source.clone(),
            value: Some(value.to_string()),
        });
    }
}

/// The role (with the api's port), the pre-start step and the service's
/// argv: from the role, or the command given (a plain init).
type WhatToRun = (
    Option<String>,
    Option<u16>,
    Option<Vec<OsString>>,
    Vec<OsString>,
);

fn what_to_run(cfg: &RunConfig, env: &[(OsString, OsString)]) -> Result<WhatToRun> {
    if !cfg.command.is_empty() {
        return Ok((None, None, None, cfg.command.clone()));
    }
    // The one place ROLE is read: --role, else the environment after .env
    // (the real environment wins there, as for every variable).
    let role = if cfg.role.is_empty() {
        env_get(env, "ROLE")
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        cfg.role.clone()
    };
    let cmds = roles::commands(&RoleInput {
        role,
        api_cmd: cfg.api_cmd.clone(),
        worker_cmd: cfg.worker_cmd.clone(),
        migrate_cmd: cfg.migrate_cmd.clone(),
        skip_migrations: cfg.skip_migrations,
        http_api_port: env_get(env, "HTTP_API_PORT").map(|p| p.to_string_lossy().into_owned()),
        grace: cfg.grace_period,
    })?;
    let os = |v: Vec<String>| v.into_iter().map(OsString::from).collect::<Vec<_>>();
    Ok((
        Some(cmds.role),
        cmds.http_api_port,
        cmds.pre_start.map(os),
        os(cmds.service),
    ))
}

fn plan_drop(
    cfg: &RunConfig,
    facts: &Facts,
    action: &Action,
    switch_to: Option<Ids>,
    notes: &mut Vec<String>,
) -> Result<DropPlan> {
    let has = |c: Capability| facts.creds.effective & c.bitmask() != 0;
    if let Action::Switch(t) = action {
        if !(has(Capability::CAP_SETUID) && has(Capability::CAP_SETGID)) {
            return Err(fail(
                    Code::NoPerm,
                    format!(
                        "started as uid 0 without CAP_SETUID/CAP_SETGID (effective: {}), so switching to {} is impossible; \
                         start the container as that user (runAsUser/docker --user) or keep those capabilities",
                        names(facts.creds.effective),
                        t.describe()
                    ),
                ));
        }
    }
    let skip_setgroups = match (&switch_to, action) {
        (Some(w), Action::Switch(t)) => plan_setgroups(facts, t, &w.groups, notes)?,
        _ => false,
    };
    check_kept_caps(cfg, facts, switch_to.is_some())?;
    let setpcap = has(Capability::CAP_SETPCAP);
    if !setpcap {
        notes.push(format!(
            "bounding set left as it is ({}): clearing it needs CAP_SETPCAP; no_new_privs keeps it from granting anything",
            names(facts.creds.bounding)
        ));
        if cfg.keep_caps.is_empty() {
            notes.push("securebits not locked: that needs CAP_SETPCAP".into());
        }
    }
    Ok(DropPlan {
        switch_to,
        keep: cfg.keep_caps.clone(),
        clear_bounding: setpcap,
        lock_securebits: setpcap && cfg.keep_caps.is_empty(),
        supported: caps_in(facts.creds.supported),
        skip_setgroups,
        in_userns: facts.in_userns,
    })
}

/// Whether the switch to `t` with `groups` can set them: within the
/// kernel's NGROUPS_MAX, and where a user namespace denies setgroups, only
/// when they already are the groups (then the call is left out: true).
fn plan_setgroups(
    facts: &Facts,
    t: &Target,
    groups: &[u32],
    notes: &mut Vec<String>,
) -> Result<bool> {
    if groups.len() > facts.ngroups_max {
        return Err(fail(
            Code::NoPerm,
            format!(
                "{} is in {} groups, more than this kernel allows (NGROUPS_MAX {}); \
                 remove some of its memberships in the group file",
                t.describe(),
                groups.len(),
                facts.ngroups_max
            ),
        ));
    }
    if !facts.setgroups_denied {
        return Ok(false);
    }
    let mut want = groups.to_vec();
    let mut have = facts.creds.current.ids.groups.clone();
    want.sort_unstable();
    want.dedup();
    have.sort_unstable();
    have.dedup();
    if want != have {
        return Err(fail(
            Code::NoPerm,
            format!(
                "switching to {} needs setgroups({}), which this user namespace denies \
                 (/proc/self/setgroups: deny; the groups now: {}); allow setgroups in the namespace, \
                 or start with those groups",
                t.describe(),
                fmt_ids(&want),
                fmt_ids(&have)
            ),
        ));
    }
    notes.push(format!(
        "setgroups left out: this user namespace denies it and the groups already are {}",
        fmt_ids(&want)
    ));
    Ok(true)
}

/// A kept capability must be one the process has to give: within the
/// bounding set when switching users, within the permitted set otherwise.
fn check_kept_caps(cfg: &RunConfig, facts: &Facts, switching: bool) -> Result<()> {
    let source = if switching {
        facts.creds.bounding
    } else {
        facts.creds.permitted
    };
    match cfg.keep_caps.iter().find(|c| source & c.bitmask() == 0) {
        Some(cap) => Err(fail(
            Code::NoPerm,
            format!(
                "cannot keep {cap}: the process does not have it (has: {}); add it to the container \
                 (docker --cap-add, securityContext.capabilities.add)",
                names(source)
            ),
        )),
        None => Ok(()),
    }
}

/// alembic reads alembic.ini from its working directory unless given -c;
/// the smartem-decisions wheel ships none, so a missing one is the usual
/// reason the migration fails at once. Said before it runs, and again if
/// it fails.
pub fn alembic_hint(argv: &[OsString], cwd: &Path, fs: &dyn Inputs) -> Option<String> {
    let is_alembic = argv
        .iter()
        .take(3)
        .any(|a| Path::new(a).file_name().is_some_and(|n| n == "alembic"));
    let has_config = argv
        .iter()
        .any(|a| a == "-c" || a == "--config" || a.to_string_lossy().starts_with("--config="));
    let ini = cwd.join("alembic.ini");
    if is_alembic && !has_config {
        crate::inputs::doing(format!("looking for {}", ini.display()));
    }
    (is_alembic && !has_config && fs.metadata(&ini).is_err()).then(|| {
        format!(
            "{} is missing: alembic looks for it in the working directory; ship one in the image \
             (the smartem-decisions wheel has none: see docker/examples/alembic.ini) or pass -c",
            ini.display()
        )
    })
}

/// The supplementary groups of a switch, as Kubernetes' default
/// `supplementalGroupsPolicy: Merge` gives them: the target's /etc/group
/// memberships plus the groups the runtime started us with (fsGroup,
/// supplementalGroups, docker --group-add), group 0 from the runtime only
/// when it is the target's primary group. `strict`: the memberships alone.
pub fn merged_groups(
    t: &Target,
    runtime: &[u32],
    strict: bool,
    notes: &mut Vec<String>,
) -> Vec<u32> {
    let mut groups = t.ids.groups.clone();
    let added: Vec<u32> = if strict {
        vec![]
    } else {
        runtime
            .iter()
            .copied()
            .filter(|g| (*g != 0 || t.ids.gid == 0) && !t.ids.groups.contains(g))
            .collect()
    };
    groups.extend(&added);
    groups.sort_unstable();
    groups.dedup();
    if !added.is_empty() || (strict && runtime.iter().any(|g| *g != 0 && !t.ids.groups.contains(g)))
    {
        notes.push(format!(
            "supplementary groups: {} from the group file, {} from the runtime (fsGroup, supplementalGroups, --group-add){}",
            fmt_ids(&t.ids.groups),
            if strict { "none".to_string() } else { fmt_ids(&added) },
            if strict { "; --strict-groups drops the runtime's" } else { "; --strict-groups keeps only the group file's" }
        ));
    }
    groups
}

fn is_dir(fs: &dyn Inputs, p: &Path) -> bool {
    fs.metadata(p).is_ok_and(|m| m.kind == Kind::Dir)
}

/// Loads WORKDIR/.env unless under Kubernetes; returns what happened.
fn load_dotenv(
    workdir: Option<&Path>,
    env: &mut Vec<(OsString, OsString)>,
    added: &mut Vec<EnvNote>,
    fs: &dyn Inputs,
) -> Result<String> {
    let Some(dir) = workdir else {
        return Ok("not loaded: no working directory".into());
    };
    let path = dir.join(".env");
    if env_get(env, "KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()) {
        return Ok(format!(
            "{} ignored: running under Kubernetes",
            path.display()
        ));
    }
    let bytes = fs.config_file(
        &path,
        dotenv::MAX_FILE,
        ".env file",
        "make it readable or remove it",
    )?;
    let Some(bytes) = bytes else {
        return Ok(format!("{} absent", path.display()));
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(
            Code::Config,
            format!("{} is not valid UTF-8; save it as UTF-8", path.display()),
        )
    })?;
    let vars = dotenv::parse(&text, &path.display().to_string())?;
    let total = vars.len();
    let names = dotenv::merge(env, vars);
    added.extend(names.iter().map(|k| EnvNote {
        name: k.clone(),
        source: ".env".into(),
        value: None,
    }));
    Ok(format!(
        "{}: loaded {} variable(s){}{}",
        path.display(),
        names.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        },
        if total > names.len() {
            format!(", {} overridden by the environment", total - names.len())
        } else {
            String::new()
        }
    ))
}

impl Plan {
    /// What a data-dir verdict means for this run: Ok(None) readable,
    /// Ok(Some(warning)) go on with a warning, Err(78) when it is required.
    /// The one place for the rule, for the real run and the dry run alike.
    pub fn data_dir_outcome(&self, verdict: &datadir::Verdict) -> Result<Option<String>> {
        if verdict.is_ok() {
            return Ok(None);
        }
        let msg = verdict.describe(&self.data_dir, self.ids().uid);
        if self.require_data_dir {
            Err(fail(
                Code::Config,
                format!("{msg} (required: --require-data-dir)"),
            ))
        } else {
            Ok(Some(msg))
        }
    }

    /// The data-dir verdict predicted without becoming the service's user.
    pub fn predict_data_dir(&self, fs: &dyn Inputs) -> datadir::Verdict {
        datadir::assess(&self.data_dir, self.ids(), &self.current, fs).0
    }

    /// The service's uid, gid and groups: the switch's, or ours kept.
    pub fn ids(&self) -> &Ids {
        self.drop.switch_to.as_ref().unwrap_or(&self.current)
    }
}

#[cfg(test)]
mod tests;
