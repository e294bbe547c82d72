//! smartem-testsvc: the stand-in service for tests and test images (no
//! shell in a scratch image). Not shipped in the product image.
//!
//!   status                 print identity lines of /proc/self/status, HOME, USER
//!   serve PORT [CODE]      HTTP on 127.0.0.1:PORT, /health answers CODE (200);
//!                          SIGTERM/SIGINT: clean exit 0
//!   bind ADDR              bind a TCP socket: exit 0 if allowed, 1 if not
//!   signals FILE           append the name of every signal received to FILE;
//!                          exit 0 on SIGTERM
//!   connect ADDR           hold a TCP connection to ADDR (a broker's stand-in);
//!                          SIGTERM/SIGINT: exit 0
//!   fuse-stall DIR         mount a FUSE filesystem at DIR whose daemon never
//!                          answers (every access to it waits), print "ready",
//!                          keep it until SIGTERM (then abort and unmount it)
//!   ignore-term            ignore SIGTERM and wait forever
//!   sleep                  wait forever with default signal dispositions
//!   argv FILE [ARG...]     append the arguments as one line to FILE, exit 0
//!   latency                print CLOCK_MONOTONIC ns for each SIGUSR1; exit 0 on SIGTERM
//!   attack DIR OUT         try every change beneath DIR (holding f and empty/),
//!                          OUT a writable directory elsewhere; one line each
//!   escape                 call unshare(CLONE_NEWUSER), clone3, io_uring_setup,
//!                          keyctl, bpf: one "NAME: errno N" line each
//!   orphans N              leave N orphans that exit at once, wait until init
//!                          has reaped every one, print ms
//!                          (run it as the child of an init in a PID namespace)

use std::io::{Read, Write};
use std::mem::MaybeUninit;

fn block_all() -> libc::sigset_t {
    // SAFETY: local sigset initialised by sigfillset before use.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: valid set and out-pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open output file");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("write output file");
}

fn status() {
    let text = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    // In the kernel's order, through the crate's one parser of the file.
    for key in [
        "Uid",
        "Gid",
        "Groups",
        "SigBlk",
        "SigIgn",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ] {
        if let Some(v) = smartem_init::status_field(&text, key) {
            println!("{key}:\t{v}");
        }
    }
    for var in ["HOME", "USER", "LOGNAME", "ROLE"] {
        println!("{var}={}", std::env::var(var).unwrap_or_default());
    }
    println!(
        "Args={}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
}

fn serve(port: &str, code: u16) {
    let set = block_all();
    let listener = std::net::TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind");
    eprintln!("testsvc: serving on port {port}, /health answers {code}");
    std::thread::spawn(move || loop {
        let sig = wait_signal(&set);
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            eprintln!("testsvc: clean shutdown on signal {sig}");
            std::process::exit(0);
        }
    });
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]);
        let status = if req.starts_with("GET /health ") {
            code
        } else {
            404
        };
        let _ = conn.write_all(
            format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .as_bytes(),
        );
    }
}

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Makes `n` orphans at once: an intermediate child forks them and exits,
/// so they are re-parented to init while blocked on a pipe; closing the
/// pipe lets all of them exit together. Prints the milliseconds from that
/// moment until init has reaped every one.
///
/// "Reaped" is asked of each orphan's pid with kill(pid, 0), which succeeds
/// on a zombie and fails with ESRCH only once its parent has waited for it:
/// a few syscalls per millisecond. Counting /proc entries instead cost a
/// scan of 10,000 directories per round, a core's worth of work competing
/// with the init being measured. Pids are not reused meanwhile: the
/// namespace allocates upwards and nothing else forks in it. A final /proc
/// count confirms nothing else was left behind (as many processes as before
/// the orphans were made).
fn orphans(n: usize) {
    let mut fds = [0; 2];
    // SAFETY: mmap/fork/read/close/_exit on plain fds and a shared anonymous
    // mapping of n pids; children run no Rust code that locks.
    unsafe {
        let bytes = n.max(1) * std::mem::size_of::<libc::pid_t>();
        let map = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap");
        let pids = std::slice::from_raw_parts_mut(map.cast::<libc::pid_t>(), n);
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "pipe");
        let (r, w) = (fds[0], fds[1]);
        let before = processes();
        let intermediate = libc::fork();
        if intermediate == 0 {
            for slot in pids.iter_mut() {
                let pid = libc::fork();
                if pid == 0 {
                    libc::close(w);
                    let mut b = 0u8;
                    libc::read(r, (&mut b as *mut u8).cast(), 1);
                    libc::_exit(0);
                }
                *slot = pid;
            }
            libc::_exit(0);
        }
        let mut st = 0;
        libc::waitpid(intermediate, &mut st, 0);
        assert!(pids.iter().all(|&p| p > 0), "fork failed");
        let start = std::time::Instant::now();
        libc::close(w);
        for &pid in pids.iter() {
            while libc::kill(pid, 0) == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "kill({pid}, 0)");
        }
        let elapsed = start.elapsed();
        while processes() > before {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        println!("{}", elapsed.as_millis());
    }
}

