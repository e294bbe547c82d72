//! The privilege drop and its verification: the one place that changes
//! credentials. System calls go through `Sys` so the order of the steps and
//! the "stop at the first failure" rule are unit-tested without root
//! (youki's pattern); `RealSys` is the thin layer over nix/caps/libc.

use crate::error::{fail, Code, Result};
use crate::identity::creds::{mask_of, names, read_state, CredState};
use crate::identity::Ids;
use caps::{CapSet, Capability, CapsHashSet};
use std::io;

/// securebits (linux/securebits.h). Locked together when no capability is
/// kept: uid 0 gets no capabilities on exec (NOROOT), uid changes never
/// touch capabilities (NO_SETUID_FIXUP: we clear them ourselves), keepcaps
/// can't be turned on, nothing can be raised into the ambient set.
pub const SECBIT_NOROOT: u32 = 1 << 0;
pub const SECBIT_NOROOT_LOCKED: u32 = 1 << 1;
pub const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;
pub const SECBIT_NO_SETUID_FIXUP_LOCKED: u32 = 1 << 3;
pub const SECBIT_KEEP_CAPS_LOCKED: u32 = 1 << 5;
pub const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
pub const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u32 = 1 << 7;
pub const LOCKED_SECUREBITS: u32 = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

/// Everything the drop will do, decided before any of it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropPlan {
    /// uid, gid and supplementary groups to switch to (started as root).
    pub switch_to: Option<Ids>,
    /// Kept as permitted, effective, inheritable and ambient.
    pub keep: Vec<Capability>,
    /// Bounding set reduced to `keep` (needs CAP_SETPCAP).
    pub clear_bounding: bool,
    /// Securebits locked (no capability kept, CAP_SETPCAP held).
    pub lock_securebits: bool,
    /// Every supported capability, for the bounding-set drop.
    pub supported: Vec<Capability>,
    /// setgroups() is denied (a user namespace's /proc/self/setgroups says
    /// "deny") and the groups already are the target's: the call is left
    /// out rather than failing. The plan refuses the switch when they differ.
    pub skip_setgroups: bool,
    /// Inside a user namespace: a refused step is about its uid/gid maps,
    /// not about missing capabilities, and the message says so.
    pub in_userns: bool,
}

/// The privileged calls the drop makes, one method each.
pub trait Sys {
    fn set_no_new_privs(&mut self) -> io::Result<()>;
    fn set_keepcaps(&mut self, on: bool) -> io::Result<()>;
    fn drop_bounding(&mut self, cap: Capability) -> io::Result<()>;
    fn set_securebits(&mut self, bits: u32) -> io::Result<()>;
    fn setgroups(&mut self, gids: &[u32]) -> io::Result<()>;
    fn setresgid(&mut self, gid: u32) -> io::Result<()>;
    fn setresuid(&mut self, uid: u32) -> io::Result<()>;
    fn set_caps(&mut self, set: CapSet, caps: &CapsHashSet) -> io::Result<()>;
    fn clear_ambient(&mut self) -> io::Result<()>;
    fn raise_ambient(&mut self, cap: Capability) -> io::Result<()>;
    fn read_state(&mut self) -> io::Result<CredState>;
    /// Tries setuid(0); true means it worked, which must never happen.
    fn setuid_root_succeeds(&mut self) -> bool;
}

fn step_failed(step: &str, err: io::Error, hint: &str) -> anyhow::Error {
    fail(
        Code::NoPerm,
        format!("privilege drop failed at {step}: {err}; {hint}; the service was not started"),
    )
}

const NEED_ROOT_CAPS: &str =
    "the container lacks CAP_SETUID/CAP_SETGID/CAP_SETPCAP (capabilities dropped?): start it as the target user instead (runAsUser)";
const IN_USERNS: &str =
    "this is a user namespace: the target uid and gid must be mapped in it (/proc/self/uid_map, gid_map) and setgroups allowed (/proc/self/setgroups)";

