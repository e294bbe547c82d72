//! `smartem-init healthcheck [URL]`: the curl-less HEALTHCHECK, role-aware.
//!
//! Settings are resolved exactly as run mode resolves them (the same
//! RunConfig and plan, `.env` included), and with the running init's own
//! arguments when PID 1 is smartem-init (`docker run IMAGE --role worker`).
//! - api (or a URL given): one plain HTTP/1.1 GET of
//!   `http://127.0.0.1:PORT/health`, PORT being the service's HTTP_API_PORT;
//!   a deadline for the whole exchange; healthy only for a 2xx status.
//! - worker, migrate, or a command: the supervised service is running (a
//!   live child of the smartem-init at PID 1 or just below it), and, when the plan's
//!   environment names RABBITMQ_PORT, the service holds an established TCP
//!   connection to that port (the worker is connected to its broker).

use crate::config::{HealthConfig, RunConfig};
use crate::inputs::procfs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// host, port, path of an `http://` URL.
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("URL {url:?} is not http://; only plain HTTP is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, tail) = h
            .split_once(']')
            .ok_or_else(|| format!("URL {url:?} has an unclosed IPv6 bracket"))?;
        (h, tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("URL {url:?} has a bad port {p:?}"))?,
    };
    Ok((host.to_string(), port, path.to_string()))
}

/// The status code of an HTTP response's first line.
pub fn status_of(head: &str) -> Option<u16> {
    let mut parts = head.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    // Exactly three digits: u16's parser would take "+204" as 204.
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

fn get(host: &str, port: u16, path: &str, timeout: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, left())
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    stream
        .set_write_timeout(Some(left()))
        .and_then(|_| {
            stream.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: smartem-init\r\nConnection: close\r\n\r\n").as_bytes(),
            )
        })
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 8192 {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(format!(
                    "no answer within {}s: {e}",
                    crate::log::secs(timeout)
                ))
            }
        }
    }
    let line = String::from_utf8_lossy(&head);
    status_of(line.lines().next().unwrap_or("")).ok_or_else(|| "the answer is not HTTP".to_string())
}

/// Inits a container runtime puts at PID 1 in front of the image's
/// entrypoint (docker/podman --init).
const RUNTIME_INITS: [&str; 5] = [
    "docker-init",
    "tini",
    "tini-static",
    "catatonit",
    "dumb-init",
];

/// The smartem-init to ask about: PID 1 when it is smartem-init, else a
/// child of a runtime's init at PID 1. Nothing wider: on a host, an orphaned
/// smartem-init adopted by PID 1 is not this container's service.
fn find_init() -> Option<i32> {
    let is_init = |pid: i32| procfs::comm(pid) == "smartem-init";
    if is_init(1) {
        return Some(1);
    }
    if !RUNTIME_INITS.contains(&procfs::comm(1).as_str()) {
        return None;
    }
    procfs::children(1).into_iter().find(|p| is_init(*p))
}

/// The running init's own argv, when it is smartem-init in run mode.
fn init_args(init: i32) -> Option<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let raw = std::fs::read(format!("/proc/{init}/cmdline")).ok()?;
    let args: Vec<std::ffi::OsString> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| std::ffi::OsStr::from_bytes(a).to_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// Socket inodes `pid` holds, or None when its fds can't be read.
fn socket_inodes(pid: i32) -> Option<Vec<u64>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        dir.flatten()
            .filter_map(|e| {
                let link = std::fs::read_link(e.path()).ok()?;
                let s = link.to_str()?;
                s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect(),
    )
}

/// Inodes of ESTABLISHED TCP sockets to remote `port`, from the text of
/// /proc/net/tcp or tcp6 (columns: sl local rem st ... inode).
pub fn established_to(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let rem_port = u16::from_str_radix(f.get(2)?.rsplit_once(':')?.1, 16).ok()?;
            (rem_port == port && *f.get(3)? == "01").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

/// Is the supervised service running (and connected to the broker)?
fn service_running(plan: &crate::plan::Plan, init: Option<i32>) -> Result<String, String> {
    let Some(init) = init else {
        return Err("no smartem-init process found (PID 1 is not smartem-init)".into());
    };
    let children: Vec<i32> = procfs::children(init)
        .into_iter()
        .filter(|c| procfs::is_live(*c))
        .collect();
    let Some(&svc) = children.first() else {
        return Err(format!(
            "smartem-init (pid {init}) has no running service: it is starting or stopping"
        ));
    };
    let broker = plan
        .env
        .iter()
        .find(|(k, _)| k == "RABBITMQ_PORT")
        .and_then(|(_, v)| v.to_str()?.parse::<u16>().ok());
    let Some(port) = broker else {
        return Ok(format!("service pid {svc} running"));
    };
    let Some(mine) = socket_inodes(svc) else {
        return Ok(format!(
            "service pid {svc} running (its connections can't be read by uid {})",
            nix::unistd::geteuid()
        ));
    };
    let mut established = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{svc}/net/{table}")).unwrap_or_default();
        established.extend(established_to(&text, port));
    }
    if mine.iter().any(|i| established.contains(i)) {
        Ok(format!(
            "service pid {svc} running, connected to RABBITMQ_PORT {port}"
        ))
    } else {
        Err(format!(
            "service pid {svc} is running but has no established connection to RABBITMQ_PORT {port}"
        ))
    }
}