/// A FUSE mount nobody serves: /dev/fuse is opened and never read, so the
/// kernel's INIT and every request after it wait for an answer. Real kernel
/// behaviour of a hung FUSE daemon (or, alike, a hard NFS mount whose server
/// is gone); requests stay killable.
fn fuse_stall(dir: &str) {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    let set = block_all();
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .expect("open /dev/fuse");
    let opts = CString::new(format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        dev.as_raw_fd()
    ))
    .unwrap();
    let target = CString::new(dir).unwrap();
    // SAFETY: valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            c"smartem-stall".as_ptr(),
            target.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        eprintln!("mount fuse at {dir}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    while !matches!(wait_signal(&set), libc::SIGTERM | libc::SIGINT) {}
    // Closing the device aborts the connection: every waiter gets ENOTCONN.
    drop(dev);
    // SAFETY: valid NUL-terminated path.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}

/// Every way of changing a directory tree, tried beneath DIR (which holds
/// a file `f` and an empty directory `empty`), with OUT a writable
/// directory elsewhere; one line each: "NAME: refused (errno)" or
/// "NAME: ALLOWED". Then the reads, which must work, and a write in OUT.
fn attack(dir: &str, out: &str) {
    use std::ffi::CString;
    let c = |p: String| CString::new(p).unwrap();
    let f = c(format!("{dir}/f"));
    let report = |name: &str, rc: libc::c_int| {
        if rc < 0 {
            println!("{name}: refused ({})", std::io::Error::last_os_error());
        } else {
            println!("{name}: ALLOWED");
        }
    };
    let open = |p: &CString, flags: libc::c_int| {
        // SAFETY: valid NUL-terminated path; the descriptor is closed at once.
        unsafe {
            let fd = libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644);
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        }
    };
    std::fs::write(format!("{out}/moved-in"), "x").expect("write in OUT");
    let outside = c(format!("{out}/moved-in"));
    // SAFETY: plain system calls on NUL-terminated paths.
    unsafe {
        report("write", open(&f, libc::O_WRONLY));
        report("append", open(&f, libc::O_WRONLY | libc::O_APPEND));
        report("open-truncate", open(&f, libc::O_WRONLY | libc::O_TRUNC));
        report("truncate", libc::truncate(f.as_ptr(), 0));
        report(
            "create",
            open(&c(format!("{dir}/new")), libc::O_WRONLY | libc::O_CREAT),
        );
        report(
            "mkdir",
            libc::mkdir(c(format!("{dir}/newdir")).as_ptr(), 0o755),
        );
        report("rmdir", libc::rmdir(c(format!("{dir}/empty")).as_ptr()));
        report("unlink", libc::unlink(f.as_ptr()));
        report(
            "rename",
            libc::rename(f.as_ptr(), c(format!("{dir}/f2")).as_ptr()),
        );
        report(
            "rename-out",
            libc::rename(f.as_ptr(), c(format!("{out}/stolen")).as_ptr()),
        );
        report(
            "rename-in",
            libc::rename(outside.as_ptr(), c(format!("{dir}/moved-in")).as_ptr()),
        );
        report(
            "symlink",
            libc::symlink(f.as_ptr(), c(format!("{dir}/s")).as_ptr()),
        );
        report(
            "link",
            libc::link(f.as_ptr(), c(format!("{dir}/hard")).as_ptr()),
        );
        report(
            "link-out",
            libc::link(f.as_ptr(), c(format!("{out}/hard")).as_ptr()),
        );
        report(
            "mkfifo",
            libc::mkfifo(c(format!("{dir}/fifo")).as_ptr(), 0o644),
        );
        report(
            "mknod",
            libc::mknod(c(format!("{dir}/node")).as_ptr(), libc::S_IFREG | 0o644, 0),
        );
    }
    let sock = std::os::unix::net::UnixListener::bind(format!("{dir}/sock"));
    println!(
        "socket: {}",
        sock.map_or_else(|e| format!("refused ({e})"), |_| "ALLOWED".into())
    );
    match std::fs::read_to_string(format!("{dir}/f")) {
        Ok(t) => println!("read: ok {}", t.trim()),
        Err(e) => println!("read: failed ({e})"),
    }
    match std::fs::read_dir(dir) {
        Ok(d) => println!("list: ok {} entries", d.count()),
        Err(e) => println!("list: failed ({e})"),
    }
    match std::fs::write(format!("{out}/written"), "ok") {
        Ok(()) => println!("outside: ok"),
        Err(e) => println!("outside: failed ({e})"),
    }
}

