//! `smartem-init doctor [PATH...]`: the troubleshooting a scratch image
//! can't do (`id`, `ls -la /dls`, `mount`), with a verdict and the fix for
//! each problem. Reads only; changes nothing. Exit 0 healthy, 1 otherwise.

use crate::config::DoctorConfig;
use crate::error::Result;
use crate::identity::access::can_list_and_enter;
use crate::identity::creds::{mask_of, names, CapMask};
use crate::identity::privileges::DropPlan;
use crate::identity::Action;
use crate::identity::Ids;
use crate::inputs::{mountinfo, procfs};
use crate::plan::{fmt_ids, Plan};
use crate::smartem::datadir::{self, Verdict};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The fix for a data-dir verdict, for the service's identity.
pub fn advice(path: &Path, verdict: &Verdict, who: &Ids) -> String {
    let p = path.display();
    match verdict {
        Verdict::Readable | Verdict::NotChecked => "nothing to do".into(),
        Verdict::Absent => format!("mount the data volume at {p} (volumeMounts / docker -v) or point SMARTEM_DATA_DIR at it"),
        Verdict::NotADirectory => format!("{p} must be a directory: mount the data directory there"),
        Verdict::Denied(None) => "even stat is refused: check the parent directories' modes, or (root-squashed NFS) run doctor as the service user: kubectl exec runs as runAsUser"
            .into(),
        Verdict::Denied(Some((owner, group, mode))) => {
            let mut fixes = Vec::new();
            // Running as root is never the fix (and root is squashed on NFS).
            if *owner != who.uid && *owner != 0 {
                fixes.push(format!("run with runAsUser: {owner} (SMARTEM_USER={owner}:{group})"));
            }
            let (gr, gx) = can_list_and_enter(
                &Ids { uid: u32::MAX, gid: *group, groups: vec![] },
                *owner,
                *group,
                *mode,
            );
            if gr && gx && *owner != who.uid && *group != 0 {
                fixes.push(format!("add group {group}: runAsGroup/supplementalGroups: [{group}]"));
            }
            if *owner == who.uid {
                fixes.push(format!("chmod u+rx {p}"));
            } else {
                fixes.push(format!("chmod o+rx {p} (on the server, for NFS)"));
            }
            fixes.join(", or ")
        }
        Verdict::Stalled(_) => "the mount does not answer: check the NFS server and the node's mount".into(),
        Verdict::Error(_) => format!("check {p} on the node (dmesg, mount)"),
    }
}

struct Report {
    out: String,
    problems: usize,
}

impl Report {
    fn section(&mut self, title: &str) {
        let _ = writeln!(self.out, "\n{title}");
    }
    fn row(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "  {key:<14} {value}");
    }
    fn verdict(&mut self, ok: bool, text: &str) {
        if !ok {
            self.problems += 1;
        }
        self.row(
            "verdict",
            format!("{} {text}", if ok { "OK     " } else { "PROBLEM" }),
        );
    }
}

pub fn run(cfg: &DoctorConfig) -> Result<i32> {
    let facts = crate::world::facts()?;
    let mut r = Report {
        out: String::from("smartem-init doctor: read-only checks\n"),
        problems: 0,
    };
    // Bounded like a start (doctor is what an operator runs when something
    // is wrong, a stalled mount included).
    let local = crate::deadline::all_local(&facts.mountinfo);
    let (plan, who) = identity_rows(&mut r, cfg, &facts, local)?;
    running_init_rows(&mut r, &facts, plan.as_ref().ok());
    privilege_rows(&mut r, &facts);
    path_sections(&mut r, cfg, &facts, &who, local)?;
    let _ = writeln!(
        r.out,
        "\n{}",
        if r.problems == 0 {
            "healthy: no problem found".to_string()
        } else {
            format!("{} problem(s) found", r.problems)
        }
    );
    use std::io::Write;
    let _ = std::io::stdout().write_all(r.out.as_bytes());
    Ok(if r.problems == 0 { 0 } else { 1 })
}

