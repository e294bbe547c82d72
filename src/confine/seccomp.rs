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

/// What a system-call number gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Allow,
    Eperm,
    Enosys,
    /// clone and unshare: EPERM with a namespace flag, allowed without.
    Flags,
}

/// The verdict of every number, as ranges: `(first, verdict)` sorted by
/// `first`, each range running to the next one's first (the last to
/// u32::MAX), neighbours with the same verdict merged.
fn ranges() -> Vec<(u32, Verdict)> {
    let calls = DENIED
        .iter()
        .map(|&(_, nr)| (nr as u32, Verdict::Eperm))
        .chain([
            (libc::SYS_clone3 as u32, Verdict::Enosys),
            (libc::SYS_clone as u32, Verdict::Flags),
            (libc::SYS_unshare as u32, Verdict::Flags),
        ]);
    // Sorted by insertion: slice::sort would bring its 4 KB to the binary.
    let mut special: Vec<(u32, Verdict)> = Vec::with_capacity(DENIED.len() + 3);
    for (nr, v) in calls {
        special.insert(special.partition_point(|&(n, _)| n < nr), (nr, v));
    }
    let mut out = vec![(0, Verdict::Allow)];
    let mut push = |first: u32, v: Verdict| {
        if out.last().is_some_and(|l| l.0 == first) {
            out.pop();
        }
        if out.last().map(|l| l.1) != Some(v) {
            out.push((first, v));
        }
    };
    for (nr, v) in special {
        push(nr, v);
        push(nr + 1, Verdict::Allow);
    }
    #[cfg(target_arch = "x86_64")]
    push(X32_SYSCALL_BIT, Verdict::Enosys);
    out
}

/// The filter: the architecture check, then a balanced tree of `JGE`
/// over the ranges of system-call numbers, each jumping at last to the
/// shared return of its range's verdict.
///
/// A tree, not a straight run of comparisons, because the kernel (5.11+)
/// runs the filter once per system-call number when it is installed, to
/// cache the calls it always allows: that costs about 2.5 us per
/// instruction on the way to `allow` (measured here: 50 comparisons,
/// 140 us; 10, 42 us), paid at every start. The tree's way is 6 jumps.
/// Shared returns, not one per leaf, because the kernel also compiles
/// every instruction to machine code at install (measured: a tree with
/// its own leaves, 105 instructions, spent more there than it saved).
///
/// ENOSYS for every x32 call and for clone3, whose flags sit in memory a
/// filter cannot read, so that libc falls back to clone, whose flags it
/// can; EPERM for the denied calls; clone and unshare refused (EPERM) with
/// any namespace flag.
pub fn program() -> Vec<Insn> {
    const HEAD: usize = 4;
    let mut nodes = Vec::new();
    tree(&ranges(), &mut nodes);
    // The tail after the nodes: the clone/unshare flag check, then the
    // shared returns.
    let flags = HEAD + nodes.len();
    let (eperm, allow, enosys) = (flags + 2, flags + 3, flags + 4);
    let place = |to: To| match to {
        To::Node(i) => HEAD + i,
        To::Verdict(Verdict::Allow) => allow,
        To::Verdict(Verdict::Eperm) => eperm,
        To::Verdict(Verdict::Enosys) => enosys,
        To::Verdict(Verdict::Flags) => flags,
    };
    let mut p = vec![
        stmt(LD, ARCH_AT),
        jump(JEQ, ARCH, 1, 0),
        stmt(RET, KILL_PROCESS),
        stmt(LD, NR),
    ];
    for (i, &(first, upper, lower)) in nodes.iter().enumerate() {
        let at = HEAD + i;
        // Every target lies after its node (pre-order, the tail last), and
        // ~50 nodes are far fewer than a jump's 255.
        let off = |to| u8::try_from(place(to) - at - 1).expect("a jump beyond 255");
        p.push(jump(JGE, first, off(upper), off(lower)));
    }
    let mask = NAMESPACE_FLAGS.iter().fold(0u32, |m, (_, f)| m | *f as u32);
    p.extend([
        stmt(LD, ARG0_LOW),
        jump(JSET, mask, 0, 1),
        stmt(RET, errno(libc::EPERM)),
        stmt(RET, ALLOW),
        stmt(RET, errno(libc::ENOSYS)),
    ]);
    p
}