/// Performs the drop, top to bottom. Each step is in its place for a reason
/// given beside it; the first failure stops everything (the caller exits
/// without starting anything, so a half-dropped process never runs code).
pub fn drop_privileges(sys: &mut dyn Sys, plan: &DropPlan) -> Result<()> {
    let keep: CapsHashSet = plan.keep.iter().copied().collect();
    let need_root_caps = if plan.in_userns {
        IN_USERNS
    } else {
        NEED_ROOT_CAPS
    };

    // First, because it needs no privilege and from here on no execve can
    // gain privileges (setuid bits, file capabilities), whatever follows.
    sys.set_no_new_privs().map_err(|e| {
        step_failed(
            "prctl(PR_SET_NO_NEW_PRIVS)",
            e,
            "the kernel refused no_new_privs",
        )
    })?;

    let switching_away_from_root = plan.switch_to.as_ref().is_some_and(|w| w.uid != 0);
    // Kept capabilities must survive setresuid() in the permitted set so
    // they can be raised into the ambient set afterwards.
    let keepcaps = !keep.is_empty() && switching_away_from_root;
    if keepcaps {
        sys.set_keepcaps(true)
            .map_err(|e| step_failed("prctl(PR_SET_KEEPCAPS, 1)", e, need_root_caps))?;
    }

    // Bounding set and securebits need CAP_SETPCAP in the effective set,
    // which setresuid() below takes away: so they come before it.
    if plan.clear_bounding {
        for cap in plan.supported.iter().filter(|c| !keep.contains(c)) {
            sys.drop_bounding(*cap).map_err(|e| {
                step_failed(&format!("prctl(PR_CAPBSET_DROP, {cap})"), e, need_root_caps)
            })?;
        }
    }
    if plan.lock_securebits {
        // NO_SETUID_FIXUP means setresuid() will leave the capability sets
        // alone: they are cleared explicitly below and verified after.
        sys.set_securebits(LOCKED_SECUREBITS)
            .map_err(|e| step_failed("prctl(PR_SET_SECUREBITS)", e, need_root_caps))?;
    }

    if let Some(Ids { uid, gid, groups }) = &plan.switch_to {
        // Groups, then gid, then uid: the first two need CAP_SETGID, which
        // the uid change drops. setgroups() is skipped only where the user
        // namespace denies it and the groups already are the target's (the
        // plan checked), so root's supplementary groups cannot leak.
        if !plan.skip_setgroups {
            sys.setgroups(groups)
                .map_err(|e| step_failed(&format!("setgroups({groups:?})"), e, need_root_caps))?;
        }
        sys.setresgid(*gid).map_err(|e| {
            step_failed(
                &format!("setresgid({gid}, {gid}, {gid})"),
                e,
                need_root_caps,
            )
        })?;
        sys.setresuid(*uid).map_err(|e| {
            step_failed(
                &format!("setresuid({uid}, {uid}, {uid})"),
                e,
                need_root_caps,
            )
        })?;
    }

    // Effective first (it must stay within permitted), then inheritable
    // (must stay within the old permitted set), then permitted.
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        sys.set_caps(set, &keep).map_err(|e| {
            step_failed(
                &format!("capset({set:?})"),
                e,
                "cannot reduce the capability sets",
            )
        })?;
    }
    // Ambient last: raising needs the capability in permitted and
    // inheritable, which the step above just arranged.
    sys.clear_ambient().map_err(|e| {
        step_failed(
            "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
            e,
            "cannot clear ambient capabilities",
        )
    })?;
    for cap in &plan.keep {
        sys.raise_ambient(*cap).map_err(|e| {
            step_failed(
                &format!("prctl(PR_CAP_AMBIENT_RAISE, {cap})"),
                e,
                "the capability must be in the container's set (securityContext.capabilities.add)",
            )
        })?;
    }
    if keepcaps {
        sys.set_keepcaps(false)
            .map_err(|e| step_failed("prctl(PR_SET_KEEPCAPS, 0)", e, "cannot reset keepcaps"))?;
    }
    Ok(())
}