/// The interfaces the baseline seccomp filter refuses, each called with
/// arguments the kernel itself answers without changing anything that
/// outlives this process: "NAME: errno N" (0 when it worked).
fn escape() {
    let errno = |rc: libc::c_long| {
        if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        } else {
            0
        }
    };
    let mut params = [0u8; 120];
    // SAFETY: each call gets valid pointers or NULL with a zero size.
    let results = unsafe {
        [
            (
                "unshare-user",
                errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
            ),
            (
                "clone3",
                errno(libc::syscall(
                    libc::SYS_clone3,
                    std::ptr::null::<u8>(),
                    0usize,
                )),
            ),
            (
                "io_uring_setup",
                errno(libc::syscall(
                    libc::SYS_io_uring_setup,
                    1,
                    params.as_mut_ptr(),
                )),
            ),
            (
                "keyctl",
                errno(libc::syscall(libc::SYS_keyctl, 9999, 0, 0, 0, 0)),
            ),
            (
                "bpf",
                errno(libc::syscall(
                    libc::SYS_bpf,
                    9999,
                    std::ptr::null::<u8>(),
                    0,
                )),
            ),
            ("getppid", errno(libc::syscall(libc::SYS_getppid))),
        ]
    };
    for (name, e) in results {
        println!("{name}: errno {e}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match args.first().map(String::as_str) {
        Some("status") => status(),
        Some("serve") => serve(&arg(1), arg(2).parse().unwrap_or(200)),
        Some("bind") => match std::net::TcpListener::bind(arg(1)) {
            Ok(_) => println!("bound {}", arg(1)),
            Err(e) => {
                println!("bind {} failed: {e}", arg(1));
                std::process::exit(1);
            }
        },
        Some("signals") => {
            let set = block_all();
            let file = arg(1);
            append(&file, "ready");
            loop {
                let sig = wait_signal(&set);
                append(&file, &sig.to_string());
                if sig == libc::SIGTERM {
                    std::process::exit(0);
                }
            }
        }
        Some("connect") => {
            let set = block_all();
            let _conn = std::net::TcpStream::connect(arg(1)).expect("connect");
            while !matches!(wait_signal(&set), libc::SIGTERM | libc::SIGINT) {}
        }
        Some("fuse-stall") => fuse_stall(&arg(1)),
        Some("ignore-term") => {
            // SAFETY: setting a disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Some("sleep") => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Some("latency") => {
            let set = block_all();
            let mut out = std::io::stdout().lock();
            loop {
                match wait_signal(&set) {
                    libc::SIGUSR1 => {
                        let _ = writeln!(out, "{}", monotonic_ns());
                        let _ = out.flush();
                    }
                    libc::SIGTERM => std::process::exit(0),
                    _ => {}
                }
            }
        }
        Some("orphans") => orphans(arg(1).parse().unwrap_or(10_000)),
        Some("argv") => append(&arg(1), &args[2..].join(" ")),
        Some("attack") => attack(&arg(1), &arg(2)),
        Some("escape") => escape(),
        _ => {
            eprintln!("usage: smartem-testsvc status|serve PORT [CODE]|bind ADDR|signals FILE|ignore-term|sleep|argv FILE ARG...");
            std::process::exit(2);
        }
    }
}
