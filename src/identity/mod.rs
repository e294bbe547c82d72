//! Who the service runs as: `USER[:GROUP]` resolved against the parsed
//! passwd/group files, and the decision of what to do given who we are
//! now. Pure: the current identity comes in as a value.

pub mod access;
pub mod creds;
pub mod etc_files;
pub mod privileges;

use crate::error::{fail, Code, Result};
use crate::identity::etc_files::{parse_id_str, EtcDb};

/// uid, gid and supplementary groups: who a process is or will be. The
/// one identity type, from resolution through the drop, its verification,
/// the data-dir check and doctor; embedded where more is known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Ids {
    pub fn describe(&self) -> String {
        format!("uid={} gid={}", self.uid, self.gid)
    }
}

/// The identity the service (and smartem-init itself) will run as, as
/// resolved: its groups are the /etc/group memberships (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The spec as given, for messages.
    pub spec: String,
    pub ids: Ids,
    /// passwd name, or the uid as text when there is no entry.
    pub user_name: String,
    /// HOME: the passwd entry's, or `/` without one (as gosu does).
    pub home: String,
    pub has_passwd_entry: bool,
}

impl Target {
    pub fn describe(&self) -> String {
        format!(
            "uid={} gid={} ({})",
            self.ids.uid, self.ids.gid, self.user_name
        )
    }
}

/// A process's ids: the effective uid and gid with the groups (`ids`),
/// and the real and saved ones beside them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Current {
    pub ids: Ids,
    pub ruid: u32,
    pub suid: u32,
    pub rgid: u32,
    pub sgid: u32,
}

impl Current {
    /// The ids and groups alone, without the capability sets: the cheap read
    /// for the setuid check before anything is parsed.
    pub fn read() -> std::io::Result<Current> {
        let e = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
        let u = nix::unistd::getresuid().map_err(e)?;
        let g = nix::unistd::getresgid().map_err(e)?;
        Ok(Current {
            ids: Ids {
                uid: u.effective.as_raw(),
                gid: g.effective.as_raw(),
                groups: vec![],
            },
            ruid: u.real.as_raw(),
            suid: u.saved.as_raw(),
            rgid: g.real.as_raw(),
            sgid: g.saved.as_raw(),
        })
    }

    pub fn describe(&self) -> String {
        self.ids.describe()
    }
}

/// What the privilege step does with the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Started as root with a user: setgroups, setresgid, setresuid.
    Switch(Target),
    /// Already the configured user (non-root start): nothing to switch; the
    /// supplementary groups the runtime gave (e.g. Kubernetes fsGroup) stay.
    AlreadyTarget(Target),
    /// No user configured: keep the current identity.
    KeepCurrent,
}

fn usage(msg: String) -> anyhow::Error {
    fail(Code::Usage, msg)
}