/// What the kernel must report after the drop.
pub fn verify(sys: &mut dyn Sys, plan: &DropPlan, start: &CredState) -> Result<()> {
    let st = sys.read_state().map_err(|e| {
        fail(
            Code::NoPerm,
            format!("cannot read credentials back after the drop: {e}"),
        )
    })?;
    let bad = |what: String| {
        fail(
            Code::NoPerm,
            format!("privilege drop not verified: {what}; the service was not started"),
        )
    };
    // The identity the plan switched to, or the one it started with.
    let Ids { uid, gid, groups } = plan
        .switch_to
        .clone()
        .unwrap_or_else(|| start.current.ids.clone());
    let c = &st.current;
    if [c.ruid, c.ids.uid, c.suid] != [uid; 3] {
        let uids = (c.ruid, c.ids.uid, c.suid);
        return Err(bad(format!("uids are {uids:?}, expected all {uid}")));
    }
    if [c.rgid, c.ids.gid, c.sgid] != [gid; 3] {
        let gids = (c.rgid, c.ids.gid, c.sgid);
        return Err(bad(format!("gids are {gids:?}, expected all {gid}")));
    }
    let mut got = c.ids.groups.clone();
    got.sort_unstable();
    let mut want = groups;
    want.sort_unstable();
    if got != want {
        return Err(bad(format!(
            "supplementary groups are {got:?}, expected {want:?}"
        )));
    }
    let keep = mask_of(&plan.keep);
    for (name, set) in [
        ("effective", st.effective),
        ("permitted", st.permitted),
        ("inheritable", st.inheritable),
        ("ambient", st.ambient),
    ] {
        if set != keep {
            return Err(bad(format!(
                "{name} capabilities are {}, expected {}",
                names(set),
                names(keep)
            )));
        }
    }
    if plan.clear_bounding && st.bounding != keep {
        return Err(bad(format!(
            "bounding set is {}, expected {}",
            names(st.bounding),
            names(keep)
        )));
    }
    if !st.no_new_privs {
        return Err(bad("no_new_privs reads back as 0".into()));
    }
    if plan.lock_securebits && st.securebits & LOCKED_SECUREBITS != LOCKED_SECUREBITS {
        return Err(bad(format!("securebits read back as {:#x}", st.securebits)));
    }
    if uid != 0 && sys.setuid_root_succeeds() {
        return Err(bad("setuid(0) succeeded after the drop".into()));
    }
    Ok(())
}

/// The real system calls.
pub struct RealSys;

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn caps_io(e: caps::errors::CapsError) -> io::Error {
    io::Error::other(e.to_string())
}

