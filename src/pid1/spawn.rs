//! Starting a child: everything it needs is prepared before clone(); between
//! clone and exec the child only makes async-signal-safe calls on those
//! values, and an exec failure is handed back through the shared memory so
//! "could not exec" (126/127) is told apart from "exited 127".

use crate::error::{fail, os_fail, Code, Result};
use crate::pid1::signals::Inherited;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// argv/envp as C strings, built before fork.
pub struct Prepared {
    path: CString,
    shown: String,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| {
        fail(
            Code::Usage,
            format!("{what} contains a NUL byte; remove it"),
        )
    })
}

pub fn prepare(path: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> Result<Prepared> {
    let c_path = cstring(path.as_os_str().as_bytes(), "the command path")?;
    let c_argv = argv
        .iter()
        .map(|a| cstring(a.as_bytes(), "a command argument"))
        .collect::<Result<Vec<_>>>()?;
    let c_envp = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv, "an environment variable")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = c_envp.iter().map(|c| c.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    Ok(Prepared {
        path: c_path,
        shown: PathBuf::from(path).display().to_string(),
        _argv: c_argv,
        _envp: c_envp,
        argv_ptrs,
        envp_ptrs,
    })
}

/// What the child needs, handed to it through the shared address space.
struct ChildArgs<'a> {
    p: &'a Prepared,
    inherited: &'a Inherited,
    tty: bool,
    /// Set by the child when exec fails; read by the parent after the
    /// child is gone (CLONE_VFORK orders the two).
    errno: libc::c_int,
}

/// Stack for the child between clone and exec: a few frames of libc calls.
const CHILD_STACK: usize = 64 * 1024;

/// Starts the program: clone(CLONE_VM | CLONE_VFORK) on a stack of its own,
/// as posix_spawn does. The parent sleeps until the child has exec'd (or
/// failed to), so nothing is copied and no page is faulted in twice: the
/// cheapest way to start a process that still lets us set the session,
/// terminal, signal state and report exec errors exactly. `tty`: give the
/// child the terminal's foreground; otherwise it gets a session of its own.
pub fn spawn(
    p: &Prepared,
    inherited: &Inherited,
    tty: bool,
    who: &crate::identity::Ids,
) -> Result<libc::pid_t> {
    let mut stack = vec![0u8; CHILD_STACK];
    let mut args = ChildArgs {
        p,
        inherited,
        tty,
        errno: 0,
    };
    // SAFETY: the stack grows down from its 16-byte aligned end and stays
    // alive until clone returns, which with CLONE_VFORK is after the child
    // has exec'd or exited. Every signal is blocked in the parent and so in
    // the child, so no handler can run on the shared memory. The child only
    // makes async-signal-safe calls on values prepared before.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = top.sub(top as usize % 16);
        libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut ChildArgs).cast(),
        )
    };
    if pid < 0 {
        return Err(os_fail(
            "clone(CLONE_VM|CLONE_VFORK)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the child is gone from our memory; read what it may have written.
    let errno = unsafe { std::ptr::read_volatile(&args.errno) };
    drop(stack);
    if errno == 0 {
        return Ok(pid);
    }
    // Reap the failed child here: it never became the service.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    let err = std::io::Error::from_raw_os_error(errno);
    let code = if errno == libc::ENOENT {
        Code::NotFound
    } else {
        Code::CantExec
    };
    if errno == libc::E2BIG {
        let size = |v: &[CString]| v.iter().map(|c| c.as_bytes_with_nul().len()).sum::<usize>();
        return Err(fail(
            Code::CantExec,
            format!(
                "cannot execute {}: the environment ({} bytes in {} variables) and arguments ({} bytes) \
                 are too big for execve (E2BIG); shrink .env or the environment",
                p.shown,
                size(&p._envp),
                p._envp.len(),
                size(&p._argv)
            ),
        ));
    }
    let hint = if errno == libc::ENOENT {
        "the program or its interpreter (#! line) is missing".to_string()
    } else if errno == libc::EACCES {
        match crate::identity::access::exec_denied_by(who, Path::new(&p.shown), &crate::inputs::Fs)
        {
            Some(why) => format!("{why}; fix that mode or owner"),
            None => {
                "the mode bits allow it: check the noexec mount flag and the #! interpreter".into()
            }
        }
    } else {
        "check its mode, owner, format and the noexec mount flag".to_string()
    };
    Err(fail(
        code,
        format!(
            "cannot execute {} as uid {} gid {}: {err}; {hint}",
            p.shown, who.uid, who.gid
        ),
    ))
}

/// The child between clone and exec. Never returns.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's ChildArgs, alive while the parent waits.
    unsafe {
        let args = &mut *(arg as *mut ChildArgs);
        if args.tty {
            // Its own process group in the foreground, so Ctrl-C reaches it.
            // Signals are still blocked here, so tcsetpgrp from what is now
            // a background group does not stop us with SIGTTOU. Failure
            // (stdin is a terminal but not ours) leaves it in the
            // background, like tini.
            libc::setpgid(0, 0);
            libc::tcsetpgrp(0, libc::getpid());
        } else {
            // A new session: no controlling terminal to inject input into.
            libc::setsid();
        }
        if args.inherited.sigchld_ignored {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        }
        // Last: from here on signals reach the child as they reached us.
        libc::sigprocmask(
            libc::SIG_SETMASK,
            &args.inherited.mask,
            std::ptr::null_mut(),
        );
        libc::execve(
            args.p.path.as_ptr(),
            args.p.argv_ptrs.as_ptr(),
            args.p.envp_ptrs.as_ptr(),
        );
        let errno = *libc::__errno_location();
        std::ptr::write_volatile(&mut args.errno, errno);
        libc::_exit(if errno == libc::ENOENT { 127 } else { 126 })
    }
}