/// Who we are and, from the plan run mode would make here (doctor explains
/// it rather than deciding anew), who the service will be: the plan and
/// that identity (ours where the settings do not resolve).
fn identity_rows(
    r: &mut Report,
    cfg: &DoctorConfig,
    facts: &crate::plan::Facts,
    local: bool,
) -> Result<(Result<Plan>, Ids)> {
    let cur = facts.current();
    r.section("identity");
    r.row(
        "running as",
        format!(
            "uid={} gid={} groups={}",
            cur.ids.uid,
            cur.ids.gid,
            fmt_ids(&cur.ids.groups)
        ),
    );
    let plan = cfg
        .run
        .clone()
        .map_err(|e| crate::error::fail(crate::error::Code::Usage, e))
        .and_then(|c| crate::world::plan(&c, facts, local));
    // A SIGTERM/SIGINT while planning ends doctor too (128+N).
    let plan = match plan {
        Err(e) if e.chain().any(|c| c.is::<crate::error::Terminated>()) => return Err(e),
        other => other,
    };
    let who = match &plan {
        Ok(p) => {
            plan_rows(r, p);
            p.ids().clone()
        }
        Err(e) => {
            r.row(
                "configured",
                cfg.id
                    .user
                    .as_deref()
                    .map_or("no SMARTEM_USER/--user".to_string(), |u| {
                        format!("SMARTEM_USER={u}")
                    }),
            );
            r.verdict(
                false,
                &format!("{e:#} (exit {} at start)", crate::error::exit_code(e)),
            );
            cur.ids.clone()
        }
    };
    Ok((plan, who))
}

/// doctor's own capability sets, no_new_privs and securebits: a
/// description of the caller, shown and never counted.
fn privilege_rows(r: &mut Report, facts: &crate::plan::Facts) {
    r.section("privileges");
    let c = &facts.creds;
    r.row("effective", short_caps(c.effective, c.supported));
    r.row("permitted", short_caps(c.permitted, c.supported));
    r.row("bounding", short_caps(c.bounding, c.supported));
    r.row("ambient", short_caps(c.ambient, c.supported));
    r.row(
        "no_new_privs",
        if facts.creds.no_new_privs {
            "1".to_string()
        } else {
            "0 (smartem-init sets it before the service starts)".to_string()
        },
    );
    r.row("securebits", format!("{:#x}", facts.creds.securebits));
}

/// The data dir and each PATH, each looked at in a bounded step: a stall
/// is that section's verdict.
fn path_sections(
    r: &mut Report,
    cfg: &DoctorConfig,
    facts: &crate::plan::Facts,
    who: &Ids,
    local: bool,
) -> Result<()> {
    let cur = facts.current();
    let mut paths: Vec<PathBuf> = vec![cfg.id.data_dir.clone()];
    paths.extend(cfg.paths.iter().filter(|p| **p != cfg.id.data_dir).cloned());
    for (i, path) in paths.into_iter().enumerate() {
        let (w, current, mi) = (who.clone(), cur.ids.clone(), facts.mountinfo.clone());
        let p = path.clone();
        let step = format!("checking {}", path.display());
        let rows = crate::deadline::run_or_stalled(&step, cfg.id.io_timeout, local, move || {
            let mut part = Report {
                out: String::new(),
                problems: 0,
            };
            path_rows(&mut part, &p, i == 0, &w, &current, &mi);
            part
        })?;
        match rows {
            Ok(part) => {
                r.out.push_str(&part.out);
                r.problems += part.problems;
            }
            Err(stalled) => {
                r.section(&format!(
                    "{} {}",
                    if i == 0 { "data dir" } else { "path" },
                    path.display()
                ));
                r.verdict(false, &stalled);
            }
        }
    }
    Ok(())
}