impl Sys for RealSys {
    fn set_no_new_privs(&mut self) -> io::Result<()> {
        nix::sys::prctl::set_no_new_privs().map_err(nix_io)
    }
    fn set_keepcaps(&mut self, on: bool) -> io::Result<()> {
        nix::sys::prctl::set_keepcaps(on).map_err(nix_io)
    }
    fn drop_bounding(&mut self, cap: Capability) -> io::Result<()> {
        caps::drop(None, CapSet::Bounding, cap).map_err(caps_io)
    }
    fn set_securebits(&mut self, bits: u32) -> io::Result<()> {
        // SAFETY: PR_SET_SECUREBITS takes one integer argument; no memory is passed.
        let rc = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    fn setgroups(&mut self, gids: &[u32]) -> io::Result<()> {
        let gids: Vec<nix::unistd::Gid> = gids
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).map_err(nix_io)
    }
    fn setresgid(&mut self, gid: u32) -> io::Result<()> {
        // musl applies set*id() to every thread; we are single-threaded here anyway.
        let g = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setresgid(g, g, g).map_err(nix_io)
    }
    fn setresuid(&mut self, uid: u32) -> io::Result<()> {
        let u = nix::unistd::Uid::from_raw(uid);
        nix::unistd::setresuid(u, u, u).map_err(nix_io)
    }
    fn set_caps(&mut self, set: CapSet, caps: &CapsHashSet) -> io::Result<()> {
        caps::set(None, set, caps).map_err(caps_io)
    }
    fn clear_ambient(&mut self) -> io::Result<()> {
        caps::clear(None, CapSet::Ambient).map_err(caps_io)
    }
    fn raise_ambient(&mut self, cap: Capability) -> io::Result<()> {
        caps::raise(None, CapSet::Ambient, cap).map_err(caps_io)
    }
    fn read_state(&mut self) -> io::Result<CredState> {
        read_state()
    }
    fn setuid_root_succeeds(&mut self) -> bool {
        // SAFETY: setuid takes a plain integer.
        unsafe { libc::setuid(0) == 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;
    use Capability::*;

    /// Records each call and models the kernel's state, so verification
    /// sees the effect of the calls (or, with `lie`, of calls that
    /// "succeed" without effect).
    struct Recorder {
        calls: Vec<String>,
        fail_on: Option<&'static str>,
        lie_about: Option<&'static str>,
        state: CredState,
        setuid_root_works: bool,
    }

    impl Recorder {
        fn root() -> Recorder {
            let all = mask_of(&[
                CAP_SETUID,
                CAP_SETGID,
                CAP_SETPCAP,
                CAP_NET_BIND_SERVICE,
                CAP_CHOWN,
            ]);
            Recorder {
                calls: vec![],
                fail_on: None,
                lie_about: None,
                state: CredState {
                    current: crate::identity::Current {
                        ids: Ids {
                            groups: vec![0, 1, 2],
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                    effective: all,
                    permitted: all,
                    bounding: all,
                    supported: all,
                    ..Default::default()
                },
                setuid_root_works: false,
            }
        }
        fn call(&mut self, name: &str) -> io::Result<bool> {
            self.calls.push(name.to_string());
            if self.fail_on.is_some_and(|f| name.starts_with(f)) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(!self.lie_about.is_some_and(|f| name.starts_with(f)))
        }
    }

    impl Sys for Recorder {
        fn set_no_new_privs(&mut self) -> io::Result<()> {
            if self.call("no_new_privs")? {
                self.state.no_new_privs = true;
            }
            Ok(())
        }
        fn set_keepcaps(&mut self, on: bool) -> io::Result<()> {
            self.call(&format!("keepcaps={on}")).map(drop)
        }
        fn drop_bounding(&mut self, cap: Capability) -> io::Result<()> {
            if self.call(&format!("bounding-{cap}"))? {
                self.state.bounding &= !cap.bitmask();
            }
            Ok(())
        }
        fn set_securebits(&mut self, bits: u32) -> io::Result<()> {
            if self.call(&format!("securebits={bits:#x}"))? {
                self.state.securebits = bits;
            }
            Ok(())
        }
        fn setgroups(&mut self, gids: &[u32]) -> io::Result<()> {
            if self.call(&format!("setgroups{gids:?}"))? {
                self.state.current.ids.groups = gids.to_vec();
            }
            Ok(())
        }
        fn setresgid(&mut self, gid: u32) -> io::Result<()> {
            if self.call(&format!("setresgid={gid}"))? {
                let c = &mut self.state.current;
                (c.rgid, c.ids.gid, c.sgid) = (gid, gid, gid);
            }
            Ok(())
        }
        fn setresuid(&mut self, uid: u32) -> io::Result<()> {
            if self.call(&format!("setresuid={uid}"))? {
                let c = &mut self.state.current;
                (c.ruid, c.ids.uid, c.suid) = (uid, uid, uid);
            }
            Ok(())
        }
        fn set_caps(&mut self, set: CapSet, caps: &CapsHashSet) -> io::Result<()> {
            let mask = caps.iter().fold(0, |m, c| m | c.bitmask());
            if self.call(&format!("capset-{set:?}={}", names(mask)))? {
                match set {
                    CapSet::Effective => self.state.effective = mask,
                    CapSet::Permitted => self.state.permitted = mask,
                    CapSet::Inheritable => self.state.inheritable = mask,
                    _ => unreachable!(),
                }
            }
            Ok(())
        }
        fn clear_ambient(&mut self) -> io::Result<()> {
            if self.call("ambient-clear")? {
                self.state.ambient = 0;
            }
            Ok(())
        }
        fn raise_ambient(&mut self, cap: Capability) -> io::Result<()> {
            if self.call(&format!("ambient-raise-{cap}"))? {
                self.state.ambient |= cap.bitmask();
            }
            Ok(())
        }
        fn read_state(&mut self) -> io::Result<CredState> {
            Ok(self.state.clone())
        }
        fn setuid_root_succeeds(&mut self) -> bool {
            self.calls.push("try-setuid-0".into());
            self.setuid_root_works
        }
    }

    fn plan(keep: Vec<Capability>) -> DropPlan {
        DropPlan {
            skip_setgroups: false,
            in_userns: false,
            switch_to: Some(Ids {
                uid: 5000,
                gid: 5000,
                groups: vec![6000],
            }),
            lock_securebits: keep.is_empty(),
            keep,
            clear_bounding: true,
            supported: vec![
                CAP_CHOWN,
                CAP_NET_BIND_SERVICE,
                CAP_SETGID,
                CAP_SETUID,
                CAP_SETPCAP,
            ],
        }
    }

    #[test]
    fn root_to_user_in_order_and_verified() {
        let mut sys = Recorder::root();
        let start = sys.state.clone();
        drop_privileges(&mut sys, &plan(vec![])).unwrap();
        verify(&mut sys, &plan(vec![]), &start).unwrap();
        assert_eq!(
            sys.calls,
            vec![
                "no_new_privs",
                "bounding-CAP_CHOWN",
                "bounding-CAP_NET_BIND_SERVICE",
                "bounding-CAP_SETGID",
                "bounding-CAP_SETUID",
                "bounding-CAP_SETPCAP",
                "securebits=0xef",
                "setgroups[6000]",
                "setresgid=5000",
                "setresuid=5000",
                "capset-Effective=none",
                "capset-Inheritable=none",
                "capset-Permitted=none",
                "ambient-clear",
                "try-setuid-0",
            ]
        );
    }

    #[test]
    fn kept_capability_goes_through_keepcaps_to_ambient() {
        let mut sys = Recorder::root();
        let start = sys.state.clone();
        let p = plan(vec![CAP_NET_BIND_SERVICE]);
        drop_privileges(&mut sys, &p).unwrap();
        verify(&mut sys, &p, &start).unwrap();
        let calls = sys.calls.join(" ");
        assert!(
            calls.starts_with("no_new_privs keepcaps=true bounding-CAP_CHOWN bounding-CAP_SETGID"),
            "{calls}"
        );
        assert!(!calls.contains("bounding-CAP_NET_BIND_SERVICE"), "{calls}");
        assert!(
            !calls.contains("securebits"),
            "no lock when a capability is kept: {calls}"
        );
        assert!(
            calls.ends_with(
                "ambient-clear ambient-raise-CAP_NET_BIND_SERVICE keepcaps=false try-setuid-0"
            ),
            "{calls}"
        );
        assert_eq!(sys.state.ambient, CAP_NET_BIND_SERVICE.bitmask());
    }

    #[test]
    fn a_failed_step_stops_everything_after_it() {
        for (step, last_before) in [
            ("setgroups", "securebits=0xef"),
            ("setresgid", "setgroups[6000]"),
            ("setresuid", "setresgid=5000"),
            ("bounding-CAP_SETGID", "bounding-CAP_NET_BIND_SERVICE"),
            ("no_new_privs", ""),
        ] {
            let mut sys = Recorder::root();
            sys.fail_on = Some(step);
            let err = drop_privileges(&mut sys, &plan(vec![])).unwrap_err();
            assert_eq!(exit_code(&err), 77, "{step}");
            assert!(format!("{err}").contains("not started"));
            let failed_at = sys.calls.iter().position(|c| c.starts_with(step)).unwrap();
            assert_eq!(
                failed_at + 1,
                sys.calls.len(),
                "{step}: calls went on after the failure: {:?}",
                sys.calls
            );
            if failed_at > 0 {
                assert_eq!(sys.calls[failed_at - 1], last_before);
            }
        }
    }

    #[test]
    fn verification_catches_calls_that_did_not_take() {
        for lie in [
            "setresuid",
            "setresgid",
            "setgroups",
            "capset-Permitted",
            "no_new_privs",
            "securebits",
            "bounding-CAP_CHOWN",
        ] {
            let mut sys = Recorder::root();
            let start = sys.state.clone();
            sys.lie_about = Some(lie);
            drop_privileges(&mut sys, &plan(vec![])).unwrap();
            let err = verify(&mut sys, &plan(vec![]), &start).unwrap_err();
            assert_eq!(exit_code(&err), 77, "{lie}");
        }
        let mut sys = Recorder::root();
        let start = sys.state.clone();
        sys.setuid_root_works = true;
        drop_privileges(&mut sys, &plan(vec![])).unwrap();
        let err = verify(&mut sys, &plan(vec![]), &start).unwrap_err();
        assert!(format!("{err}").contains("setuid(0) succeeded"));
    }

    #[test]
    fn no_switch_keeps_ids_but_still_drops_capabilities() {
        let mut sys = Recorder::root();
        let start = sys.state.clone();
        let p = DropPlan {
            skip_setgroups: false,
            in_userns: false,
            switch_to: None,
            ..plan(vec![])
        };
        drop_privileges(&mut sys, &p).unwrap();
        verify(&mut sys, &p, &start).unwrap();
        assert!(!sys
            .calls
            .iter()
            .any(|c| c.starts_with("setres") || c.starts_with("setgroups")));
        assert_eq!(sys.state.permitted, 0);
        assert!(
            !sys.calls.contains(&"try-setuid-0".to_string()),
            "uid stays 0: setuid(0) proves nothing"
        );
    }
}
