//! One integration-test binary (as in ripgrep): the real `quarry_exporter` binary driven
//! through its command line, its HTTP endpoints and real files.

mod browser;
mod common;
mod config_errors;
mod dashboards;
mod explain;
mod exposition;
mod golden;
mod grok;
mod hardening;
mod http_client;
mod lifecycle;
mod migrate;
mod pages;
mod probe;
mod prom;
mod real_servers;
mod recipes;
mod records;
mod rotation;
mod schema;
mod server;
mod status;
mod stress;
mod suggest;
mod tail;
mod truth;
mod upstream;
