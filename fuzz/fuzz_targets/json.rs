//! JSONPath extraction: the first line is a `for_each` query, the second a field, the rest the
//! document. Bad queries and documents are errors, never panics. When the field is a member
//! path, the one-pass record reader must give the same text as JSONPath on the document
//! whenever it accepts the document.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::extract::json::JsonExtractor;
use quarry_exporter::extract::json_record::{member_path, value_text, PathTrie};

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
    let Some(path) = member_path(field) else {
        return;
    };
    let mut trie = PathTrie::default();
    let slot = trie.insert(&path);
    let mut spans = Vec::new();
    if trie.read(doc, &mut spans) {
        let fast = spans[slot].and_then(|(a, b)| value_text(&doc[a..b]));
        let slow = JsonExtractor::new(None, [field]).expect("a member path is a query");
        let value = JsonExtractor::parse(doc).expect("what the one-pass reader accepts parses");
        let mut rows = Vec::new();
        slow.extract(&value, &mut rows);
        assert_eq!(fast, rows[0][0], "field {field:?} of {doc:?}");
    }
});
