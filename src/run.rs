//! Run mode: gather facts, build the plan (all validation), then either
//! print it (--dry-run) or apply it: subreaper, privilege drop and
//! verification, workdir, data-dir check, pre-start step, service.

use crate::config::{Format, RunConfig};
use crate::deadline;
use crate::error::{fail, Code, Result};
use crate::identity::privileges::{self, RealSys};
use crate::pid1::signals::{self, Inherited};
use crate::pid1::spawn::{self, Prepared};
use crate::pid1::supervise::Supervisor;
use crate::plan::{Facts, Plan};
use crate::smartem::datadir;
use crate::world;

pub fn run(cfg: &RunConfig, inherited: &Inherited) -> Result<i32> {
    let facts = world::facts()?;
    let local = deadline::all_local(&facts.mountinfo);
    let mut plan = world::plan(cfg, &facts, local)?;
    if cfg.dry_run {
        let verdict = data_dir_step(&mut plan, &facts.mountinfo, local, true)?;
        return Ok(dry_run(cfg, &plan, verdict));
    }
    if let Some((code, msg)) = plan.problems.first() {
        return Err(fail(*code, msg.clone()));
    }
    apply(&mut plan, inherited, &facts, local)
}

/// The data-dir verdict and the Landlock carve, in one step bounded by the
/// deadline: predicted from the mode bits for the dry run, asked of the
/// kernel after the drop for the real one. A stall is the verdict either
/// way (fatal only with --require-data-dir) and leaves the data dir without
/// its rule set (a shortfall: a warning, or 77 when confinement is
/// required, added to the plan's problems); a plain init for a command
/// checks nothing.
fn data_dir_step(
    plan: &mut Plan,
    mountinfo: &str,
    local: bool,
    predict: bool,
) -> Result<datadir::Verdict> {
    use crate::confine::{carve_rule, DataDirRule};
    if !plan.check_data_dir {
        return Ok(datadir::Verdict::NotChecked);
    }
    let step = if predict {
        "predicting the data-dir check"
    } else {
        "the data-dir check"
    };
    let (p, mi) = (plan.clone(), mountinfo.to_string());
    let timeout = plan.data_dir_timeout;
    let done = deadline::run_or_stalled(step, timeout, local, move || {
        let verdict = if predict {
            p.predict_data_dir(&crate::inputs::Fs)
        } else {
            datadir::check_now(&p.data_dir, &crate::inputs::Fs)
        };
        let rule = carve_rule(
            &p.confinement.data_dir,
            &p.data_dir,
            &mi,
            &crate::inputs::Fs,
        );
        (verdict, rule)
    })?;
    let (verdict, rule) = done.unwrap_or_else(|_| {
        let rule = match &plan.confinement.data_dir {
            DataDirRule::Pending(_) => DataDirRule::Unavailable(format!(
                "the way to it did not answer within {}s",
                crate::log::secs(timeout)
            )),
            other => other.clone(),
        };
        (datadir::Verdict::Stalled(timeout), rule)
    });
    plan.confinement.data_dir = rule;
    for problem in plan.confinement.problems() {
        if !plan.problems.contains(&problem) {
            plan.problems.push(problem);
        }
    }
    Ok(verdict)
}

