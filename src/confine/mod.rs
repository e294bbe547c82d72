//! Confinement beyond the privilege drop: the data dir read-only to the
//! service (Landlock) and a baseline seccomp filter where the runtime set
//! none. This module decides (pure, from the configuration, what the kernel
//! said at start and read-only looks through `Inputs`); `landlock` and
//! `seccomp` apply, in the init after the drop, before the pre-start step,
//! so the migration, the service and everything they start inherit both.

pub mod carve;
pub mod landlock;
pub mod seccomp;

use crate::config::{ConfineConfig, SeccompMode};
use crate::error::Code;
use crate::inputs::Inputs;
pub use carve::Grant;
use std::path::{Path, PathBuf};

/// What the kernel said about confinement when smartem-init started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFacts {
    /// landlock_create_ruleset(NULL, 0, VERSION): the ABI, or the errno
    /// (ENOSYS: no Landlock or blocked by the runtime's filter; EOPNOTSUPP:
    /// built in but disabled at boot; EPERM: blocked by the runtime).
    pub landlock_abi: Result<i32, i32>,
    /// `Seccomp:` and `Seccomp_filters:` of /proc/self/status; None when
    /// the kernel shows no such line (no CONFIG_SECCOMP).
    pub seccomp: Option<SeccompState>,
}

pub use crate::inputs::procfs::SeccompState;

/// The data dir under Landlock, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirRule {
    /// No data dir is checked (a plain init for a command): nothing to protect.
    NotApplicable,
    /// --data-dir-writable.
    Writable,
    /// The kernel or runtime cannot give it: why.
    Unavailable(String),
    /// Landlock is there (this ABI); the rule set is carved in the
    /// data-dir check's bounded step (`carve_rule`), since the way to the
    /// data dir may sit on a mount that stalls.
    Pending(i32),
    ReadOnly(ReadOnly),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnly {
    pub abi: i32,
    /// Where writes are refused: the data dir (symlinks resolved) and every
    /// other place its files are mounted too.
    pub protected: Vec<PathBuf>,
    /// Where writes stay as the permissions allow: every entry beside the
    /// way down to a protected path.
    pub grants: Vec<Grant>,
    /// The directories on that way: no new entries directly in them.
    pub closed: Vec<PathBuf>,
    /// Rights this kernel's ABI cannot refuse (truncate before ABI 3).
    pub not_enforced: Vec<&'static str>,
}

/// The seccomp filter, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallFilter {
    /// The baseline filter is added; why (no filter at start, or `always`).
    Baseline(String),
    /// The runtime's filter is kept and none added.
    Runtime(u32),
    /// --seccomp off.
    Off,
    /// The kernel cannot filter: why.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    pub data_dir: DataDirRule,
    pub syscalls: SyscallFilter,
    pub required: bool,
}

impl Confinement {
    /// What the kernel or runtime cannot give, one line each (a warning, or
    /// exit 77 with --require-confinement).
    pub fn shortfalls(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let DataDirRule::Unavailable(why) = &self.data_dir {
            out.push(format!(
                "the data dir cannot be made read-only to the service: {why}"
            ));
        }
        if let SyscallFilter::Unavailable(why) = &self.syscalls {
            out.push(format!("no seccomp filter can be added: {why}"));
        }
        out
    }

    /// The problems of a run that requires confinement.
    pub fn problems(&self) -> Vec<(Code, String)> {
        if !self.required {
            return vec![];
        }
        self.shortfalls()
            .into_iter()
            .map(|s| {
                (
                    Code::NoPerm,
                    format!("{s}; refused by --require-confinement/SMARTEM_REQUIRE_CONFINEMENT (use a kernel with Landlock, allow its syscalls in the runtime's seccomp profile, or drop the requirement)"),
                )
            })
            .collect()
    }
}

