//! Starting a child: everything it needs is prepared before fork(); between
//! fork and exec the child only makes async-signal-safe calls on those
//! values, and an exec failure travels back through a close-on-exec pipe so
//! "could not exec" (126/127) is told apart from "exited 127".

use crate::error::{fail, os_fail, Code, Result};
use crate::signals::Inherited;
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
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

/// Forks and execs. `tty`: give the child the terminal's foreground;
/// otherwise it gets a session of its own.
pub fn spawn(p: &Prepared, inherited: &Inherited, tty: bool) -> Result<libc::pid_t> {
    let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| os_fail("pipe2(O_CLOEXEC)", e))?;
    // SAFETY: fork in a process whose other threads (a possibly stalled
    // data-dir check) hold no locks the child needs: the child below only
    // uses values prepared above and async-signal-safe calls, then execs or
    // _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_fail("fork()", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; nothing here allocates or takes a lock.
        unsafe { child(p, inherited, tty, wr.as_raw_fd()) }
    }
    drop(wr);
    if tty {
        // Also done in the child; doing it here too closes the race with a
        // signal sent to the group before the child ran. EACCES after the
        // child's exec is fine.
        // SAFETY: plain integer arguments.
        unsafe { libc::setpgid(pid, pid) };
    }
    let mut buf = [0u8; 4];
    let n = loop {
        match nix::unistd::read(&rd, &mut buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    match n {
        Ok(4) => {
            let errno = i32::from_ne_bytes(buf);
            // Reap the failed child here: it never became the service.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            let err = std::io::Error::from_raw_os_error(errno);
            let code = if errno == libc::ENOENT {
                Code::NotFound
            } else {
                Code::CantExec
            };
            let hint = if errno == libc::ENOENT {
                "the program or its interpreter (#! line) is missing"
            } else {
                "check its mode, owner, format and the noexec mount flag"
            };
            Err(fail(
                code,
                format!("cannot execute {}: {err}; {hint}", p.shown),
            ))
        }
        _ => Ok(pid),
    }
}

/// The child between fork and exec. Never returns.
unsafe fn child(p: &Prepared, inherited: &Inherited, tty: bool, err_fd: i32) -> ! {
    if tty {
        // Its own process group in the foreground, so Ctrl-C reaches it.
        // Signals are still blocked here, so tcsetpgrp from what is now a
        // background group does not stop us with SIGTTOU. Failure (stdin is
        // a terminal but not ours) leaves it in the background, like tini.
        libc::setpgid(0, 0);
        libc::tcsetpgrp(0, libc::getpid());
    } else {
        // A new session: no controlling terminal to inject input into.
        libc::setsid();
    }
    if inherited.sigchld_ignored {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    // Last: from here on signals reach the child as they reached us.
    libc::sigprocmask(libc::SIG_SETMASK, &inherited.mask, std::ptr::null_mut());
    libc::execve(p.path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr());
    let errno = *libc::__errno_location();
    let bytes = errno.to_ne_bytes();
    libc::write(err_fd, bytes.as_ptr().cast(), bytes.len());
    libc::_exit(if errno == libc::ENOENT { 127 } else { 126 })
}
