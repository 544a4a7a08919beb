//! The recipes of `recipes/` on real output of their runtimes (issue 24: a user adapted the
//! multi-line Java example to Python and counted KeyError 31 times where the truth was 15).
//! Each runtime has a program under `tests/fixtures/recipes/<runtime>/` that logs (or crashes
//! with) a known mix of exceptions and says how many of each it made; its real output and
//! those counts are committed there. For every recipe: it passes `check` as shipped (its
//! examples run), and `one-shot` on the committed output counts exactly what the program
//! said, series for series; where the runtime is installed, the same holds for a fresh run
//! (python3 and node are required in CI, which installs them; Java and Go are not).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A runtime with a recipe: the recipe's file stem and fixture directory, its metrics' prefix,
/// the command that must be installed to generate fresh output, and whether CI must have it.
struct Runtime {
    name: &'static str,
    prefix: &'static str,
    command: &'static str,
    required_in_ci: bool,
}

const PYTHON: Runtime = Runtime {
    name: "python",
    prefix: "python_",
    command: "python3",
    required_in_ci: true,
};
const JAVA: Runtime = Runtime {
    name: "java",
    prefix: "java_",
    command: "java",
    required_in_ci: false,
};
const GO: Runtime = Runtime {
    name: "go",
    prefix: "go_",
    command: "go",
    required_in_ci: false,
};
const NODE: Runtime = Runtime {
    name: "node",
    prefix: "node_",
    command: "node",
    required_in_ci: true,
};
const RUNTIMES: [&Runtime; 4] = [&PYTHON, &JAVA, &GO, &NODE];

/// The paths every recipe ships with; the tests point them at a log.
const RECIPE_PATHS: &str = "paths: [/var/log/app/*.log]";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn recipe_file(rt: &Runtime) -> PathBuf {
    repo().join("recipes").join(format!("{}.yaml", rt.name))
}

fn fixture_dir(rt: &Runtime) -> PathBuf {
    repo().join("tests/fixtures/recipes").join(rt.name)
}

/// `series count` lines, as the programs print them.
fn read_truth(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (series, count) = l.rsplit_once(' ').expect("`series count`");
            (series.to_owned(), count.parse().expect("a count"))
        })
        .collect()
}

/// Runs `quarry_exporter <command> --config.file=<config>`; its stdout, or a panic with its
/// stderr.
fn run(command: &str, config: &Path) -> String {
    let out = Command::new(binary())
        .arg(command)
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quarry_exporter {command} --config.file={}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The recipe, as shipped, with its paths pointed at `log`.
fn recipe_for(rt: &Runtime, recipe: &str, log: &Path) -> String {
    assert_eq!(
        recipe.matches(RECIPE_PATHS).count(),
        1,
        "recipes/{}.yaml must have `{RECIPE_PATHS}` once",
        rt.name
    );
    recipe.replace(RECIPE_PATHS, &format!("paths: [{:?}]", path_str(log)))
}

/// `one-shot` of `recipe` on `log`: the non-zero samples of the recipe's metrics.
fn counted(rt: &Runtime, recipe: &str, log: &Path) -> BTreeMap<String, f64> {
    let dir = tempdir();
    let config = dir.path().join("exporter.yaml");
    std::fs::write(&config, recipe_for(rt, recipe, log)).unwrap();
    run("one-shot", &config)
        .lines()
        .filter(|l| l.starts_with(rt.prefix))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse::<f64>().ok()?))
        })
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// The recipe counts on the output in `dir` (`app.log`) what the program said
/// (`truth.txt`).
fn assert_recipe_counts(rt: &Runtime, recipe: &str, dir: &Path, what: &str) {
    let truth = read_truth(&dir.join("truth.txt"));
    assert!(!truth.is_empty(), "{what}: no truth in {}", dir.display());
    let got = counted(rt, recipe, &dir.join("app.log"));
    assert_eq!(
        got,
        truth,
        "recipes/{}.yaml on {what} ({}): counted (left) is not what the program logged (right)",
        rt.name,
        dir.join("app.log").display()
    );
}

fn committed(rt: &Runtime) {
    let recipe = std::fs::read_to_string(recipe_file(rt)).unwrap();
    run("check", &recipe_file(rt));
    assert_recipe_counts(rt, &recipe, &fixture_dir(rt), "the committed real output");
}

fn installed(command: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {command}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs the fixture's `generate` into a fresh directory and checks the recipe on it.
fn fresh(rt: &Runtime) {
    if !installed(rt.command) {
        assert!(
            !(rt.required_in_ci && std::env::var_os("CI").is_some()),
            "{} is required in CI (scripts/test installs it)",
            rt.command
        );
        eprintln!(
            "{} not installed: recipes/{}.yaml checked on the committed output only",
            rt.command, rt.name
        );
        return;
    }
    let dir = tempdir();
    let out = Command::new(fixture_dir(rt).join("generate"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}/generate: {}",
        fixture_dir(rt).display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let recipe = std::fs::read_to_string(recipe_file(rt)).unwrap();
    assert_recipe_counts(rt, &recipe, dir.path(), "a fresh run");
}

#[test]
fn recipe_python_counts_committed_output() {
    committed(&PYTHON);
}

#[test]
fn recipe_python_counts_a_fresh_run() {
    fresh(&PYTHON);
}

#[test]
fn recipe_java_counts_committed_output() {
    committed(&JAVA);
}

#[test]
fn recipe_java_counts_a_fresh_run() {
    fresh(&JAVA);
}

#[test]
fn recipe_go_counts_committed_output() {
    committed(&GO);
}

#[test]
fn recipe_go_counts_a_fresh_run() {
    fresh(&GO);
}

#[test]
fn recipe_node_counts_committed_output() {
    committed(&NODE);
}

#[test]
fn recipe_node_counts_a_fresh_run() {
    fresh(&NODE);
}

/// Every file in `recipes/` is one of the tested runtimes, and each has its fixture: a recipe
/// added without a test fails here.
#[test]
fn every_recipe_is_tested() {
    let mut shipped: Vec<String> = std::fs::read_dir(repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    shipped.sort();
    let mut tested: Vec<String> = RUNTIMES
        .iter()
        .map(|rt| format!("{}.yaml", rt.name))
        .collect();
    tested.sort();
    assert_eq!(shipped, tested, "recipes/ and the runtimes tested here");
    for rt in RUNTIMES {
        for file in ["app.log", "truth.txt", "version.txt", "generate"] {
            assert!(
                fixture_dir(rt).join(file).exists(),
                "{}/{file} missing",
                fixture_dir(rt).display()
            );
        }
    }
}
