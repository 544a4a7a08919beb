//! A rule's regex on a line: the first line of the input is the pattern, the rest are log
//! lines. The matcher (fast path or not) must agree with the regex crate, capture for capture
//! (for a pattern with groups; one without is only asked whether it matches). Lines may hold
//! several lines' worth: a record of a multi-line source is matched whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::matcher::Matcher;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((pattern, lines)) = text.split_once('\n') else {
        return;
    };
    // As written, and inside a group: a pattern without groups is only asked whether it
    // matches (often by the regex crate's DFA), so the group makes the fast path find spans.
    check(pattern, lines);
    check(&format!("({pattern})"), lines);
});

fn check(pattern: &str, lines: &str) {
    let Ok(mut matcher) = Matcher::new(pattern) else {
        return;
    };
    let regex = regex::Regex::new(pattern).expect("the matcher compiled it");
    for line in lines.split('\n') {
        let ours = matcher.matches(line, line.is_ascii());
        let theirs = regex.captures(line);
        assert_eq!(ours, theirs.is_some(), "pattern {pattern:?} line {line:?}");
        // A pattern without groups is only asked whether it matches (group 0 is no field).
        if let (Some(caps), true) = (theirs, regex.captures_len() > 1) {
            for i in 0..caps.len() {
                let want = caps.get(i).map(|m| (m.start(), m.end()));
                assert_eq!(
                    matcher.group(i),
                    want,
                    "group {i} of {pattern:?} on {line:?}"
                );
            }
        }
    }
}
