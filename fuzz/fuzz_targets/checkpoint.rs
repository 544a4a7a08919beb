//! The checkpoint decoder on arbitrary bytes: an error for anything that is not a checkpoint
//! this exporter wrote, never a panic or an unbounded allocation; what decodes re-encodes to
//! the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::checkpoint::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = decode(data) {
        assert_eq!(encode(&snapshot), data);
    }
});
