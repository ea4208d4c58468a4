//! rvs-config's keepalived.conf reader over arbitrary text: a `file:line` error or
//! services, never a panic; every service has its origin, and the services serialise as
//! the `[[services]]` TOML they stand for. Inputs that include files are skipped (they
//! would read the fuzzing host's files).
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rvs_config::keepalived::load_str;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if text.contains("include") {
        return;
    }
    match load_str(Path::new("fuzz.conf"), &text, "lb1") {
        Ok(l) => {
            assert_eq!(l.services.len(), l.origins.len());
            let cfg = rvs_config::Config {
                services: l.services,
                ..Default::default()
            };
            toml::to_string(&cfg).expect("services serialise as TOML");
        }
        Err(e) => {
            assert_eq!(e.file, Path::new("fuzz.conf"));
            assert!(e.line >= 1, "a syntax error names its line: {e}");
        }
    }
});
