//! What the current start-up step is touching ("reading /etc/passwd"),
//! recorded before each look through the inputs (`Fs`, the config files,
//! the carve, the data-dir check), in the caller's words, so that a stall
//! or an interruption is reported with the path it was waiting on. The
//! bounded steps themselves are in src/deadline.rs.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// The running step's record, shared with the thread that waits for it.
pub type Record = Arc<Mutex<String>>;

thread_local! {
    /// Where `doing` writes on this thread: the running step's record.
    static DOING: RefCell<Option<Record>> = const { RefCell::new(None) };
}

/// Records what the current step is about to touch ("reading /etc/passwd").
/// Outside a step it goes nowhere.
pub fn doing(what: impl Into<String>) {
    DOING.with(|d| {
        if let Some(rec) = &*d.borrow() {
            if let Ok(mut r) = rec.lock() {
                *r = what.into();
            }
        }
    });
}

/// The record, cut at 300 characters (a path can be long).
pub fn read(rec: &Record) -> String {
    rec.lock()
        .map(|d| d.clone())
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// Runs `f` with `doing` writing to `rec` on this thread.
pub fn recording<T>(rec: Record, f: impl FnOnce() -> T) -> T {
    DOING.with(|d| *d.borrow_mut() = Some(rec));
    let out = f();
    DOING.with(|d| *d.borrow_mut() = None);
    out
}
