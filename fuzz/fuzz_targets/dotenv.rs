//! .env parsing never panics; accepted keys are valid names, values have no NUL.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(vars) = smartem_init::fuzzing::parse_dotenv(text, ".env") {
        for (k, v) in vars {
            assert!(!k.is_empty() && !k.contains('=') && !v.contains('\0'));
        }
    }
});