/// Who the service will be and what it will run, from the plan.
fn plan_rows(r: &mut Report, p: &Plan) {
    let configured = match &p.action {
        Action::Switch(t) | Action::AlreadyTarget(t) => {
            format!(
                "SMARTEM_USER={} -> {} groups={}",
                t.spec,
                t.describe(),
                fmt_ids(&p.ids().groups)
            )
        }
        Action::KeepCurrent => {
            "no SMARTEM_USER/--user: the service keeps this identity".to_string()
        }
    };
    r.row("configured", configured);
    if let Action::Switch(t) | Action::AlreadyTarget(t) = &p.action {
        r.row(
            "passwd entry",
            if t.has_passwd_entry {
                format!("{} home={}", t.user_name, t.home)
            } else {
                format!("none for uid {} (numeric ids work; HOME=/)", t.ids.uid)
            },
        );
    }
    let text = match &p.action {
        Action::Switch(t) => format!("started as root: will switch to uid {}", t.ids.uid),
        Action::AlreadyTarget(_) => "already the configured user".to_string(),
        Action::KeepCurrent if p.ids().uid == 0 => {
            "the service would run as root (without capabilities); set SMARTEM_USER for production"
                .to_string()
        }
        Action::KeepCurrent => "the service runs as the current user".to_string(),
    };
    r.verdict(true, &text);
    r.section("service");
    r.row(
        "role",
        p.role
            .clone()
            .unwrap_or_else(|| "none (a command given)".into()),
    );
    if let Some(pre) = &p.pre_start {
        r.row("pre-start", pre.program.display());
    }
    r.row("command", p.service.program.display());
    if let Some(h) = &p.migration_hint {
        r.verdict(false, h);
    }
    for (code, msg) in &p.problems {
        r.verdict(false, &format!("{msg} (exit {} at start)", *code as i32));
    }
    // What confines the service: the plan's (a Landlock domain shows
    // nowhere in /proc; the seccomp state of the running service does, below).
    r.row(
        "data dir rule",
        p.confinement.data_dir.describe(&p.data_dir),
    );
    r.row("seccomp plan", p.confinement.syscalls.describe());
    if p.problems.is_empty() && p.migration_hint.is_none() {
        r.verdict(
            true,
            "the commands are found and executable by the service's user",
        );
    }
}

/// Under `kubectl exec` or `docker exec` doctor is a new process: this
/// section reads what PID 1 (smartem-init) and its service really have,
/// from /proc, beside what the plan intends.
fn running_init_rows(r: &mut Report, facts: &crate::plan::Facts, plan: Option<&Plan>) {
    if procfs::comm(1) != "smartem-init" || facts.pid == 1 {
        return;
    }
    let mut pids = vec![("smartem-init (PID 1)".to_string(), 1)];
    if let Some(&c) = procfs::children(1).first() {
        pids.push((format!("service {} (pid {c})", procfs::comm(c)), c));
    }
    for (title, pid) in pids {
        r.section(&format!("running: {title}"));
        let Ok(st) = procfs::status(&pid.to_string()) else {
            r.row("status", "cannot be read");
            continue;
        };
        let get = |k: &str| words(procfs::status_field(&st, k).as_deref().unwrap_or("?"));
        r.row("uid", get("Uid"));
        r.row("gid", get("Gid"));
        r.row("groups", get("Groups"));
        for (k, name) in [
            ("CapEff", "effective"),
            ("CapPrm", "permitted"),
            ("CapInh", "inheritable"),
            ("CapBnd", "bounding"),
            ("CapAmb", "ambient"),
        ] {
            let mask = u64::from_str_radix(&get(k), 16).unwrap_or(0);
            r.row(name, short_caps(mask, facts.creds.supported));
        }
        r.row("no_new_privs", get("NoNewPrivs"));
        r.row(
            "seccomp",
            format!("{} ({} filter(s))", get("Seccomp"), get("Seccomp_filters")),
        );
        // The kernel shows another process's securebits nowhere: say so
        // rather than guess.
        r.row(
            "securebits",
            "not visible in /proc for another process (the plan: see --dry-run)",
        );
        if let Some(p) = plan {
            match against_plan(&st, p.ids().uid, &p.drop) {
                Ok(()) => r.verdict(
                    true,
                    &format!(
                        "runs as planned: uid {} everywhere, no_new_privs set, no capability beyond the kept",
                        p.ids().uid
                    ),
                ),
                Err(what) => r.verdict(
                    false,
                    &format!("differs from the plan: {what}; restarted since the settings changed?"),
                ),
            }
        }
    }
}