/// Resolves `USER`, `USER:GROUP`, `UID`, `UID:GID` (names or numbers on
/// either side), and gosu's two short forms: `USER:` (the user's primary
/// group, as `USER`) and `:GROUP` (the current user, `current_uid`, with
/// that group). Syntax errors are 64; names that don't resolve are 67 and
/// never fall back to root.
pub fn resolve(spec: &str, db: &EtcDb, current_uid: u32) -> Result<Target> {
    let hint = "use USER, USER:GROUP, UID, UID:GID, USER: or :GROUP (e.g. --user 5000:5000)";
    if spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(usage(format!(
            "user spec {spec:?} contains whitespace or control characters; {hint}"
        )));
    }
    let (user_part, group_part) = match spec.split_once(':') {
        // gosu's USER: means the user's own group.
        Some((u, "")) if !u.is_empty() => (u, None),
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() && group_part.is_none_or(str::is_empty) {
        return Err(usage(format!("user spec {spec:?} has no user; {hint}")));
    }
    // gosu's :GROUP means the current user with that group.
    let current = current_uid.to_string();
    let user_part = if user_part.is_empty() {
        current.as_str()
    } else {
        user_part
    };
    if user_part.starts_with('-') || group_part.is_some_and(|g| g.starts_with('-')) {
        return Err(usage(format!(
            "user spec {spec:?} is negative or starts with '-'; {hint}"
        )));
    }
    if let Some(g) = group_part {
        if g.is_empty() || g.contains(':') {
            return Err(usage(format!(
                "user spec {spec:?} has an empty or extra group part; {hint}"
            )));
        }
    }

    let entry = if is_number(user_part) {
        let uid = parse_id_str(user_part).ok_or_else(|| {
            usage(format!(
                "uid {user_part} in {spec:?} is out of range; use 0..=4294967294"
            ))
        })?;
        Ok(db.user_by_uid(uid).cloned()).map(|e| (uid, e))
    } else {
        match db.user_by_name(user_part) {
            Some(e) => Ok((e.uid, Some(e.clone()))),
            None => Err(fail(
                Code::NoUser,
                format!(
                    "user {user_part:?} not found in {}; add it (smartem-init gen-etc) or give a numeric uid",
                    db.passwd_path.display()
                ),
            )),
        }
    };
    let (uid, entry) = entry?;

    let gid = match group_part {
        Some(g) if is_number(g) => parse_id_str(g)
            .ok_or_else(|| usage(format!("gid {g} in {spec:?} is out of range; use 0..=4294967294")))?,
        Some(g) => match db.group_by_name(g) {
            Some(e) => e.gid,
            None => {
                return Err(fail(
                    Code::NoUser,
                    format!(
                        "group {g:?} not found in {}; add it (smartem-init gen-etc) or give a numeric gid",
                        db.group_path.display()
                    ),
                ))
            }
        },
        // Without an entry the uid doubles as gid: a numeric user must never
        // silently get root's group.
        None => entry.as_ref().map_or(uid, |e| e.gid),
    };

    Ok(Target {
        spec: spec.to_string(),
        ids: Ids {
            uid,
            gid,
            groups: entry
                .as_ref()
                .map(|e| db.memberships(&e.name))
                .unwrap_or_default(),
        },
        user_name: entry
            .as_ref()
            .map_or_else(|| uid.to_string(), |e| e.name.clone()),
        home: entry
            .as_ref()
            .map(|e| e.home.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".to_string()),
        has_passwd_entry: entry.is_some(),
    })
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Refuses a setuid/setgid installation: smartem-init is not a sudo.
pub fn check_not_setuid(cur: &Current) -> Result<()> {
    if cur.ruid != cur.ids.uid || cur.rgid != cur.ids.gid {
        // Only the ids are known here: differing uids are most likely the
        // setuid bit, differing gids alone the setgid bit or a caller that
        // set them apart (setpriv --egid, sg). Say which ids differ.
        let which = match (cur.ruid != cur.ids.uid, cur.rgid != cur.ids.gid) {
            (true, true) => "real and effective uid and gid differ",
            (true, false) => "real and effective uid differ",
            _ => "real and effective gid differ",
        };
        let cause = if cur.ruid != cur.ids.uid {
            "smartem-init is probably installed setuid: remove the bit with chmod u-s"
        } else {
            "smartem-init is installed setgid (remove the bit with chmod g-s) or was started with \
             an effective gid of its caller's choosing: start it with one gid"
        };
        return Err(fail(
            Code::NoPerm,
            format!(
                "{which} (real uid {} gid {}, effective uid {} gid {}); refusing to run, it is not a sudo: {cause}",
                cur.ruid, cur.rgid, cur.ids.uid, cur.ids.gid
            ),
        ));
    }
    Ok(())
}

/// Decides the identity step from who we are and who we should be.
pub fn decide(cur: &Current, target: Option<Target>, require_non_root: bool) -> Result<Action> {
    let action = match target {
        None => Action::KeepCurrent,
        Some(t) if cur.ids.uid == 0 => Action::Switch(t),
        Some(t) if t.ids.uid == cur.ids.uid && t.ids.uid == cur.ruid && t.ids.uid == cur.suid && t.ids.gid == cur.ids.gid => {
            Action::AlreadyTarget(t)
        }
        Some(t) => {
            return Err(fail(
                Code::NoPerm,
                format!(
                    "started as {} but the configured user is {} (--user/SMARTEM_USER={}); a non-root process \
                     cannot switch: the container's user differs from the image's; run with runAsUser: {} and \
                     runAsGroup: {} (docker --user {}:{}), or unset SMARTEM_USER to keep the given identity",
                    cur.describe(),
                    t.describe(),
                    t.spec,
                    t.ids.uid,
                    t.ids.gid,
                    t.ids.uid,
                    t.ids.gid
                ),
            ))
        }
    };
    if require_non_root {
        let final_uid = match &action {
            Action::Switch(t) | Action::AlreadyTarget(t) => t.ids.uid,
            Action::KeepCurrent => cur.ids.uid,
        };
        if final_uid == 0 {
            return Err(fail(
                Code::NoPerm,
                "the service would run as uid 0 but --require-non-root/SMARTEM_REQUIRE_NON_ROOT is set; \
                 configure a non-root --user (e.g. 5000:5000)",
            ));
        }
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;
    use crate::identity::etc_files::{parse_group, parse_passwd};

    fn db() -> EtcDb {
        EtcDb {
            passwd: parse_passwd(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                 smartem:x:5000:5000:smartem:/home/smartem:/sbin/nologin\n",
                "passwd",
            )
            .unwrap(),
            group: parse_group(
                "root:x:0:\nnogroup:x:65534:\nsmartem:x:5000:\ndls:x:6000:smartem\nbeam:x:6001:smartem,other\n",
                "group",
            )
            .unwrap(),
            passwd_path: "/etc/passwd".into(),
            group_path: "/etc/group".into(),
        }
    }

    fn ids(spec: &str) -> (u32, u32, Vec<u32>, String) {
        let t = resolve(spec, &db(), 4242).unwrap();
        (t.ids.uid, t.ids.gid, t.ids.groups, t.home)
    }

    #[test]
    fn gosu_style_matrix() {
        assert_eq!(ids("0"), (0, 0, vec![], "/root".into()));
        assert_eq!(ids("0:0"), (0, 0, vec![], "/root".into()));
        assert_eq!(ids("root"), (0, 0, vec![], "/root".into()));
        assert_eq!(ids("65534"), (65534, 65534, vec![], "/nonexistent".into()));
        assert_eq!(ids("nobody"), (65534, 65534, vec![], "/nonexistent".into()));
        assert_eq!(
            ids("nobody:nogroup"),
            (65534, 65534, vec![], "/nonexistent".into())
        );
        assert_eq!(ids("65534:0"), (65534, 0, vec![], "/nonexistent".into()));
        assert_eq!(
            ids("smartem"),
            (5000, 5000, vec![6000, 6001], "/home/smartem".into())
        );
        assert_eq!(
            ids("5000:dls"),
            (5000, 6000, vec![6000, 6001], "/home/smartem".into())
        );
    }

    #[test]
    fn numeric_uid_without_entry_gets_its_own_number_as_gid() {
        let t = resolve("1000", &db(), 4242).unwrap();
        assert_eq!(
            (t.ids.uid, t.ids.gid, t.home.as_str(), t.user_name.as_str()),
            (1000, 1000, "/", "1000")
        );
        assert!(t.ids.groups.is_empty());
        assert!(!t.has_passwd_entry);
        assert_eq!(resolve("1000:7", &db(), 4242).unwrap().ids.gid, 7);
    }

    #[test]
    fn unknown_names_are_67_and_syntax_64() {
        for (spec, code) in [
            ("bogus", 67),
            ("0day", 67),
            ("0:bogus", 67),
            ("nobody:bogus", 67),
            ("", 64),
            (":", 64),
            ("0::", 64),
            ("0:0:0", 64),
            ("a b", 64),
            ("4294967295", 64),
            ("1:99999999999", 64),
            ("-1", 64),
            ("0:-1", 64),
        ] {
            let err = resolve(spec, &db(), 4242).unwrap_err();
            assert_eq!(exit_code(&err), code, "{spec:?}: {err:#}");
        }
    }

    fn cur(uid: u32, gid: u32) -> Current {
        Current {
            ids: Ids {
                uid,
                gid,
                groups: vec![],
            },
            ruid: uid,
            suid: uid,
            rgid: gid,
            sgid: gid,
        }
    }

    #[test]
    fn root_switches_non_root_must_match() {
        let t = resolve("smartem", &db(), 4242).unwrap();
        assert!(matches!(
            decide(&cur(0, 0), Some(t.clone()), false).unwrap(),
            Action::Switch(_)
        ));
        assert!(matches!(
            decide(&cur(5000, 5000), Some(t.clone()), false).unwrap(),
            Action::AlreadyTarget(_)
        ));
        let err = decide(&cur(1000, 1000), Some(t), false).unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(exit_code(&err), 77);
        assert!(
            msg.contains("uid=1000 gid=1000") && msg.contains("uid=5000 gid=5000"),
            "{msg}"
        );
        assert!(msg.contains("runAsUser"), "{msg}");
        assert_eq!(
            decide(&cur(1000, 1000), None, false).unwrap(),
            Action::KeepCurrent
        );
    }

    #[test]
    fn require_non_root_refuses_uid_0_either_way() {
        let root = resolve("root", &db(), 4242).unwrap();
        assert_eq!(
            exit_code(&decide(&cur(0, 0), Some(root), true).unwrap_err()),
            77
        );
        assert_eq!(exit_code(&decide(&cur(0, 0), None, true).unwrap_err()), 77);
        let t = resolve("nobody", &db(), 4242).unwrap();
        assert!(decide(&cur(0, 0), Some(t), true).is_ok());
    }

    #[test]
    fn setuid_installation_is_refused() {
        let mut c = cur(1000, 1000);
        c.ids.uid = 0;
        assert_eq!(exit_code(&check_not_setuid(&c).unwrap_err()), 77);
        let mut c = cur(1000, 1000);
        c.ids.gid = 0;
        assert_eq!(exit_code(&check_not_setuid(&c).unwrap_err()), 77);
    }

    #[test]
    fn gosu_short_forms() {
        // USER: is the user's own group, like USER.
        let t = resolve("smartem:", &db(), 4242).unwrap();
        assert_eq!((t.ids.uid, t.ids.gid), (5000, 5000));
        // :GROUP is the current user with that group (number or name).
        let t = resolve(":7", &db(), 4242).unwrap();
        assert_eq!((t.ids.uid, t.ids.gid), (4242, 7));
        let t = resolve(":smartem", &db(), 1000).unwrap();
        assert_eq!((t.ids.uid, t.ids.gid), (1000, 5000));
        assert_eq!(exit_code(&resolve(":nosuch", &db(), 1000).unwrap_err()), 67);
        assert_eq!(exit_code(&resolve(":", &db(), 1000).unwrap_err()), 64);
    }
}
