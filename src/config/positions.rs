//! Where each node of a YAML document stands: a map from YAML path (`sources[0].file.paths[1]`)
//! to line and column.
//!
//! serde_yaml reports positions only for the first error it meets, and nothing at all for
//! errors found after deserialization (an unknown metric name, a missing capture). So the
//! document is also read once with yaml-rust2's event parser, which hands out a marker for
//! every node; validation errors carry a path and are placed with this index.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1.
    pub column: usize,
}

/// Positions of every node, keyed by YAML path.
#[derive(Debug, Default)]
pub struct PositionIndex {
    nodes: HashMap<String, Position>,
}

impl PositionIndex {
    /// Indexes `text`. A document that does not parse yields an empty index (serde_yaml reports
    /// the syntax error itself).
    pub fn build(text: &str) -> PositionIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        PositionIndex {
            nodes: builder.nodes,
        }
    }

    /// The position of the node at `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(pos) = self.nodes.get(path) {
                return Some(*pos);
            }
            path = parent_path(path)?;
        }
    }
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → `` (the document root), `` → none.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Appends one segment to a path the way the index and error messages spell it.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends a sequence index to a path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

enum Frame {
    Mapping {
        path: String,
        /// The key whose value comes next; `None` while a key is expected.
        key: Option<String>,
    },
    Sequence {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    nodes: HashMap<String, Position>,
}

impl Builder {
    /// Called for every node; returns the node's path, or `None` when the node is a mapping key.
    fn node_path(&mut self, mark: Marker, key_text: Option<&str>, scalar: bool) -> Option<String> {
        let position = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Sequence { path, next }) => {
                let p = join_index(path, *next);
                *next += 1;
                p
            }
            Some(Frame::Mapping { path, key }) => match key.take() {
                None => {
                    // This node is a key. Remember where the key itself stands too, so an
                    // error about an unknown key points at the key.
                    let key_name = key_text.unwrap_or("?").to_owned();
                    let p = join_key(path, &key_name);
                    self.nodes.insert(p, position);
                    *key = Some(key_name);
                    return None;
                }
                Some(k) => join_key(path, &k),
            },
        };
        // A scalar's own position wins over its key's; for a collection the key is the more
        // useful place to point at, so it is kept.
        if scalar {
            self.nodes.insert(path.clone(), position);
        } else {
            self.nodes.entry(path.clone()).or_insert(position);
        }
        Some(path)
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                self.node_path(mark, Some(&text), true);
            }
            Event::Alias(_) => {
                self.node_path(mark, None, true);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.node_path(mark, None, false) {
                    self.stack.push(Frame::Mapping { path, key: None });
                } else {
                    // A complex (mapping) key: index its children under a placeholder path.
                    self.stack.push(Frame::Mapping {
                        path: "?".into(),
                        key: None,
                    });
                }
            }
            Event::SequenceStart(..) => {
                let path = self
                    .node_path(mark, None, false)
                    .unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                // A collection used as a mapping key leaves the parent expecting its value.
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_nodes_and_falls_back_to_ancestors() {
        let text = "version: 1\nsources:\n  - name: web\n    file:\n      paths: [a.log, b.log]\n";
        let index = PositionIndex::build(text);
        assert_eq!(
            index.find("version"),
            Some(Position {
                line: 1,
                column: 10
            })
        );
        assert_eq!(
            index.find("sources[0].name"),
            Some(Position {
                line: 3,
                column: 11
            })
        );
        assert_eq!(
            index.find("sources[0].file.paths[1]"),
            Some(Position {
                line: 5,
                column: 22
            })
        );
        // Unknown child: the nearest ancestor.
        assert_eq!(
            index.find("sources[0].file.nope"),
            Some(Position { line: 4, column: 5 })
        );
    }
}