/// A capability set as doctor shows it: "all N" when it holds every one
/// this kernel knows, else the names.
fn short_caps(set: CapMask, supported: CapMask) -> String {
    if set == supported && supported != 0 {
        format!("all {}", supported.count_ones())
    } else {
        names(set)
    }
}

/// A status field's words joined by one space, as doctor shows them.
fn words(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a running process (its /proc status) holds what the plan gives
/// the service: the uid in all four places, no_new_privs, and no
/// capability beyond the kept ones (the bounding set too where the plan
/// clears it). Only these count against the container in doctor: the
/// caller's own privileges (doctor run as root beside the service, or in
/// a plain shell) describe the caller and are shown, never counted.
fn against_plan(status: &str, uid: u32, drop: &DropPlan) -> std::result::Result<(), String> {
    let get = |k: &str| words(procfs::status_field(status, k).as_deref().unwrap_or(""));
    let mut wrong = Vec::new();
    if get("Uid") != format!("{0} {0} {0} {0}", uid) {
        wrong.push(format!("uid {} (planned {uid})", get("Uid")));
    }
    if get("NoNewPrivs") != "1" {
        wrong.push("no_new_privs not set".to_string());
    }
    let kept = mask_of(&drop.keep);
    let mut sets = vec![
        ("CapEff", "effective"),
        ("CapPrm", "permitted"),
        ("CapInh", "inheritable"),
        ("CapAmb", "ambient"),
    ];
    if drop.clear_bounding {
        sets.push(("CapBnd", "bounding"));
    }
    for (key, name) in sets {
        let held = u64::from_str_radix(&get(key), 16).unwrap_or(u64::MAX);
        if held & !kept != 0 {
            wrong.push(format!("{name} holds {}", names(held & !kept)));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join(", "))
    }
}

fn path_rows(
    r: &mut Report,
    path: &Path,
    is_data_dir: bool,
    who: &Ids,
    current: &Ids,
    mountinfo: &str,
) {
    r.section(&format!(
        "{} {}",
        if is_data_dir { "data dir" } else { "path" },
        path.display()
    ));
    crate::inputs::doing(format!("looking at {}", path.display()));
    let meta = std::fs::metadata(path);
    r.row(
        "exists",
        match &meta {
            Ok(m) if m.is_dir() => "yes, a directory".to_string(),
            Ok(_) => "yes, not a directory".to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no".to_string(),
            Err(e) => format!("cannot tell: {e}"),
        },
    );
    if let Some(m) = mountinfo::mount_of(path, mountinfo) {
        let is_mp = Path::new(&m.mount_point) == path;
        r.row(
            "mount",
            format!(
                "{} ({}, {})",
                if is_mp {
                    "is a mount point".to_string()
                } else {
                    format!("not a mount point; on {}", m.mount_point)
                },
                m.fstype,
                if m.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            ),
        );
    }
    if let Ok(m) = &meta {
        r.row(
            "owner, mode",
            format!("{}:{} {:04o}", m.uid(), m.gid(), m.mode() & 0o7777),
        );
    }
    // Ask the kernel when we already are the service's user; otherwise
    // predict from the mode bits (becoming the user would change things).
    let (verdict, asked) = datadir::assess(path, who, current, &crate::inputs::Fs);
    let how = if asked {
        "checked"
    } else {
        "predicted from owner and mode"
    };
    r.row(
        &format!("as uid {}", who.uid),
        format!("{} ({how})", verdict.describe(path, who.uid)),
    );
    let ok = verdict.is_ok();
    let text = if ok {
        "readable by the service".to_string()
    } else {
        advice(path, &verdict, who)
    };
    r.verdict(ok, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uid: u32, nnp: u8, eff: &str, bnd: &str) -> String {
        format!(
            "Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCapInh:\t0000000000000000\n\
             CapPrm:\t{eff}\nCapEff:\t{eff}\nCapBnd:\t{bnd}\nCapAmb:\t0000000000000000\n\
             NoNewPrivs:\t{nnp}\n"
        )
    }

    fn dropped(keep: Vec<caps::Capability>) -> DropPlan {
        DropPlan {
            switch_to: None,
            keep,
            clear_bounding: true,
            lock_securebits: false,
            supported: Vec::new(),
            skip_setgroups: false,
            in_userns: false,
        }
    }

    #[test]
    fn the_running_service_is_held_to_the_plan_and_only_it() {
        let none = "0000000000000000";
        let all = "000001ffffffffff";
        assert_eq!(
            against_plan(&status(5000, 1, none, none), 5000, &dropped(vec![])),
            Ok(())
        );
        // A kept capability is the plan's, in every set but bounding too.
        let bind = format!("{:016x}", caps::Capability::CAP_NET_BIND_SERVICE.bitmask());
        let keep = dropped(vec![caps::Capability::CAP_NET_BIND_SERVICE]);
        assert_eq!(
            against_plan(&status(5000, 1, &bind, &bind), 5000, &keep),
            Ok(())
        );
        // What a root caller has (no_new_privs 0, capabilities) is wrong
        // for the service, and each difference is named.
        let chown = format!("{:016x}", caps::Capability::CAP_CHOWN.bitmask());
        let admin = format!("{:016x}", caps::Capability::CAP_SYS_ADMIN.bitmask());
        assert_eq!(
            against_plan(&status(0, 0, &chown, &admin), 5000, &dropped(vec![])).unwrap_err(),
            "uid 0 0 0 0 (planned 5000), no_new_privs not set, effective holds CAP_CHOWN, \
             permitted holds CAP_CHOWN, bounding holds CAP_SYS_ADMIN"
        );
        // Where the plan leaves the bounding set (no CAP_SETPCAP), it is not held against it.
        let mut kept_bounding = dropped(vec![]);
        kept_bounding.clear_bounding = false;
        assert_eq!(
            against_plan(&status(5000, 1, none, all), 5000, &kept_bounding),
            Ok(())
        );
    }

    fn who(uid: u32) -> Ids {
        Ids {
            uid,
            gid: uid,
            groups: vec![],
        }
    }

    #[test]
    fn advice_names_the_fix() {
        let p = Path::new("/dls");
        let a = advice(p, &Verdict::Denied(Some((5000, 5000, 0o750))), &who(65534));
        assert!(
            a.contains("runAsUser: 5000")
                && a.contains("supplementalGroups: [5000]")
                && a.contains("chmod o+rx /dls"),
            "{a}"
        );
        let a = advice(p, &Verdict::Denied(Some((5000, 5000, 0o700))), &who(65534));
        assert!(
            a.contains("runAsUser: 5000") && !a.contains("supplementalGroups"),
            "{a}"
        );
        let a = advice(p, &Verdict::Denied(Some((5000, 5000, 0o200))), &who(5000));
        assert!(a.contains("chmod u+rx"), "{a}");
        assert!(advice(p, &Verdict::Absent, &who(1)).contains("mount the data volume"));
        assert!(advice(p, &Verdict::Denied(None), &who(0)).contains("root-squashed"));
    }
}
