//! XPath extraction over XML: the first line is `for_each`, the second a field, the rest the
//! document.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::extract::xml::XmlExtractor;

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
    let Ok(x) = XmlExtractor::new([("s", "urn:s")], for_each, [field]) else {
        return;
    };
    if let Ok(package) = XmlExtractor::parse(doc) {
        let mut rows = Vec::new();
        let _ = x.extract(&package.as_document(), &mut rows);
    }
});
