//! The /proc reads about processes: this one's status (seccomp at start and
//! after the filter), and for healthcheck and doctor other processes' name,
//! children, liveness and status.

/// /proc/PID/comm, trimmed; empty when it can't be read.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// The children of `pid` (its main thread's), by /proc/PID/task/PID/children.
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Is `pid` alive and not a zombie?
pub fn is_live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// /proc/PID/status ("self" for this process).
pub fn status(pid: &str) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
}

/// One field of a /proc/PID/status text, trimmed ("5000\t5000\t5000\t5000"
/// for Uid): the one parser of that file, the tests' and testsvc's too.
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|v| v.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeccompState {
    /// 0 none, 1 strict, 2 filter.
    pub mode: u32,
    pub filters: u32,
}

/// `Seccomp:` and `Seccomp_filters:` of a status text (None without them:
/// a kernel without seccomp). Kernels before 5.9 show no filter count.
pub fn seccomp_of(status: &str) -> Option<SeccompState> {
    let mode = status_field(status, "Seccomp")?.parse().ok()?;
    let filters = status_field(status, "Seccomp_filters")
        .and_then(|f| f.parse().ok())
        .unwrap_or(u32::from(mode == 2));
    Some(SeccompState { mode, filters })
}
