//! USER[:GROUP] resolution never panics and never yields root for a spec
//! that doesn't name root (0 or "root") on the user side.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smartem_init::fuzzing::{parse_group, parse_passwd, EtcDb};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else { return };
    let db = EtcDb {
        passwd: parse_passwd("root:x:0:0:root:/root:/sbin/nologin\nsvc:x:5000:5000::/:/sbin/nologin\n", "p").unwrap(),
        group: parse_group("root:x:0:\nsvc:x:5000:svc\n", "g").unwrap(),
        ..Default::default()
    };
    // Not root: gosu's ":GROUP" is the current user, so it must not be 0.
    if let Ok(t) = smartem_init::fuzzing::resolve(spec, &db, 4242) {
        let user = spec.split(':').next().unwrap_or("");
        if t.ids.uid == 0 {
            assert!(user == "root" || user.bytes().all(|b| b == b'0'), "{spec:?} resolved to uid 0");
        }
    }
});
