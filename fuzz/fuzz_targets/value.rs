//! Value conversion of arbitrary text, every way: a number or "not convertible", never a panic;
//! NaN never comes out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::config::Conversion;
use quarry_exporter::value::convert;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for how in [
        Conversion::Number,
        Conversion::Bytes,
        Conversion::Duration,
        Conversion::Percent,
        Conversion::Bool,
        Conversion::Timestamp,
    ] {
        if let Ok(v) = convert(text, how) {
            assert!(!v.is_nan(), "{text:?} as {how:?} gave NaN");
        }
    }
});