/// The plan as a start would make it, bounded like a start: a probe must
/// not hang on a stalled mount either.
fn plan_for(cfg: &RunConfig) -> Result<crate::plan::Plan, String> {
    let facts = crate::world::facts().map_err(|e| format!("{e:#}"))?;
    crate::world::plan(cfg, &facts, crate::deadline::all_local(&facts.mountinfo))
        .map_err(|e| format!("{e:#}"))
}

/// Exit code: 0 healthy, 1 not (or bad URL: 64).
pub fn run(cfg: &HealthConfig) -> i32 {
    let init = find_init();
    // The init's own arguments win over this process's idea of them.
    let run_cfg = init
        .and_then(init_args)
        .and_then(|args| crate::cli::run_from(&args).ok())
        .map_or_else(|| cfg.run.clone(), Ok);
    let plan = match run_cfg.and_then(|c| plan_for(&c)) {
        Ok(p) => p,
        Err(e) => {
            crate::error!("healthcheck: the settings do not resolve: {e}");
            return 1;
        }
    };
    if cfg.url.is_none() && plan.role.as_deref() != Some("api") {
        return match service_running(&plan, init) {
            Ok(_) => 0,
            Err(e) => {
                crate::error!(
                    "healthcheck ({}): {e}",
                    plan.role.as_deref().unwrap_or("command")
                );
                1
            }
        };
    }
    let url = match &cfg.url {
        Some(u) => u.clone(),
        // The api role's plan always has its port (checked when planned).
        None => format!(
            "http://127.0.0.1:{}/health",
            plan.http_api_port
                .unwrap_or(crate::smartem::roles::DEFAULT_PORT)
        ),
    };
    let (host, port, path) = match parse_url(&url) {
        Ok(p) => p,
        Err(e) => {
            crate::error!("healthcheck: {e}");
            return 64;
        }
    };
    match get(&host, port, &path, cfg.timeout) {
        Ok(code) if (200..300).contains(&code) => 0,
        Ok(code) => {
            crate::error!("healthcheck: {url} answered {code}");
            1
        }
        Err(e) => {
            crate::error!("healthcheck: {url}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8000/health"),
            Ok(("127.0.0.1".into(), 8000, "/health".into()))
        );
        assert_eq!(
            parse_url("http://localhost"),
            Ok(("localhost".into(), 80, "/".into()))
        );
        assert_eq!(
            parse_url("http://[::1]:81/x?y"),
            Ok(("::1".into(), 81, "/x?y".into()))
        );
        for bad in [
            "https://x/",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "ftp://h",
            "http://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn established_connections_to_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:8CA0 0100007F:DD90 01 00000000:00000000 00:00000000 00000000  5000        0 4242 1 0
   1: 0100007F:8CA1 0100007F:DD90 06 00000000:00000000 00:00000000 00000000  5000        0 4343 1 0
   2: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  5000        0 4444 1 0
   3: 0100007F:8CA2 0100007F:1628 01 00000000:00000000 00:00000000 00000000  5000        0 4545 1 0";
        // 0xDD90 = 56720: only the established one (01), not TIME_WAIT (06).
        assert_eq!(established_to(table, 56720), vec![4242]);
        assert_eq!(established_to(table, 5672), vec![4545]);
        assert_eq!(established_to(table, 8000), Vec::<u64>::new());
        assert_eq!(established_to("", 5672), Vec::<u64>::new());
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_of("HTTP/1.0 503 Service Unavailable\r"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of("HTTP/1.1 +204 No Content"), None);
        assert_eq!(status_of("HTTP/1.1 2000 X"), None);
        assert_eq!(status_of("HTTP/1.1 20 X"), None);
        assert_eq!(status_of(""), None);
    }
}
