//! keepalived.conf parser on arbitrary text: never panics, and a configuration that loads converts to a batch
//! (or a located error) without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rvs_keepalived::parse_str(text) {
        Ok(l) => {
            let _ = l.config.static_batch();
            for w in &l.warnings {
                let _ = w.to_string();
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.loc());
        }
    }
});
