//! passwd/group parsing never panics, and what it accepts has sane ids.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smartem_init::fuzzing::{parse_group, parse_passwd, MAX_ID};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(entries) = parse_passwd(text, "passwd") {
        for e in entries {
            assert!(e.uid <= MAX_ID && e.gid <= MAX_ID && !e.name.is_empty());
        }
    }
    if let Ok(entries) = parse_group(text, "group") {
        for e in entries {
            assert!(e.gid <= MAX_ID && !e.name.is_empty());
        }
    }
});
