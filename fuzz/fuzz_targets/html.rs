//! CSS selector extraction over HTML: the first line is `for_each`, the second a field, the
//! rest the page.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::extract::html::HtmlExtractor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (Some(for_each), Some(field), Some(page)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let for_each = (!for_each.is_empty()).then_some(for_each);
    let Ok(x) = HtmlExtractor::new(for_each, [field]) else {
        return;
    };
    if let Ok(html) = HtmlExtractor::parse(page) {
        let mut rows = Vec::new();
        x.extract(&html, &mut rows);
    }
});
