//! The JSON Schema of `exporter.yaml` (`quarry_exporter schema`, checked in as
//! `exporter.schema.json`): generated from the config types, so it cannot drift; every config
//! in the repository passes it, and the bad configs whose errors are structural fail it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::binary;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> serde_json::Value {
    let out = Command::new(binary()).arg("schema").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A YAML config as the JSON the schema reads (merge keys applied, as the loader does).
fn as_json(text: &str) -> serde_json::Value {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

/// Every exporter config in the repository: the shipped one, the deploy examples (the
/// Kubernetes one inside its ConfigMap), the recipes, the golden cases.
fn repo_configs() -> Vec<(String, String)> {
    let mut out = vec![
        ("exporter.yaml".into(), read(&root().join("exporter.yaml"))),
        (
            "deploy/compose/exporter.yaml".into(),
            read(&root().join("deploy/compose/exporter.yaml")),
        ),
    ];
    let cm: serde_yaml::Value =
        serde_yaml::from_str(&read(&root().join("deploy/kubernetes/configmap.yaml"))).unwrap();
    out.push((
        "deploy/kubernetes/configmap.yaml".into(),
        cm["data"]["exporter.yaml"].as_str().unwrap().to_owned(),
    ));
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let mut golden: Vec<PathBuf> = std::fs::read_dir(root().join("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path().join("exporter.yaml"))
        .filter(|p| p.exists())
        .collect();
    let mut sockets: Vec<PathBuf> = std::fs::read_dir(root().join("examples/socket"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    golden.sort();
    sockets.sort();
    cases.extend(golden);
    cases.extend(sockets);
    for case in cases {
        let name = case.strip_prefix(root()).unwrap().display().to_string();
        out.push((name, read(&case)));
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let file = root().join("exporter.schema.json");
    let generated = generated();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: serde_json::Value = serde_json::from_str(&read(&file)).unwrap();
    assert!(
        committed == generated,
        "exporter.schema.json is stale: regenerate with `quarry_exporter schema > exporter.schema.json`"
    );
    // The shipped configs point editors at it.
    assert!(read(&root().join("exporter.yaml"))
        .starts_with("# yaml-language-server: $schema=./exporter.schema.json\n"));
}

#[test]
fn every_config_in_the_repository_passes_the_schema() {
    let validator = jsonschema::draft7::new(&generated()).unwrap();
    let configs = repo_configs();
    assert!(configs.len() > 10, "only {} configs", configs.len());
    let mut failures = Vec::new();
    for (name, text) in configs {
        for error in validator.iter_errors(&as_json(&text)) {
            failures.push(format!("{name}: {} at {}", error, error.instance_path()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The bad configs whose errors are structural (unknown keys, wrong types, bad enums and
/// durations, an unsupported version) fail the schema, each entry where `check` says.
#[test]
fn structurally_bad_configs_fail_the_schema_where_check_says() {
    let validator = jsonschema::draft7::new(&generated()).unwrap();
    let dir = root().join("tests/config_errors");
    for (case, places) in [
        (
            "unknown_field.yaml",
            &[
                "/sources/0/file",
                "/sources/1/file/paths",
                "/sources/2/file/start_at",
                "/sources/3/file/rotate_wait",
            ][..],
        ),
        ("wrong_version.yaml", &["", "/version"][..]),
        (
            "every_phase_at_once.yaml",
            &[
                "/metrics/0/max_series",
                "/metrics/1",
                "/sources/0/file",
                "/sources/1/http/timeout",
            ][..],
        ),
    ] {
        let instance = as_json(&read(&dir.join(case)));
        let found: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.instance_path().to_string())
            .collect();
        // An error inside an optional object (`file:`, `http:`) is reported at that object.
        for place in places {
            assert!(
                found
                    .iter()
                    .any(|f| f == place || (!f.is_empty() && place.starts_with(&format!("{f}/")))),
                "{case}: no schema error at or above {place:?}; errors at {found:?}"
            );
        }
    }
}
