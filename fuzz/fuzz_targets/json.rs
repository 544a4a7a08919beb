//! JSONPath extraction: the first line is a `for_each` query, the second a field, the rest the
//! document. Bad queries and documents are errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::extract::json::JsonExtractor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (Some(for_each), Some(field), Some(doc)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let for_each = (!for_each.is_empty()).then_some(for_each);
    let Ok(x) = JsonExtractor::new(for_each, [field, "@key"]) else {
        return;
    };
    if let Ok(value) = JsonExtractor::parse(doc) {
        let mut rows = Vec::new();
        x.extract(&value, &mut rows);
    }
});