impl DataDirRule {
    /// One line for the dry run, the log and doctor.
    pub fn describe(&self, data_dir: &Path) -> String {
        let d = data_dir.display();
        match self {
            DataDirRule::NotApplicable => {
                "nothing to protect (plain init for a command, no --data-dir)".into()
            }
            DataDirRule::Writable => format!(
                "{d} writable to the service as its permissions allow (--data-dir-writable)"
            ),
            DataDirRule::Unavailable(why) => format!("{d} NOT protected: {why}"),
            DataDirRule::Pending(abi) => format!(
                "read-only to the service (Landlock ABI {abi}) beneath {d}; the rule set is made with the data-dir check"
            ),
            DataDirRule::ReadOnly(r) => {
                let list = |v: &[PathBuf]| {
                    v.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut s = format!(
                    "read-only to the service (Landlock ABI {}): writing, creating, removing, renaming, \
                     linking, truncating and special files refused beneath {}; elsewhere writes as the \
                     permissions allow ({} entries granted), but no new entries directly in {}",
                    r.abi,
                    list(&r.protected),
                    r.grants.len(),
                    list(&r.closed)
                );
                if r.closed.is_empty() {
                    s.truncate(s.rfind(", but").unwrap_or(s.len()));
                }
                if !r.not_enforced.is_empty() {
                    s.push_str(&format!(
                        "; not refused by this kernel's ABI: {} (refer needs ABI 2, Linux 5.19; truncate ABI 3, Linux 6.2)",
                        r.not_enforced.join(", ")
                    ));
                }
                s
            }
        }
    }
}

impl SyscallFilter {
    /// One line for the dry run, the log and doctor.
    pub fn describe(&self) -> String {
        match self {
            SyscallFilter::Baseline(why) => format!(
                "baseline filter added ({why}): {} system calls and namespace flags on clone/unshare refused \
                 (EPERM), clone3 and x32 calls ENOSYS, other architectures killed",
                seccomp::DENIED.len()
            ),
            SyscallFilter::Runtime(n) => format!(
                "the runtime's filter kept ({n} filter(s), Seccomp: 2); --seccomp always adds the baseline on top"
            ),
            SyscallFilter::Off => "no filter added (--seccomp off)".into(),
            SyscallFilter::Unavailable(why) => format!("no filter: {why}"),
        }
    }
}

fn errno_text(errno: i32) -> String {
    let why = match errno {
        libc::ENOSYS => {
            "the kernel has no Landlock, or the runtime's seccomp profile blocks its system calls"
        }
        libc::EOPNOTSUPP => {
            "Landlock is built in but not enabled (add landlock to the lsm= boot parameter)"
        }
        libc::EPERM => "the runtime's seccomp profile refuses its system calls",
        _ => "unexpected answer",
    };
    format!(
        "landlock_create_ruleset: {} ({why})",
        std::io::Error::from_raw_os_error(errno)
    )
}

/// Every decision about confinement but the carve (`carve_rule`).
/// `check_data_dir`: a data dir is checked in this run (a role, or one
/// configured).
pub fn plan(cfg: &ConfineConfig, kernel: &KernelFacts, check_data_dir: bool) -> Confinement {
    let data_dir = if !check_data_dir {
        DataDirRule::NotApplicable
    } else if cfg.data_dir_writable {
        DataDirRule::Writable
    } else {
        match kernel.landlock_abi {
            Err(errno) => DataDirRule::Unavailable(errno_text(errno)),
            Ok(abi) => DataDirRule::Pending(abi),
        }
    };
    let syscalls = match (cfg.seccomp, kernel.seccomp) {
        (SeccompMode::Off, _) => SyscallFilter::Off,
        (_, None) => SyscallFilter::Unavailable(
            "this kernel shows no Seccomp line in /proc/self/status (built without CONFIG_SECCOMP)"
                .into(),
        ),
        (SeccompMode::Always, Some(s)) => SyscallFilter::Baseline(format!(
            "--seccomp always, on top of {} filter(s) from the runtime",
            s.filters
        )),
        (SeccompMode::Baseline, Some(s)) if s.mode == 0 => {
            SyscallFilter::Baseline("no filter at start: Seccomp 0".into())
        }
        (SeccompMode::Baseline, Some(s)) => SyscallFilter::Runtime(s.filters),
    };
    Confinement {
        data_dir,
        syscalls,
        required: cfg.require,
    }
}

/// A pending rule made concrete: the carve for `data_dir` (see `carve`), or
/// why it cannot be made. Other rules are returned as they are.
pub fn carve_rule(
    rule: &DataDirRule,
    data_dir: &Path,
    mountinfo: &str,
    fs: &dyn Inputs,
) -> DataDirRule {
    let DataDirRule::Pending(abi) = *rule else {
        return rule.clone();
    };
    match carve::read_only(data_dir, mountinfo, fs) {
        Ok((protected, grants, closed)) => DataDirRule::ReadOnly(ReadOnly {
            abi,
            protected,
            grants,
            closed,
            not_enforced: not_enforced(abi),
        }),
        Err(why) => DataDirRule::Unavailable(why),
    }
}

/// Landlock rights an ABI older than the crate's target cannot refuse.
fn not_enforced(abi: i32) -> Vec<&'static str> {
    let mut v = Vec::new();
    if abi < 2 {
        // ABI 1 refuses every rename or link across directories anyway.
        v.push("refer");
    }
    if abi < 3 {
        v.push("truncate");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::mem::Mem;

    fn kernel(abi: Result<i32, i32>, mode: u32) -> KernelFacts {
        KernelFacts {
            landlock_abi: abi,
            seccomp: Some(SeccompState {
                mode,
                filters: if mode == 2 { 1 } else { 0 },
            }),
        }
    }

    fn world() -> Mem {
        let mut m = Mem::new();
        m.dir("/dls", 0, 0, 0o755).dir("/app", 0, 0, 0o755);
        m
    }

    #[test]
    fn the_defaults_protect_the_data_dir_and_add_the_baseline_where_none_is_set() {
        let c = plan(&ConfineConfig::default(), &kernel(Ok(7), 0), true);
        assert_eq!(c.data_dir, DataDirRule::Pending(7));
        let rule = carve_rule(&c.data_dir, Path::new("/dls"), "", &world());
        let DataDirRule::ReadOnly(r) = &rule else {
            panic!("{rule:?}")
        };
        assert_eq!(r.protected, vec![PathBuf::from("/dls")]);
        assert_eq!(
            r.grants,
            vec![Grant {
                path: "/app".into(),
                dir: true
            }]
        );
        assert!(r.not_enforced.is_empty());
        assert!(matches!(c.syscalls, SyscallFilter::Baseline(_)));
        assert!(c.shortfalls().is_empty());
    }

    #[test]
    fn a_runtime_filter_is_kept_unless_always() {
        let mut cfg = ConfineConfig::default();
        let c = plan(&cfg, &kernel(Ok(7), 2), true);
        assert_eq!(c.syscalls, SyscallFilter::Runtime(1));
        cfg.seccomp = SeccompMode::Always;
        let c = plan(&cfg, &kernel(Ok(7), 2), true);
        assert!(matches!(c.syscalls, SyscallFilter::Baseline(_)));
        cfg.seccomp = SeccompMode::Off;
        let c = plan(&cfg, &kernel(Ok(7), 0), true);
        assert_eq!(c.syscalls, SyscallFilter::Off);
    }

    #[test]
    fn opt_outs_and_plain_init_leave_the_data_dir_alone() {
        let k = kernel(Ok(7), 0);
        let cfg = ConfineConfig {
            data_dir_writable: true,
            ..Default::default()
        };
        let c = plan(&cfg, &k, true);
        assert_eq!(c.data_dir, DataDirRule::Writable);
        let c = plan(&ConfineConfig::default(), &k, false);
        assert_eq!(c.data_dir, DataDirRule::NotApplicable);
    }

    #[test]
    fn no_landlock_is_a_warning_or_with_the_requirement_exit_77() {
        let mut cfg = ConfineConfig::default();
        for (errno, says) in [
            (libc::ENOSYS, "seccomp profile blocks"),
            (libc::EOPNOTSUPP, "lsm= boot parameter"),
            (libc::EPERM, "refuses its system calls"),
        ] {
            let c = plan(&cfg, &kernel(Err(errno), 0), true);
            let s = c.shortfalls();
            assert_eq!(s.len(), 1, "{s:?}");
            assert!(s[0].contains(says), "{s:?}");
            assert!(c.problems().is_empty(), "a warning only");
        }
        cfg.require = true;
        let c = plan(&cfg, &kernel(Err(libc::ENOSYS), 0), true);
        let p = c.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, Code::NoPerm);
        assert!(p[0].1.contains("--require-confinement"), "{}", p[0].1);
        // Opted out: nothing is required of Landlock.
        cfg.data_dir_writable = true;
        let c = plan(&cfg, &kernel(Err(libc::ENOSYS), 0), true);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn without_seccomp_in_the_kernel_the_filter_is_a_shortfall() {
        let k = KernelFacts {
            landlock_abi: Ok(7),
            seccomp: None,
        };
        let c = plan(&ConfineConfig::default(), &k, true);
        assert!(matches!(c.syscalls, SyscallFilter::Unavailable(_)));
        assert_eq!(c.shortfalls().len(), 1);
    }

    #[test]
    fn old_abis_say_what_they_cannot_refuse() {
        assert_eq!(not_enforced(1), vec!["refer", "truncate"]);
        assert_eq!(not_enforced(2), vec!["truncate"]);
        assert!(not_enforced(3).is_empty());
    }
}
