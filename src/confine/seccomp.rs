//! The baseline seccomp filter: a deny list of the kernel interfaces behind
//! most container escapes and none of a Python web service's work, for
//! runtimes that set no filter (Kubernetes' default `Unconfined`, plain
//! runc/crun configurations, `--security-opt seccomp=unconfined`).
//!
//! The BPF is written here rather than by seccompiler: a deny list is a
//! straight run of comparisons, and seccompiler's general compiler (its
//! rule maps, sorting and condition chains) cost 16 KB of the binary's
//! 512 KiB budget, which the confinement overran (measured: 559,384 bytes
//! with it, the program built by seccompiler; see README "Binary size").
//! The unit tests install the program in a child and check the kernel's
//! answers, so what it does is proven, not assumed.

/// Refused outright with EPERM, by name and this architecture's number.
/// The README compares the list with Docker's default profile.
pub const DENIED: &[(&str, i64)] = &[
    // Namespaces: joining one (creating one is checked on clone/unshare).
    ("setns", libc::SYS_setns),
    // io_uring: a second system-call interface no filter can see into.
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    // Kernel keyrings are not namespaced.
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // Kernel-side programs and page-fault handling: frequent exploit aids.
    ("bpf", libc::SYS_bpf),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("perf_event_open", libc::SYS_perf_event_open),
    // Replacing or extending the kernel.
    ("kexec_load", libc::SYS_kexec_load),
    #[cfg(target_arch = "x86_64")]
    ("kexec_file_load", libc::SYS_kexec_file_load),
    // The libc crate lacks it for aarch64 musl (asm-generic number 294).
    #[cfg(target_arch = "aarch64")]
    ("kexec_file_load", 294),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    // The mount family, old and new API.
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    // The machine's, not a container's.
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("syslog", libc::SYS_syslog),
    ("quotactl", libc::SYS_quotactl),
    ("vhangup", libc::SYS_vhangup),
    // Opening files by handle walks around the mount tree (CVE-2014-9357's "shocker").
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
];

/// Namespace flags refused (EPERM) on clone and unshare: without them no
/// user namespace (the door to the others without capabilities) is made.
pub const NAMESPACE_FLAGS: &[(&str, libc::c_int)] = &[
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWTIME", 0x80),
];

/// AUDIT_ARCH_* of this build (linux/audit.h): a call through another
/// architecture's entry (int 0x80 on x86_64, 32-bit arm on aarch64) is
/// another table of numbers, so the process is killed.
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// x86_64's x32 ABI shares the architecture value but sets this bit in
/// the system-call number: without a check of its own every x32 twin of a
/// denied call would pass (a deny list must close it; libseccomp does).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20).
const LD: u16 = 0x20;
/// BPF_JMP | BPF_JEQ | BPF_K, BPF_JGE, BPF_JSET.
const JEQ: u16 = 0x15;
#[cfg(target_arch = "x86_64")]
const JGE: u16 = 0x35;
const JSET: u16 = 0x45;
/// BPF_RET | BPF_K.
const RET: u16 = 0x06;
/// Offsets in struct seccomp_data: nr, arch, the low word of args[0]
/// (both architectures are little-endian).
const NR: u32 = 0;
const ARCH_AT: u32 = 4;
const ARG0_LOW: u32 = 16;

const ALLOW: u32 = 0x7fff_0000;
const KILL_PROCESS: u32 = 0x8000_0000;
const fn errno(e: i32) -> u32 {
    0x0005_0000 | (e as u32 & 0xffff)
}

/// struct sock_filter.
pub type Insn = libc::sock_filter;

/// Where a jump goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Eperm,
    Enosys,
    Flags,
}

/// The filter, top to bottom: the architecture check; ENOSYS for every x32
/// call and for clone3, whose flags sit in memory a filter cannot read, so
/// that libc falls back to clone, whose flags it can; EPERM for the denied
/// calls; clone and unshare refused (EPERM) with any namespace flag;
/// everything else allowed.
pub fn program() -> Vec<Insn> {
    let stmt = |code, k| (code, k, To::Next, To::Next);
    let mut p: Vec<(u16, u32, To, To)> = vec![
        stmt(LD, ARCH_AT),
        (JEQ, ARCH, To::Next, To::Next),
        stmt(RET, KILL_PROCESS),
        stmt(LD, NR),
    ];
    #[cfg(target_arch = "x86_64")]
    p.push((JGE, X32_SYSCALL_BIT, To::Enosys, To::Next));
    p.push((JEQ, libc::SYS_clone3 as u32, To::Enosys, To::Next));
    for (_, nr) in DENIED {
        p.push((JEQ, *nr as u32, To::Eperm, To::Next));
    }
    for nr in [libc::SYS_clone, libc::SYS_unshare] {
        p.push((JEQ, nr as u32, To::Flags, To::Next));
    }
    p.push(stmt(RET, ALLOW));
    let flags = p.len();
    let mask = NAMESPACE_FLAGS.iter().fold(0u32, |m, (_, f)| m | *f as u32);
    p.push(stmt(LD, ARG0_LOW));
    p.push((JSET, mask, To::Eperm, To::Next));
    p.push(stmt(RET, ALLOW));
    let eperm = p.len();
    p.push(stmt(RET, errno(libc::EPERM)));
    let enosys = p.len();
    p.push(stmt(RET, errno(libc::ENOSYS)));
    let target = |to: To, at: usize| -> u8 {
        let dest = match to {
            To::Next => at + 1,
            To::Eperm => eperm,
            To::Enosys => enosys,
            To::Flags => flags,
        };
        // Jumps are forward and relative; the list is far shorter than 255.
        (dest - at - 1) as u8
    };
    let mut out: Vec<Insn> = p
        .iter()
        .enumerate()
        .map(|(i, &(code, k, t, f))| Insn {
            code,
            jt: target(t, i),
            jf: target(f, i),
            k,
        })
        .collect();
    // The architecture matching skips the kill.
    out[1].jt = 1;
    out
}

