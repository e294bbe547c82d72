//! `smartem-init healthcheck [URL]`: the curl-less HEALTHCHECK. One plain
//! HTTP/1.1 GET over TCP, a deadline for the whole exchange, exit 0 only
//! for a 2xx status.

use crate::cli::HealthConfig;
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
    parts.next()?.parse().ok()
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
                    "no answer within {:.1}s: {e}",
                    timeout.as_secs_f64()
                ))
            }
        }
    }
    let line = String::from_utf8_lossy(&head);
    status_of(line.lines().next().unwrap_or("")).ok_or_else(|| "the answer is not HTTP".to_string())
}

/// Exit code: 0 healthy, 1 not (or bad URL: 64).
pub fn run(cfg: &HealthConfig) -> i32 {
    let url = cfg.url.clone().unwrap_or_else(|| {
        let port = std::env::var("HTTP_API_PORT")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "8000".into());
        format!("http://127.0.0.1:{port}/health")
    });
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
    fn status_lines() {
        assert_eq!(status_of("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_of("HTTP/1.0 503 Service Unavailable\r"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of(""), None);
    }
}
