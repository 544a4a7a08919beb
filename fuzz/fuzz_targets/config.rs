//! The config loader and validator on arbitrary text: errors are fine, a panic or a stack
//! overflow is not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = quarry_exporter::config::load_str(text, "fuzz.yaml") {
            // Every error renders, with a position.
            let shown = errors.to_string();
            assert!(shown.starts_with("fuzz.yaml:"), "{shown}");
        }
    }
});