const fn stmt(code: u16, k: u32) -> Insn {
    jump(code, k, 0, 0)
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// Where a tree's jump goes: another node (by its index among the nodes)
/// or a range's verdict.
#[derive(Clone, Copy)]
enum To {
    Node(usize),
    Verdict(Verdict),
}

/// Adds the nodes deciding among `ranges` (the number is in A), in
/// pre-order, each `(first of the upper half, upper, lower)`: `JGE` the
/// middle range's first.
fn tree(ranges: &[(u32, Verdict)], nodes: &mut Vec<(u32, To, To)>) -> To {
    if let [(_, verdict)] = ranges {
        return To::Verdict(*verdict);
    }
    let mid = ranges.len() / 2;
    let at = nodes.len();
    nodes.push((ranges[mid].0, To::Node(0), To::Node(0)));
    let lower = tree(&ranges[..mid], nodes);
    let upper = tree(&ranges[mid..], nodes);
    nodes[at] = (ranges[mid].0, upper, lower);
    To::Node(at)
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

    /// The classic BPF a seccomp filter may use here, run as the kernel
    /// does: the verdict for one call and how many instructions it took.
    /// Any other instruction, or a jump out of the program, fails the test.
    fn run(prog: &[Insn], arch: u32, nr: u32, arg0: u32) -> (u32, usize) {
        let (mut pc, mut a, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let i = prog
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} out of the program"));
            steps += 1;
            let cond = |taken: bool| pc + 1 + usize::from(if taken { i.jt } else { i.jf });
            pc = match i.code {
                LD => {
                    a = match i.k {
                        NR => nr,
                        ARCH_AT => arch,
                        ARG0_LOW => arg0,
                        k => panic!("load at {k}"),
                    };
                    pc + 1
                }
                JEQ => cond(a == i.k),
                JGE => cond(a >= i.k),
                JSET => cond(a & i.k != 0),
                RET => return (i.k, steps),
                c => panic!("instruction {c:#x}"),
            };
        }
    }

    /// What each call must get, from the lists, not from the program.
    fn expected(nr: u32, arg0: u32) -> u32 {
        let ns = NAMESPACE_FLAGS.iter().any(|(_, f)| arg0 & *f as u32 != 0);
        #[cfg(target_arch = "x86_64")]
        if nr & X32_SYSCALL_BIT != 0 {
            return errno(libc::ENOSYS);
        }
        if nr == libc::SYS_clone3 as u32 {
            errno(libc::ENOSYS)
        } else if DENIED.iter().any(|&(_, d)| d as u32 == nr)
            || (ns && [libc::SYS_clone, libc::SYS_unshare].contains(&(nr as i64)))
        {
            errno(libc::EPERM)
        } else {
            ALLOW
        }
    }

    #[test]
    fn every_number_gets_the_verdict_of_the_lists() {
        let prog = program();
        let numbers = (0..2048u32).chain([u32::MAX, 0x4000_0000, 0x4000_0000 | 56, 0x3fff_ffff]);
        for nr in numbers {
            for arg0 in [
                0,
                libc::SIGCHLD as u32,
                libc::CLONE_NEWUSER as u32,
                0x80,
                libc::CLONE_NEWNS as u32,
            ] {
                assert_eq!(
                    run(&prog, ARCH, nr, arg0).0,
                    expected(nr, arg0),
                    "nr {nr} arg0 {arg0:#x}"
                );
            }
        }
        // Another architecture's table of numbers: killed, whatever the call.
        assert_eq!(run(&prog, ARCH ^ 1, 0, 0).0, KILL_PROCESS);
        assert_eq!(run(&prog, 0x4000_0003, 20, 0).0, KILL_PROCESS);
    }

    #[test]
    fn the_way_to_any_verdict_is_short() {
        // The kernel runs the filter for every number when it is installed
        // (its allow cache), so the longest way is paid hundreds of times at
        // each start: a balanced tree keeps it near log2 of the ranges.
        let prog = program();
        let longest = (0..1024).map(|nr| run(&prog, ARCH, nr, 0).1).max();
        let bound = 4 + (usize::BITS - ranges().len().leading_zeros()) as usize + 4;
        assert!(
            longest <= Some(bound),
            "{longest:?} > {bound}: {} ranges",
            ranges().len()
        );
    }
}
