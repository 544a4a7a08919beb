//! The self-metric names the project shows people agree with the names the code exports
//! (`selfmetrics::DECLARED`, the one list every `quarry_*` family is declared in): README's
//! self-metric table lists exactly those, with their labels, and every `quarry_*` name a
//! dashboard, an alert, a deployment example, the dashboard generator or the documentation
//! uses is one of them. A renamed metric cannot leave a panel or an alert querying nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use quarry_exporter::selfmetrics::{Declaration, DECLARED};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every series name a declaration gives: the family name, and for histograms and summaries
/// the `_bucket` (histograms), `_sum` and `_count` samples too.
fn exported_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for d in DECLARED {
        names.insert(d.name.to_owned());
        let suffixes: &[&str] = match d.kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        for suffix in suffixes {
            names.insert(format!("{}{suffix}", d.name));
        }
    }
    names
}

/// The `quarry_…` words of `text`, but the program's own name, each with its line number.
/// A word ending in `_` is a prefix (`quarry_file_*` in prose).
fn quarry_words(text: &str) -> Vec<(usize, String)> {
    let mut words = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("quarry_") {
            let preceded_by_word = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let word = &tail[..end];
            if !preceded_by_word && word != "quarry_exporter" {
                words.push((number + 1, word.to_owned()));
            }
            rest = &tail[end..];
        }
    }
    words
}

/// Files under `dir` (recursively), in name order.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The files whose `quarry_*` names must be exported ones.
fn files_that_use_names() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![
        root.join("README.md"),
        root.join("CONFIG.md"),
        root.join("MIGRATING.md"),
        root.join("ARCHITECTURE.md"),
        root.join("prometheus/alerts.yml"),
        root.join("prometheus/alerts_test.yml"),
        root.join("src/dashboard.rs"),
    ];
    for dir in ["dashboards", "deploy", "docs", "src/board"] {
        files.extend(files_under(&root.join(dir)));
    }
    files
}

/// The names in `words` that are not exported (a prefix must start one that is).
fn unknown_names(words: &[(usize, String)], exported: &BTreeSet<String>) -> Vec<String> {
    words
        .iter()
        .filter(|(_, word)| {
            if word.ends_with('_') {
                !exported.iter().any(|name| name.starts_with(word.as_str()))
            } else {
                !exported.contains(word)
            }
        })
        .map(|(line, word)| format!("line {line}: {word}"))
        .collect()
}

/// README's self-metric table: per name, the label names of its row.
fn readme_table() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Self-metrics\n")
        .nth(1)
        .expect("README has a `## Self-metrics` section");
    let mut rows = BTreeMap::new();
    for line in section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let labels: BTreeSet<String> = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        for (_, name) in quarry_words(cells[1]) {
            assert!(
                rows.insert(name.clone(), labels.clone()).is_none(),
                "{name} has two rows in README's table"
            );
        }
    }
    assert!(!rows.is_empty(), "README's self-metric table has no rows");
    rows
}

#[test]
fn readme_table_lists_exactly_the_exported_self_metrics_with_their_labels() {
    let table = readme_table();
    let declared: BTreeMap<String, &Declaration> =
        DECLARED.iter().map(|d| (d.name.to_owned(), d)).collect();
    let missing: Vec<&String> = declared
        .keys()
        .filter(|n| !table.contains_key(*n))
        .collect();
    let unknown: Vec<&String> = table
        .keys()
        .filter(|n| !declared.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "exported but not in README's table: {missing:?}\nin README's table but not exported: {unknown:?}"
    );
    for (name, labels) in &table {
        let code: BTreeSet<String> = declared[name]
            .labels
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(labels, &code, "labels of {name}: README's table, the code");
    }
}

#[test]
fn dashboards_alerts_deployments_and_docs_use_only_exported_names() {
    let exported = exported_names();
    let mut problems = Vec::new();
    let mut names_seen = 0;
    for path in files_that_use_names() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not text
        };
        let words = quarry_words(&text);
        names_seen += words.len();
        for problem in unknown_names(&words, &exported) {
            problems.push(format!(
                "{}: {problem}",
                path.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(
        names_seen > 100,
        "only {names_seen} quarry_ names found: are the files still where this test looks?"
    );
    assert!(
        problems.is_empty(),
        "quarry_ names the code does not export:\n{}",
        problems.join("\n")
    );
}

/// The checker itself: the program's name is not a metric, prefixes count when they start a
/// name, and a histogram's samples are known by their suffixes.
#[test]
fn name_checker_tells_exported_names_from_others() {
    let exported: BTreeSet<String> = ["quarry_a_total", "quarry_h_bucket"]
        .map(String::from)
        .into();
    let words = quarry_words(
        "quarry_exporter x_quarry_z rate(quarry_a_total[5m]) quarry_a_* quarry_b_total quarry_h_bucket quarry_c_",
    );
    assert_eq!(
        words.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>(),
        [
            "quarry_a_total",
            "quarry_a_",
            "quarry_b_total",
            "quarry_h_bucket",
            "quarry_c_"
        ]
    );
    assert_eq!(
        unknown_names(&words, &exported),
        ["line 1: quarry_b_total", "line 1: quarry_c_"]
    );
    assert!(exported_names().iter().all(|n| n.starts_with("quarry_")));
}
