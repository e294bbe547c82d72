//! The plan as the dry run prints it: text for a person, JSON for tools.

use super::{Cmd, EnvNote, Plan};
use crate::identity::creds::{mask_of, names};
use crate::identity::privileges::LOCKED_SECUREBITS;
use crate::identity::Action;
use crate::smartem::datadir;

impl Plan {
    fn identity_line(&self) -> String {
        match &self.action {
            Action::Switch(t) => format!(
                "{} -> {} (switch as root)",
                self.current.describe(),
                t.describe()
            ),
            Action::AlreadyTarget(t) => format!("{} (already the configured user)", t.describe()),
            Action::KeepCurrent => format!("{} (no --user: kept)", self.current.describe()),
        }
    }

    fn signals_line(&self) -> String {
        let name = |s: i32| {
            if s == 0 {
                "nothing".to_string()
            } else {
                crate::pid1::signals::name(s)
            }
        };
        let mut out = format!(
            "forwarded to the service's {}",
            if self.forwarding.child_only {
                "process only"
            } else {
                "process group"
            }
        );
        for (f, t) in &self.forwarding.rewrite {
            out.push_str(&format!("; {} sent as {}", name(*f), name(*t)));
        }
        if !self.success_exit.is_empty() {
            let codes: Vec<String> = self.success_exit.iter().map(i32::to_string).collect();
            out.push_str(&format!("; exit code {} reported as 0", codes.join(",")));
        }
        out
    }