fn dry_run(cfg: &RunConfig, plan: &Plan, verdict: datadir::Verdict) -> i32 {
    use std::io::Write;
    let text = match cfg.format {
        Format::Text => plan.to_text(&verdict),
        Format::Json => plan.to_json(&verdict),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();
    // The exit code the real run would end with, and why, on stderr too.
    if let Some((code, msg)) = plan.problems.first() {
        crate::error!("{msg}");
        return *code as i32;
    }
    if let Err(e) = plan.data_dir_outcome(&verdict) {
        crate::error!("{e:#}");
        return crate::error::exit_code(&e);
    }
    0
}

fn apply(plan: &mut Plan, inherited: &Inherited, facts: &Facts, local: bool) -> Result<i32> {
    // Last validation: argv and environment as C strings.
    let pre_start = plan
        .pre_start
        .as_ref()
        .map(|c| spawn::prepare(&c.program, &c.argv, &plan.env))
        .transpose()?;
    let service = spawn::prepare(&plan.service.program, &plan.service.argv, &plan.env)?;

    if plan.env_added.iter().any(|e| e.source == ".env") {
        info!("{}", plan.dotenv);
    }

    // Side effects from here on.
    if !plan.pid1 {
        // Not PID 1: orphans of the service should still come to us to be
        // reaped. Where the kernel (or qemu-user) refuses, go on as tini
        // does: the service's own children are still reaped, only orphans
        // go to the namespace's init instead.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            warn!(
                "cannot become a child subreaper (prctl(PR_SET_CHILD_SUBREAPER): {e}); \
                 going on: orphans of the service will be reaped by PID 1 instead"
            );
        }
    }
    privileges::drop_privileges(&mut RealSys, &plan.drop)?;
    privileges::verify(&mut RealSys, &plan.drop, &facts.creds)?;

    // After the drop, threads are harmless (they get the new identity), and
    // every helper before it has finished: deadline::run returns only then.
    if let Some(dir) = plan.workdir.clone() {
        let uid = plan.ids().uid;
        deadline::run("entering the workdir", plan.io_timeout, local, move || {
            crate::inputs::doing(format!("entering the workdir {}", dir.display()));
            nix::unistd::chdir(dir.as_path()).map_err(|e| {
                fail(
                    Code::Config,
                    format!(
                        "cannot enter workdir {} as uid {uid}: {e}; fix its permissions",
                        dir.display()
                    ),
                )
            })
        })??;
    }

    let verdict = data_dir_step(plan, &facts.mountinfo, local, false)?;
    if let Some(warning) = plan.data_dir_outcome(&verdict)? {
        warn!("{warning}");
    }
    if let Some((code, msg)) = plan.problems.first() {
        return Err(fail(*code, msg.clone()));
    }
    let plan = &*plan;
    confine(plan, local, facts.kernel.seccomp.map_or(0, |s| s.filters))?;

    let mut sup = Supervisor::new(plan.pid1, plan.grace, plan.forwarding.clone());
    if let (Some(pre), Some(cmd)) = (&pre_start, &plan.pre_start) {
        if let Some(code) = not_started(&mut sup, "pre-start step") {
            return Ok(code);
        }
        let code =
            start_and_supervise(&mut sup, pre, inherited, plan, "pre-start step", &cmd.argv)?;
        if code != 0 {
            let cwd = plan.workdir.as_ref().map_or_else(
                || "the current directory".to_string(),
                |w| w.display().to_string(),
            );
            crate::error!(
                "pre-start step `{}` (in {cwd}, uid {}) failed with exit code {code}; the service was not started{}",
                shown(&cmd.argv),
                plan.ids().uid,
                plan.migration_hint
                    .as_ref()
                    .map_or_else(String::new, |h| format!("; hint: {h}"))
            );
            return Ok(code);
        }
    }
    if let Some(code) = not_started(&mut sup, "service") {
        return Ok(code);
    }
    start_and_supervise(
        &mut sup,
        &service,
        inherited,
        plan,
        "service",
        &plan.service.argv,
    )
}

