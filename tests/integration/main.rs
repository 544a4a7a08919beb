//! One integration-test binary (as in ripgrep): the real `quarry_exporter` binary driven
//! through its command line, its HTTP endpoints and real files.

// Tests stop at the first surprise: unwrapping is how they say so (the product code may not).
#![allow(clippy::unwrap_used)]

mod ahead;
mod browser;
mod catalog;
mod catalog_bind;
mod catalog_dashboards;
mod catalog_haproxy_memcached;
mod catalog_logs;
mod catalog_redis;
mod catalog_squid;
mod catalog_varnish;
mod common;
mod config_errors;
mod dashboards;
mod explain;
mod exposition;
mod golden;
mod grok;
mod hardening;
mod http_client;
mod kubelet;
mod layers;
mod lifecycle;
mod migrate;
mod pages;
mod parity;
mod probe;
mod prom;
mod real_servers;
mod recipes;
mod records;
mod redteam;
mod rotation;
mod schema;
mod self_metric_names;
mod server;
mod sockets;
mod status;
mod stress;
mod suggest;
mod tail;
mod truth;
mod upstream;
