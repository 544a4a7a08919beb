//! Config errors as the user sees them: `file:line:column: yaml.path: what is wrong` (an
//! error with no better place is placed at `1:1`, so tools can always jump to it).

use std::fmt;

use super::positions::Position;

/// One problem in a config file, placed as exactly as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// YAML path of the offending node, e.g. `sources[0].rules[2].regex`; empty for the root.
    pub path: String,
    /// Where the node stands, when known.
    pub position: Option<Position>,
    /// What is wrong and what was expected.
    pub message: String,
    /// The file the position is in when it is not the config file itself: a catalog module's
    /// (`catalog/nginx.yaml`) or a module file's, for errors inside a module a config `use:`s.
    pub file: Option<String>,
}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file as the user named it.
    pub file: String,
    /// At least one error.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // Every error is placed; where nothing better is known, at the start of the file.
            let p = e.position.unwrap_or(Position { line: 1, column: 1 });
            let file = e.file.as_deref().unwrap_or(&self.file);
            write!(f, "{file}:{}:{}", p.line, p.column)?;
            if e.path.is_empty() {
                write!(f, ": {}", e.message)?;
            } else {
                write!(f, ": {}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
