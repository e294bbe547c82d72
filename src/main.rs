//! The binary: block signals before anything else can run, then hand over
//! to the library and return its exit code.
//!
//! `no_main`: Rust's runtime start-up would set SIGPIPE to ignored before
//! main, and the service would inherit that. With our own C `main` the
//! dispositions smartem-init was started with are exactly what it passes on.
#![no_main]

use std::ffi::{CStr, OsString};
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStringExt;

#[cfg(not(feature = "bench-no-arena"))]
#[global_allocator]
static ALLOC: smartem_init::Arena = smartem_init::Arena::new();

#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // First: from here on no signal is lost or acted on by default.
    let inherited = smartem_init::block_all();
    let args = (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the C runtime passes argc valid NUL-terminated strings in argv.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect();
    let code = smartem_init::entry(args, inherited);
    // Without Rust's runtime nobody flushes stdout at exit.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    code
}
