//! A source's rules asked through its candidates (the gate of literals, the pattern set): the
//! first line of the input is one or more patterns separated by tabs, the rest are log lines.
//! Eight fixed rules with literals of their own stand beside them, so that the gate is built
//! and the fuzzed patterns' literals share it (and overlap the fixed ones). Each rule asked
//! through the candidates must match exactly the lines the regex crate matches, capture for
//! capture: a rule refused by a hidden literal would show here as a match lost.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::matcher::set::{rule_matches, Candidates};
use quarry_exporter::matcher::Matcher;

/// Rules with literals, shaped as real log rules, that overlap one another and common text.
const FIXED: &[&str] = &[
    r"level=error ",
    r"error (?P<code>\d+)",
    r#""(?P<method>GET|POST) \S+ HTTP/1\.[01]" (?P<status>\d{3})"#,
    r"sshd\[\d+\]: (?P<result>Accepted|Failed) ",
    r" duration=(?P<seconds>\d+\.\d+)",
    r"(?P<exception>[A-Z][a-z]+(?:Exception|Error))",
    r"kernel: .*Out of memory",
    r"\[worker-(?P<worker>\d+)\] ",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((patterns, lines)) = text.split_once('\n') else {
        return;
    };
    let mut all: Vec<&str> = FIXED.to_vec();
    all.extend(patterns.split('\t').take(24));
    let mut matchers = Vec::new();
    let mut regexes = Vec::new();
    for pattern in all {
        let (Ok(m), Ok(r)) = (Matcher::new(pattern), regex::Regex::new(pattern)) else {
            continue;
        };
        matchers.push(m);
        regexes.push(r);
    }
    let Some(mut candidates) = Candidates::build(matchers.iter().enumerate(), matchers.len())
    else {
        panic!("eight rules with literals make a gate");
    };
    for line in lines.split('\n') {
        candidates.scan(line);
        for (i, (matcher, regex)) in matchers.iter_mut().zip(&regexes).enumerate() {
            let ours = rule_matches(Some(&candidates), i, matcher, line, line.is_ascii());
            let theirs = regex.captures(line);
            assert_eq!(ours, theirs.is_some(), "pattern {:?} line {line:?}", regex.as_str());
            if let (Some(caps), true) = (theirs, regex.captures_len() > 1) {
                for g in 0..caps.len() {
                    let want = caps.get(g).map(|m| (m.start(), m.end()));
                    assert_eq!(matcher.group(g), want, "group {g} of {:?} on {line:?}", regex.as_str());
                }
            }
        }
    }
});
