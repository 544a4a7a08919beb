//! A property of the exposition: label values of any characters and any length under the cap
//! come out as text that `promtool check metrics` accepts and that parses back to the same
//! values. Values are generated (seeded, so a failure repeats), carried by a JSON status
//! document through the real binary.

use crate::common::*;

/// xorshift64*: enough randomness for test data, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_value(rng: &mut Rng, max_bytes: usize) -> String {
    const SPECIAL: &[char] = &[
        '\n', '\r', '\t', '\\', '"', '\'', '\u{0}', '\u{1}', '\u{7f}', '\u{85}', 'é', '€', '😀',
        '\u{2028}', '\u{fffd}', '\u{feff}', '{', '}', '=', ',', ' ',
    ];
    let len = rng.below(40) as usize;
    let mut s = String::new();
    for _ in 0..len {
        let c = match rng.below(4) {
            0 => SPECIAL[rng.below(SPECIAL.len() as u64) as usize],
            1 => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('x'),
            _ => (b' ' + rng.below(95) as u8) as char,
        };
        if s.len() + c.len_utf8() > max_bytes {
            break;
        }
        s.push(c);
    }
    s
}

/// Parses one sample line of the text format back into (label values by name, value).
fn parse_sample(line: &str) -> (Vec<(String, String)>, String) {
    let open = line.find('{').expect("labels");
    let mut labels = Vec::new();
    let mut chars = line[open + 1..].chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "in {line:?}");
        let mut value = String::new();
        loop {
            match chars.next().expect("closing quote") {
                '\\' => match chars.next().expect("escaped character") {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    c => panic!("unknown escape \\{c} in {line:?}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name, value));
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("unexpected {other:?} in {line:?}"),
        }
    }
    let rest: String = chars.collect();
    (labels, rest.trim().to_owned())
}

#[test]
fn any_label_value_survives_the_exposition_and_promtool() {
    let dir = tempdir();
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let cap = 64;
    let mut values: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while values.len() < 2000 {
        let v = random_value(&mut rng, cap);
        if seen.insert(v.clone()) {
            values.push(v);
        }
    }
    let doc: Vec<serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({"k": v, "other": format!("{}", i % 7), "n": i}))
        .collect();
    std::fs::write(
        dir.path().join("values.json"),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        format!(
            r#"version: 1
metrics:
  - {{name: v, type: gauge, help: "Values.", labels: [k, other], max_label_value_length: {cap}, max_series: 100000}}
sources:
  - name: values
    status_file: {{path: values.json}}
    rules:
      - json: {{for_each: "$[*]", fields: {{k: "@.k", other: "@.other", n: "@.n"}}}}
        update: [{{metric: v, labels: {{k: $k, other: $other}}, set: $n}}]
"#
        ),
    )
    .unwrap();
    let out = one_shot(&dir.path().join("exporter.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("the exposition is UTF-8");
    assert_promtool_accepts(&text);
    let mut back = std::collections::HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("v{")) {
        let (labels, value) = parse_sample(line);
        let names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["k", "other"], "{line:?}");
        back.insert(labels[0].1.clone(), value);
    }
    assert_eq!(back.len(), values.len());
    for (i, v) in values.iter().enumerate() {
        assert_eq!(back.get(v), Some(&i.to_string()), "value {v:?}");
    }
}