/// Landlock, then the seccomp filter, applied to the init itself: after the
/// drop (both need no_new_privs, which the drop set, and neither may stand
/// in its way) and the data-dir check, before anything is started, so the
/// pre-start step, the service and all they start inherit them and none of
/// them runs unconfined even for a moment. The init needs none of what
/// they refuse: from here on it only waits, forwards signals, reaps and
/// starts with clone(CLONE_VM|CLONE_VFORK).
/// `filters`: how many seccomp filters there were at start.
fn confine(plan: &Plan, local: bool, filters: u32) -> Result<()> {
    use crate::confine::{landlock, seccomp, DataDirRule, SyscallFilter};
    let c = &plan.confinement;
    for s in c.shortfalls() {
        warn!("{s}; starting without it (--require-confinement refuses instead)");
    }
    if let DataDirRule::Pending(_) = &c.data_dir {
        // data_dir_step makes it concrete; never start as if it had.
        return Err(fail(
            Code::Software,
            "the Landlock rule set was planned but never made; the service was not started",
        ));
    }
    if let DataDirRule::ReadOnly(r) = &c.data_dir {
        let grants = r.grants.clone();
        let opened = deadline::run(
            "opening the Landlock grants",
            plan.io_timeout,
            local,
            move || landlock::open_grants(&grants),
        )??;
        landlock::restrict(opened)?;
    }
    if let SyscallFilter::Baseline(_) = &c.syscalls {
        match seccomp::install(&seccomp::program()) {
            // A kernel (or qemu-user) that shows Seccomp: 0 but cannot
            // filter: the same shortfall as one without seccomp.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) && !c.required => {
                warn!("no seccomp filter can be added: prctl(PR_SET_SECCOMP): {e}; starting without it (--require-confinement refuses instead)");
                return Ok(());
            }
            Err(e) => {
                return Err(fail(
                    Code::NoPerm,
                    format!("installing the seccomp filter failed: prctl(PR_SET_SECCOMP): {e}; the service was not started (--seccomp off starts it without)"),
                ))
            }
            Ok(()) => {}
        }
        let after = crate::inputs::procfs::status("self")
            .ok()
            .and_then(|s| crate::inputs::procfs::seccomp_of(&s));
        if !after.is_some_and(|s| s.mode == 2 && s.filters == filters + 1) {
            return Err(fail(
                Code::NoPerm,
                format!("seccomp filter not verified: /proc/self/status does not show one more filter than the {filters} there were; the service was not started"),
            ));
        }
    }
    info!(
        "confinement: {}; seccomp: {}",
        c.data_dir.describe(&plan.data_dir),
        c.syscalls.describe()
    );
    Ok(())
}

/// A termination request before `what` started: it never starts.
fn not_started(sup: &mut Supervisor, what: &str) -> Option<i32> {
    sup.termination_requested().map(|sig| {
        info!(
            "received {} before the {what} started: not starting it",
            signals::name(sig)
        );
        128 + sig
    })
}

fn start_and_supervise(
    sup: &mut Supervisor,
    prepared: &Prepared,
    inherited: &Inherited,
    plan: &Plan,
    what: &str,
    argv: &[std::ffi::OsString],
) -> Result<i32> {
    let pid = spawn::spawn(prepared, inherited, plan.tty, plan.ids())?;
    if what == "service" {
        // The service has its working directory (spawn does not share ours:
        // no CLONE_FS); the init itself moves to / so that it pins no
        // mount, as dumb-init and catatonit do. A failure costs nothing.
        let _ = nix::unistd::chdir("/");
    }
    info!(
        "{what} started as pid {pid}, uid {} gid {}: {}",
        plan.ids().uid,
        plan.ids().gid,
        shown(argv)
    );
    let code = sup.supervise(pid, what);
    info!("{what} (pid {pid}) ended: {}", describe_end(code));
    sup.end_group(pid);
    if what == "service" && code != 0 && plan.success_exit.contains(&code) {
        info!("exit code {code} reported as 0 (--success-exit)");
        return Ok(0);
    }
    Ok(code)
}

fn shown(argv: &[std::ffi::OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// "exit code 0", or for 129..=192 also the signal it stands for.
pub fn describe_end(code: i32) -> String {
    if (129..=192).contains(&code) {
        format!("exit code {code} (128+{})", signals::name(code - 128))
    } else {
        format!("exit code {code}")
    }
}
