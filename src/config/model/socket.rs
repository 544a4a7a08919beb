//! `socket:` — the serde types of a source that talks to a TCP or Unix socket (Redis `INFO`,
//! memcached `stats`, HAProxy's runtime API, a daemon's own line protocol): where to connect,
//! TLS, and a conversation of steps, each an optional request and the rule its reply ends by.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{de_opt_duration, duration_schema, TlsConfig};

/// `socket:` — a conversation over TCP (`address`) or a Unix socket (`path`), optionally TLS.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SocketSourceConfig {
    /// `host:port` to connect to over TCP (in a probe module: `$target`).
    #[serde(default)]
    pub address: Option<String>,
    /// A Unix socket to connect to; relative to the config file.
    #[serde(default)]
    pub path: Option<String>,
    /// TLS over the connection, with the options of `http:` (the certificate is verified for
    /// `server_name`, else the host of `address`).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Files whose content (without a trailing newline) a request sends as `${name}`, read on
    /// every conversation and never shown.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The conversation, in order.
    pub steps: Vec<SocketStepConfig>,
    /// Give up on the whole conversation (connect, TLS, every step) after this long (default
    /// 10s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Duration>,
    /// Talk this often (default 15s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub interval: Option<Duration>,
    /// The most the conversation may receive, all replies and their framing together, in
    /// bytes (default 10 MiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// One step: what it sends (if anything), how its reply ends, what the reply must say.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SocketStepConfig {
    /// Bytes to send: text with escapes (`\r\n`, `\t`, `\0`, `\e`, `\\`, `\xHH`) and `${name}`
    /// for a secret of `secrets:`.
    #[serde(default)]
    pub send: Option<String>,
    /// How the reply ends (default `closed`).
    #[serde(default)]
    pub until: SocketUntil,
    /// Give up on this step after this long (default: what is left of `timeout`). With
    /// `until: timeout`, the reply is what came within it.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Duration>,
    /// A regex the reply must match (e.g. `^\+OK` after Redis' `AUTH`); else the conversation
    /// fails with reason `unexpected_reply`.
    #[serde(default)]
    pub expect: Option<String>,
    /// The reply is (part of) the document the rules read. If no step says so, the last
    /// step's reply is the document; if several do, their replies in order.
    #[serde(default)]
    pub document: bool,
}

/// How a step's reply ends: a name (`closed`, `timeout`, `empty_line`) or a map with one key
/// (`{terminator: …}`, `{prompt: …}`, `{length: …}`, `{length_header: {…}}`).
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SocketUntil {
    /// The peer closes the connection.
    #[default]
    Closed,
    /// The step's `timeout` passes: the reply is whatever came by then.
    Timeout,
    /// An empty line (`\n\n` or `\r\n\r\n`); the reply is what precedes it.
    EmptyLine,
    /// These bytes (with escapes, e.g. `END\r\n`); the reply is what precedes them.
    Terminator(String),
    /// A regex matching the end of what was received (a prompt such as `\n> `).
    Prompt(String),
    /// Exactly this many bytes.
    Length(usize),
    /// A header whose first capture group is the length of the body that follows.
    LengthHeader(SocketLengthHeader),
}

/// A length header: Redis' bulk string is `{pattern: '\$(\d+)\r\n', trailer: 2}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SocketLengthHeader {
    /// A regex anchored at the start of the reply; its first group is the body's length.
    pub pattern: String,
    /// Bytes after the body that are framing, not reply (default 0).
    #[serde(default)]
    pub trailer: usize,
}

/// The names `until` takes, for errors.
const UNTIL_NAMES: &[&str] = &[
    "closed",
    "timeout",
    "empty_line",
    "terminator",
    "prompt",
    "length",
    "length_header",
];

// By hand: the config is read through a YAML value, whose enums are tagged (`!terminator`);
// `until` is written as a name or a one-key map instead.
impl<'de> Deserialize<'de> for SocketUntil {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SocketUntil, D::Error> {
        struct UntilVisitor;
        impl<'de> Visitor<'de> for UntilVisitor {
            type Value = SocketUntil;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("closed, timeout, empty_line, or one of {terminator: …}, {prompt: …}, {length: …}, {length_header: {pattern: …, trailer: …}}")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<SocketUntil, E> {
                match name {
                    "closed" => Ok(SocketUntil::Closed),
                    "timeout" => Ok(SocketUntil::Timeout),
                    "empty_line" => Ok(SocketUntil::EmptyLine),
                    "terminator" | "prompt" | "length" | "length_header" => Err(E::custom(
                        format!("`{name}` needs its value: until: {{{name}: …}}"),
                    )),
                    other => Err(E::unknown_variant(other, UNTIL_NAMES)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SocketUntil, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "until needs a rule, e.g. {terminator: 'END\\r\\n'}",
                    ));
                };
                let until = match key.as_str() {
                    "terminator" => SocketUntil::Terminator(map.next_value()?),
                    "prompt" => SocketUntil::Prompt(map.next_value()?),
                    "length" => SocketUntil::Length(map.next_value()?),
                    "length_header" => SocketUntil::LengthHeader(map.next_value()?),
                    "closed" | "timeout" | "empty_line" => {
                        return Err(de::Error::custom(format!(
                            "`{key}` takes no value: write until: {key}"
                        )))
                    }
                    other => return Err(de::Error::unknown_variant(other, UNTIL_NAMES)),
                };
                if let Some(second) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "until takes one rule; `{second}` is a second one"
                    )));
                }
                Ok(until)
            }
        }
        d.deserialize_any(UntilVisitor)
    }
}