    pub fn to_text(&self, data_dir: &datadir::Verdict) -> String {
        let mut out = String::from("smartem-init plan (dry run: nothing was changed)\n");
        let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<14} {v}\n"));
        row(
            "supervision",
            format!(
                "{}; forward signals, reap zombies; SIGKILL {}s after SIGTERM/SIGINT",
                if self.pid1 {
                    "PID 1"
                } else {
                    "not PID 1: child subreaper"
                },
                crate::log::secs(self.grace)
            ),
        );
        row("signals", self.signals_line());
        row("identity", self.identity_line());
        row("groups", fmt_ids(&self.ids().groups));
        let keep = names(mask_of(&self.drop.keep));
        row(
            "capabilities",
            format!(
                "effective/permitted/inheritable/ambient: {keep}; bounding: {}; securebits: {}",
                if self.drop.clear_bounding {
                    format!("cleared to {keep}")
                } else {
                    "left as is".into()
                },
                if self.drop.lock_securebits {
                    format!("locked ({LOCKED_SECUREBITS:#x})")
                } else {
                    "not locked".into()
                }
            ),
        );
        row("no_new_privs", "set".into());
        row(
            "role",
            self.role
                .clone()
                .unwrap_or_else(|| "none (command given after --)".into()),
        );
        if let Some(p) = &self.pre_start {
            row("pre-start", fmt_cmd(p));
        }
        row("service", fmt_cmd(&self.service));
        row(
            "workdir",
            self.workdir
                .as_ref()
                .map_or("unchanged (no /app, none given)".into(), |w| {
                    w.display().to_string()
                }),
        );
        row("env file", self.dotenv.clone());
        row("environment", fmt_env(&self.env_added));
        row(
            "data dir",
            format!(
                "{} ({}): {}",
                self.data_dir.display(),
                if self.require_data_dir {
                    "required"
                } else {
                    "warning only"
                },
                data_dir.describe(&self.data_dir, self.ids().uid)
            ),
        );
        row(
            "landlock",
            self.confinement.data_dir.describe(&self.data_dir),
        );
        row("seccomp", self.confinement.syscalls.describe());
        row(
            "terminal",
            if self.tty {
                "stdin is a TTY: service gets the foreground".into()
            } else {
                "none: service gets its own session".into()
            },
        );
        for n in &self.notes {
            row("note", n.clone());
        }
        for (code, msg) in &self.problems {
            row("PROBLEM", format!("{msg} (exit {})", *code as i32));
        }
        out
    }

    pub fn to_json(&self, data_dir: &datadir::Verdict) -> String {
        use serde_json::json;
        let cmd = |c: &Cmd| {
            json!({
                "argv": c.argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
                "program": c.program.display().to_string(),
            })
        };
        let target = match &self.action {
            Action::Switch(t) | Action::AlreadyTarget(t) => json!({
                "spec": t.spec, "uid": t.ids.uid, "gid": t.ids.gid, "user": t.user_name, "home": t.home,
                "has_passwd_entry": t.has_passwd_entry,
            }),
            Action::KeepCurrent => serde_json::Value::Null,
        };
        let action = match &self.action {
            Action::Switch(_) => "switch",
            Action::AlreadyTarget(_) => "already-target",
            Action::KeepCurrent => "keep-current",
        };
        let keep: Vec<String> = self.drop.keep.iter().map(|c| c.to_string()).collect();
        let value = json!({
            "supervision": if self.pid1 { "pid1" } else { "subreaper" },
            "signals": {
                "to": if self.forwarding.child_only { "process" } else { "process-group" },
                "rewrite": self.forwarding.rewrite.iter().map(|(f, t)| json!({"from": f, "to": t})).collect::<Vec<_>>(),
                "success_exit": self.success_exit,
            },
            "identity": {
                "action": action,
                "current": {"uid": self.current.uid, "gid": self.current.gid, "groups": self.current.groups},
                "target": target,
                "uid": self.ids().uid,
                "gid": self.ids().gid,
                "groups": self.ids().groups,
            },
            "capabilities": {
                "effective": keep, "permitted": keep, "inheritable": keep, "ambient": keep,
                "bounding": if self.drop.clear_bounding { json!(keep) } else { json!("unchanged") },
                "securebits_locked": self.drop.lock_securebits,
            },
            "no_new_privs": true,
            "role": self.role,
            "pre_start": self.pre_start.as_ref().map(cmd),
            "service": cmd(&self.service),
            "workdir": self.workdir.as_ref().map(|w| w.display().to_string()),
            "env_file": self.dotenv,
            "env_added": self.env_added.iter().map(|e| json!({"name": e.name, "source": e.source, "value": e.value})).collect::<Vec<_>>(),
            "data_dir": {
                "path": self.data_dir.display().to_string(),
                "required": self.require_data_dir,
                "timeout_secs": self.data_dir_timeout.as_secs_f64(),
                "ok": data_dir.is_ok(),
                "checked": self.check_data_dir,
                "verdict": data_dir.describe(&self.data_dir, self.ids().uid),
            },
            "confinement": self.confinement_json(),
            "grace_period_secs": self.grace.as_secs_f64(),
            "tty": self.tty,
            "notes": self.notes,
            "problems": self.problems.iter().map(|(c, m)| json!({"exit_code": *c as i32, "message": m})).collect::<Vec<_>>(),
        });
        let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl Plan {
    fn confinement_json(&self) -> serde_json::Value {
        use crate::confine::{seccomp, DataDirRule, SyscallFilter};
        use serde_json::json;
        let c = &self.confinement;
        fn paths<'a>(v: impl IntoIterator<Item = &'a std::path::PathBuf>) -> Vec<String> {
            v.into_iter().map(|p| p.display().to_string()).collect()
        }
        let (state, landlock) = match &c.data_dir {
            DataDirRule::NotApplicable => ("not-applicable", json!({})),
            DataDirRule::Writable => ("writable", json!({})),
            DataDirRule::Unavailable(why) => ("unavailable", json!({ "reason": why })),
            DataDirRule::Pending(abi) => (
                "read-only",
                json!({ "abi": abi, "made_with_the_data_dir_check": true }),
            ),
            DataDirRule::ReadOnly(r) => (
                "read-only",
                json!({
                    "abi": r.abi,
                    "protected": paths(&r.protected),
                    "writable_beneath": paths(r.grants.iter().map(|g| &g.path)),
                    "no_new_entries_in": paths(&r.closed),
                    "not_enforced": r.not_enforced,
                }),
            ),
        };
        let (mode, reason) = match &c.syscalls {
            SyscallFilter::Baseline(why) => ("baseline", json!(why)),
            SyscallFilter::Runtime(n) => (
                "runtime",
                json!(format!("{n} filter(s) set by the runtime")),
            ),
            SyscallFilter::Off => ("off", json!("--seccomp off")),
            SyscallFilter::Unavailable(why) => ("unavailable", json!(why)),
        };
        json!({
            "required": c.required,
            "landlock": {"data_dir": state, "rule": landlock},
            "seccomp": {
                "filter": mode,
                "reason": reason,
                "eperm": seccomp::DENIED.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            },
        })
    }
}

/// Ids as "a,b,c", or "none".
pub fn fmt_ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

fn fmt_cmd(c: &Cmd) -> String {
    let mut s = c.program.display().to_string();
    for a in c.argv.iter().skip(1) {
        let a = a.to_string_lossy();
        let plain = !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_graphic() && !b"'\"\\$`".contains(&b));
        s.push(' ');
        if plain {
            s.push_str(&a);
        } else {
            s.push_str(&format!("{:?}", a));
        }
    }
    s
}

fn fmt_env(added: &[EnvNote]) -> String {
    if added.is_empty() {
        return "inherited unchanged".into();
    }
    added
        .iter()
        .map(|e| match &e.value {
            Some(v) => format!("{}={v} ({})", e.name, e.source),
            None => format!("{} ({}, value hidden)", e.name, e.source),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
