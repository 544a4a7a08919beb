//! Wiring: config → metric families and pipelines → sources → server, for each command.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prometheus::{Encoder, Registry, TextEncoder};
use tracing::info;

use crate::config::{self, Config, ConfigErrors};
use crate::pipeline::Pipeline;
use crate::registry::Families;
use crate::selfmetrics::SelfMetrics;
use crate::server::{self, WebState};
use crate::source::{FileSource, PageSource, RunningSource};
use crate::status::{SharedStatus, SourceStatus};

/// Everything built from one config, ready to run.
pub struct Exporter {
    /// User metrics and self-metrics.
    pub registry: Registry,
    /// File sources, in config order.
    pub sources: Vec<(String, FileSource)>,
    /// Page sources (http, command, status_file), in config order.
    pub pages: Vec<PageSource>,
    /// The status each source publishes.
    pub statuses: Vec<SharedStatus>,
}

/// Loads and validates a config file.
pub fn load(config_file: &Path) -> Result<Config, ConfigErrors> {
    config::load_file(config_file)
}

/// The directory relative paths in `config_file` are resolved against.
pub fn base_dir(config_file: &Path) -> PathBuf {
    let dir = config_file.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Builds the registry, metric families, pipelines and sources of a validated config.
pub fn build(config: &Config, base_dir: &Path) -> anyhow::Result<Exporter> {
    let registry = Registry::new();
    let self_metrics = SelfMetrics::register(&registry);
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let families = Families::build(&config.metrics, &registry, &self_metrics)?;
    let mut sources = Vec::new();
    let mut pages = Vec::new();
    let mut statuses = Vec::new();
    for s in &config.sources {
        let pipeline = Pipeline::build(s, &families, &self_metrics)?;
        let status: SharedStatus = Arc::new(Mutex::new(SourceStatus::default()));
        match &s.file {
            Some(file) => {
                let source = FileSource::new(
                    &s.name,
                    file,
                    base_dir,
                    pipeline,
                    self_metrics.clone(),
                    status.clone(),
                );
                sources.push((s.name.clone(), source));
            }
            None => pages.push(
                PageSource::new(s, base_dir, pipeline, &self_metrics, status.clone())
                    .with_context(|| format!("source {:?}", s.name))?,
            ),
        }
        statuses.push(status);
    }
    self_metrics.config_last_reload_successful.set(1.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    self_metrics.config_last_reload_success_timestamp.set(now);
    Ok(Exporter {
        registry,
        sources,
        pages,
        statuses,
    })
}

/// Parses `--web.listen-address` values: `host:port`, `[v6]:port` or `:port` (all interfaces).
pub fn parse_listen_address(text: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    let addrs: Vec<SocketAddr> = full
        .to_socket_addrs()
        .with_context(|| format!("invalid listen address {text:?}: expected host:port or :port"))?
        .collect();
    anyhow::ensure!(
        !addrs.is_empty(),
        "listen address {text:?} resolves to nothing"
    );
    Ok(addrs)
}

/// Settings of the long-running exporter.
pub struct RunOptions {
    pub config_file: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub telemetry_path: String,
}

/// Runs the exporter until SIGTERM or SIGINT.
pub fn run(options: RunOptions, config: Config) -> anyhow::Result<()> {
    let exporter = build(&config, &base_dir(&options.config_file))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("quarry-web")
        .build()?;
    runtime.block_on(async move {
        let listeners = server::bind(&options.listen).await?;
        let pending = Arc::new(AtomicUsize::new(exporter.sources.len()));
        let mut running = Vec::new();
        for (name, source) in exporter.sources {
            running.push(RunningSource::spawn(source, &name, pending.clone())?);
        }
        let (stop_pages, stopped) = tokio::sync::watch::channel(false);
        let page_tasks: Vec<_> = exporter
            .pages
            .into_iter()
            .map(|p| tokio::spawn(p.run(stopped.clone())))
            .collect();
        let state = Arc::new(WebState {
            registry: exporter.registry,
            telemetry_path: options.telemetry_path,
            statuses: exporter.statuses,
            pending_sources: pending,
            config_file: options.config_file.display().to_string(),
        });
        info!(sources = running.len(), config = %state.config_file, "quarry_exporter started");
        server::serve(listeners, state, shutdown_signal()).await;
        info!("shutting down");
        let _ = stop_pages.send(true);
        for t in page_tasks {
            let _ = t.await;
        }
        tokio::task::spawn_blocking(move || running.into_iter().for_each(RunningSource::stop))
            .await?;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => info!("received SIGINT"),
    }
}

/// Reads every file source from its beginning to its end, fetches every page source once, and
/// writes the exposition to `out`:
/// the user's metrics, plus the `quarry_` self-metrics when `self_metrics` is set.
pub fn one_shot(
    config_file: &Path,
    config: Config,
    self_metrics: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let exporter = build(&config, &base_dir(config_file))?;
    for (name, mut source) in exporter.sources {
        source.read_everything_once();
        tracing::debug!(source = %name, "read to the end");
    }
    if !exporter.pages.is_empty() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            for mut page in exporter.pages {
                page.run_once().await;
                tracing::debug!(source = %page.name(), "fetched once");
            }
        });
    }
    let families: Vec<_> = exporter
        .registry
        .gather()
        .into_iter()
        .filter(|f| {
            let name = f.name();
            if name.starts_with("quarry_") {
                // Build and reload facts say nothing about the data read.
                self_metrics && name != "quarry_build_info" && !name.starts_with("quarry_config_")
            } else {
                !name.starts_with("process_")
            }
        })
        .collect();
    let mut text = Vec::new();
    TextEncoder::new().encode(&families, &mut text)?;
    out.write_all(&text)?;
    Ok(())
}
