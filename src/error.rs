//! Exit codes of smartem-init's own failures (sysexits, plus the shell's 126
//! and 127) and the one error type that carries them. Every failure is a
//! `Fail` somewhere in an anyhow chain; `exit_code` finds it in one place.

use std::fmt;

/// Why smartem-init itself stopped. The numbers are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Bad option or environment value, unknown role.
    Usage = 64,
    /// User or group not found.
    NoUser = 67,
    /// Internal fault: should not happen, reported rather than panicking.
    Software = 70,
    /// A system call failed.
    OsErr = 71,
    /// Privilege drop impossible, refused, or not verified.
    NoPerm = 77,
    /// Configuration problem: data dir, workdir, .env, passwd/group.
    Config = 78,
    /// The command exists but cannot be executed.
    CantExec = 126,
    /// The command was not found.
    NotFound = 127,
}

/// A failure with its exit code and the one line shown to the operator.
#[derive(Debug)]
pub struct Fail {
    pub code: Code,
    pub msg: String,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Fail {}

/// Start-up interrupted by SIGTERM/SIGINT: exit 128+N.
#[derive(Debug)]
pub struct Terminated {
    pub signal: i32,
    pub msg: String,
}

impl fmt::Display for Terminated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Terminated {}

/// Builds the error for `code` with a message; use with `Err(fail(..))?` or `bail`.
pub fn fail(code: Code, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fail {
        code,
        msg: msg.into(),
    })
}

/// A failed system call: names the call and its arguments, keeps errno's text.
pub fn os_fail(what: impl fmt::Display, err: impl fmt::Display) -> anyhow::Error {
    fail(Code::OsErr, format!("{what} failed: {err}"))
}

/// The code of an error: the innermost `Fail`'s, else Software.
pub fn code(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|e| e.downcast_ref::<Fail>())
        .map_or(Code::Software, |f| f.code)
}

/// The process status for an error: its code as a number (70 if none), or
/// 128+N when start-up was ended by signal N.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(t) = err.chain().find_map(|e| e.downcast_ref::<Terminated>()) {
        return 128 + t.signal;
    }
    code(err) as i32
}

/// Shorthand used by every module.
pub type Result<T> = anyhow::Result<T>;

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn code_is_found_through_context() {
        let e: anyhow::Result<()> = Err(fail(Code::NoUser, "user 'x' not found"));
        let e = e.context("resolving --user").unwrap_err();
        assert_eq!(exit_code(&e), 67);
        assert_eq!(format!("{e:#}"), "resolving --user: user 'x' not found");
    }

    #[test]
    fn foreign_errors_are_internal() {
        let e = anyhow::anyhow!("boom");
        assert_eq!(exit_code(&e), 70);
    }
}