/// Installs the filter on the calling thread (no_new_privs is set).
pub fn install(prog: &[Insn]) -> std::io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut Insn,
    };
    // SAFETY: fprog points at `prog`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child (the filter stays with it) and returns
    /// its exit code: the test runner's threads never see the filter.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only makes system calls and exits with _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork");
            if pid == 0 {
                libc::_exit(f());
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                128 + libc::WTERMSIG(st)
            }
        }
    }

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    }

    /// The errno each probe gets: 0 means it was allowed.
    fn probes() -> [i32; 6] {
        // SAFETY: each call is made with arguments the kernel rejects or
        // that change nothing outside this child.
        unsafe {
            [
                errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
                errno_of(libc::syscall(
                    libc::SYS_clone3,
                    std::ptr::null::<u8>(),
                    0usize,
                )),
                errno_of(libc::syscall(
                    libc::SYS_io_uring_setup,
                    0,
                    std::ptr::null::<u8>(),
                )),
                errno_of(libc::syscall(libc::SYS_keyctl, 9999, 0, 0, 0, 0)),
                errno_of(libc::syscall(
                    libc::SYS_bpf,
                    9999,
                    std::ptr::null::<u8>(),
                    0,
                )),
                errno_of(libc::syscall(libc::SYS_getppid)),
            ]
        }
    }

    #[test]
    fn the_filter_refuses_the_escape_interfaces_and_allows_the_rest() {
        let prog = program();
        let code = in_child(|| {
            // SAFETY: prctl with integers.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return 10;
            }
            if install(&prog).is_err() {
                return 11;
            }
            let eperm = libc::EPERM;
            let want = [eperm, libc::ENOSYS, eperm, eperm, eperm, 0];
            if probes() != want {
                return 12;
            }
            // An ordinary child still starts (clone without namespace flags).
            // SAFETY: fork in a single-threaded child; its child exits at once.
            unsafe {
                let p = libc::fork();
                if p == 0 {
                    libc::_exit(0);
                }
                if p < 0 {
                    return 13;
                }
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
            0
        });
        assert_eq!(code, 0, "10 nnp, 11 install, 12 probes, 13 fork");
    }

    #[test]
    fn without_the_filter_the_kernel_answers_the_probes_itself() {
        // The same probes unfiltered: clone3 and keyctl get the kernel's own
        // answers (EINVAL, EOPNOTSUPP), so the filtered test above cannot
        // pass by accident.
        let code = in_child(|| {
            let got = probes();
            i32::from(got[1] == libc::ENOSYS || got[3] == libc::EPERM)
        });
        assert_eq!(code, 0);
    }

    /// getpid through the i386 entry (int 0x80): another table of numbers,
    /// which a filter for x86_64 numbers must not let through.
    #[cfg(target_arch = "x86_64")]
    fn getpid_i386() -> i32 {
        let mut ret: i32 = 20;
        // SAFETY: i386 getpid takes no arguments and only sets eax.
        unsafe { core::arch::asm!("int 0x80", inlateout("eax") ret) };
        ret
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_call_through_another_architecture_kills_the_process() {
        // Unfiltered, this kernel answers the i386 call...
        assert_eq!(in_child(|| i32::from(getpid_i386() <= 0)), 0);
        // ...filtered, the process dies of SIGSYS before it returns.
        let prog = program();
        let code = in_child(|| {
            // SAFETY: prctl with integers.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0
                || install(&prog).is_err()
            {
                return 10;
            }
            getpid_i386();
            0
        });
        assert_eq!(code, 128 + libc::SIGSYS);
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        let prog = program();
        assert_eq!(prog[2].k, KILL_PROCESS);
        assert_eq!((prog[1].jt, prog[1].jf), (1, 0), "a match skips the kill");
        for (i, insn) in prog.iter().enumerate().filter(|(_, i)| i.code != RET) {
            assert!(i + 1 + (insn.jt.max(insn.jf) as usize) < prog.len(), "{i}");
        }
        assert_eq!(prog.last().map(|i| i.k), Some(errno(libc::ENOSYS)));
    }
}
