//! quarry_exporter: turns logs and status pages into Prometheus metrics.
//!
//! Data flows one way: [`config`] loads and validates `exporter.yaml`; [`pipeline`] compiles
//! it into rules that turn records into metric updates; [`source`] reads records (lines from
//! tailed files) and feeds them through the pipeline; [`registry`] holds the metric families
//! and [`selfmetrics`] the exporter's own; [`server`] serves them with a landing page.
//! [`app`] wires these together for the `run`, `check` and `one-shot` commands.

pub mod allocator;
pub mod app;
pub mod board;
pub mod catalog;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod examples;
pub mod explain;
pub mod exposition;
pub mod extract;
pub mod faults;
pub mod gate;
pub mod grok;
pub mod landing;
pub mod logging;
pub mod matcher;
pub mod migrate;
pub mod pipeline;
pub mod probe;
pub mod process;
pub mod registry;
pub mod render;
pub mod scrape;
pub mod selfmetrics;
pub mod series;
pub mod server;
pub mod source;
pub mod status;
pub mod suggest;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod value;
pub mod webconfig;
