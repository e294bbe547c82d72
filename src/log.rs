//! smartem-init's own messages: one line each, to stderr, prefixed
//! `smartem-init:`. A level set once at start-up; no allocation when a
//! message is filtered out.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one message. A failed write to stderr is ignored: there is nowhere
/// else to report it, and the service must not suffer for it.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let tag = match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info | Level::Debug => "",
    };
    let full = format!("smartem-init: {tag}{args}");
    let line = format!("{}\n", elide(&full, MAX_LINE));
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Longest message line: a value of 100 KB in an environment variable must
/// not turn the one-line error into 100 KB.
pub const MAX_LINE: usize = 1000;

/// Keeps the start and the end (where the advice is) of an over-long line.
pub fn elide(line: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if line.len() <= max {
        return line.into();
    }
    let half = max / 2 - 20;
    let mut head = half;
    while !line.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = line.len() - half;
    while !line.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} [... {} bytes elided ...] {}",
        &line[..head],
        tail - head,
        &line[tail..]
    )
    .into()
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::write($lvl, format_args!($($arg)*));
        }
    };
}
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($arg)*) }; }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($arg)*) }; }

/// Seconds with one decimal ("25.0", "0.3"), rounded to the nearest tenth:
/// what `{:.1}` of the f64 gave, without linking core's exact float
/// formatting (kilobytes the 512 KiB budget needed for the confinement).
pub fn secs(d: std::time::Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_the_float_formatting_did() {
        use std::time::Duration;
        for (d, want) in [
            (Duration::from_secs(25), "25.0"),
            (Duration::from_secs_f64(0.3), "0.3"),
            (Duration::from_millis(1960), "2.0"),
            (Duration::from_millis(100), "0.1"),
            (Duration::ZERO, "0.0"),
            (Duration::from_secs(86400), "86400.0"),
        ] {
            assert_eq!(secs(d), want, "{d:?}");
            assert_eq!(format!("{:.1}", d.as_secs_f64()), want, "{d:?}");
        }
    }

    #[test]
    fn long_lines_keep_head_and_tail() {
        let line = format!("what {} do this", "ü".repeat(5000));
        let short = elide(&line, 200);
        assert!(short.len() <= 230, "{}", short.len());
        assert!(short.starts_with("what ") && short.ends_with(" do this"));
        assert!(short.contains("bytes elided"));
        assert_eq!(elide("short", 200), "short");
    }
}
