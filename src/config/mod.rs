//! `exporter.yaml`: its model, loading with exact error positions, and validation.
//!
//! Loading happens in two phases, as in ripgrep's flags: `load` parses and validates the text
//! into a [`Config`] (or every error at once), then [`crate::pipeline`] compiles it into the
//! running plan.

mod compose;
mod error;
mod kinds;
mod load;
mod model;
mod positions;
pub mod schema;
pub mod template;
mod validate;

pub use compose::{describe_module, ModuleDescription};
pub use error::{ConfigError, ConfigErrors};
pub use kinds::{Extractor, KindError, SourceKind};
pub use load::{
    load_file, load_str, load_web_config, read_foreign_yaml, read_regular_file, read_text,
};
pub use model::*;
pub use positions::Position;
pub use validate::{
    default_buckets, did_you_mean, DEFAULT_MAX_LABEL_VALUE_LENGTH, DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_SERIES, DEFAULT_POLL_INTERVAL, DEFAULT_ROTATE_WAIT, UNKNOWN_STATE,
};

/// The position of the node at a YAML `path` (or of its nearest ancestor) in config `text`.
pub fn locate(text: &str, path: &str) -> Option<Position> {
    positions::PositionIndex::build(text).find(path)
}

/// The directory relative paths in `config_file` are resolved against.
pub fn base_dir(config_file: &std::path::Path) -> std::path::PathBuf {
    let dir = config_file.parent().unwrap_or(std::path::Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Resolves a path from the config against the config file's directory, as Prometheus does.
pub fn resolve_path(base_dir: &std::path::Path, path: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}
