//! The layers of ARCHITECTURE.md's code map, held: a module uses only modules of a lower
//! layer, so no two of them import each other. Read from the source text (`crate::name` paths,
//! `use crate::{a, b}` groups), comments left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layered modules, top first. A module may use those of the layers after its own, and
/// any module not listed here (they sit below all of these).
const LAYERS: &[&[&str]] = &[&["app"], &["server"], &["landing"], &["probe", "webconfig"]];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `src/<module>.rs` and the files under `src/<module>/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join(format!("{module}.rs"))];
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.retain(|f| f.exists());
    files
}

/// The top-level crate modules `code` names.
fn modules_used(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap();
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                used.extend(top_level_items(group).map(|p| first_segment(p.trim())));
            } else {
                used.insert(first_segment(rest));
            }
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

/// The items of a `{a, b::{c, d}, e}` group (its text after the `{`), nested groups kept whole.
fn top_level_items(group: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.into_iter()
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn layered_modules_use_only_lower_layers() {
    let mut upward = Vec::new();
    for (layer, modules) in LAYERS.iter().enumerate() {
        for module in *modules {
            let files = files_of(module);
            assert!(!files.is_empty(), "no source for {module}");
            for file in files {
                let code = std::fs::read_to_string(&file).unwrap();
                for used in modules_used(&code) {
                    if used != *module && layer_of(&used).is_some_and(|l| l <= layer) {
                        upward.push(format!("{}: {module} uses {used}", file.display()));
                    }
                }
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn module_paths_are_read_from_uses_and_groups_not_comments() {
    let code = "use crate::server::WebState;\nuse crate::{app, probe::{Probes, landing}};\n\
                let x = crate::webconfig::load(); // crate::landing\n";
    assert_eq!(
        modules_used(code),
        ["app", "probe", "server", "webconfig"]
            .map(String::from)
            .into()
    );
}
