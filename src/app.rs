//! Wiring: config → metric families and pipelines → sources → server, for each command, and
//! reloading (SIGHUP, `POST /-/reload`) without losing state.
//!
//! A reload validates and dry-builds the new config first; only then are the running sources
//! stopped. Metric families whose declaration did not change keep their values, and a file
//! source that keeps its name goes on from the offsets of the files it was reading. A bad config
//! leaves the old one running and sets `quarry_config_last_reload_successful` to 0.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prometheus::Registry;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::checkpoint::{self, Checkpointer, Loaded, Store};
use crate::config::{self, base_dir, Config, ConfigErrors, SourceKind};
use crate::gate::Gate;
use crate::pipeline::Pipeline;
use crate::probe::{ProbeOptions, Probes};
use crate::registry::Families;
use crate::selfmetrics::SelfMetrics;
use crate::server::{self, ReloadRequest, WebState};
use crate::source::{FileSource, PageSource, RunningSource};
use crate::status::{SharedStatus, SourceStatus};

/// The sources and families built from one config.
pub struct Built {
    /// The declared metric families.
    pub families: Families,
    /// The families fed by file sources: what a checkpoint saves.
    pub persisted: Vec<Arc<crate::registry::Family>>,
    /// File sources, in config order.
    pub sources: Vec<(String, FileSource)>,
    /// Page sources (http, command, status_file), in config order.
    pub pages: Vec<PageSource>,
    /// The status each source publishes, in config order.
    pub statuses: Vec<SharedStatus>,
}

/// Loads and validates a config file, and runs its rules' examples (a failing example is a
/// config error, placed at the example).
pub fn load(config_file: &Path) -> Result<Config, ConfigErrors> {
    let config = config::load_file(config_file)?;
    let text = config::read_text(config_file).unwrap_or_default();
    let mut errors: Vec<config::ConfigError> = crate::examples::check(&config)
        .into_iter()
        .map(|(path, message)| config::ConfigError {
            position: config::locate(&text, &path),
            path,
            message,
            file: None,
        })
        .collect();
    // A used module's examples run on the module as written (its sources carry none once
    // merged), and fail in the module's file.
    for used in &config.uses {
        errors.extend(
            crate::examples::check(&used.config)
                .into_iter()
                .map(|(path, message)| config::ConfigError {
                    position: config::locate(&used.text, &path),
                    path,
                    message: format!("{message} (in the module used at {})", used.used_at),
                    file: Some(used.file.clone()),
                }),
        );
    }
    if errors.is_empty() {
        return Ok(config);
    }
    Err(ConfigErrors {
        file: config_file.display().to_string(),
        errors,
    })
}

/// The self-metrics, and a registry with the `process_*` collector ([`crate::process`]: the
/// prometheus crate's own counts CPU in whole seconds).
pub fn new_registry() -> anyhow::Result<(Registry, SelfMetrics)> {
    let registry = Registry::new();
    let self_metrics = SelfMetrics::new();
    registry.register(Box::new(crate::process::ProcessCollector::for_self()))?;
    Ok((registry, self_metrics))
}

/// Builds the families, pipelines and sources of a validated config. `previous` families are
/// kept where their declaration is unchanged. (User families are not registered anywhere: they
/// render themselves, see [`crate::exposition`].)
pub fn build(
    config: &Config,
    base_dir: &Path,
    self_metrics: &SelfMetrics,
    previous: Option<Families>,
    gate: &Arc<Gate>,
) -> anyhow::Result<Built> {
    let families = Families::rebuild(&config.served_metrics(), self_metrics, previous);
    let mut fed_by_files: Vec<&str> = config
        .sources
        .iter()
        .filter(|s| s.reads_lines())
        .flat_map(|s| {
            s.rules
                .iter()
                .flat_map(|r| r.update.iter().map(|u| u.metric.as_str()))
        })
        .collect();
    fed_by_files.sort_unstable();
    fed_by_files.dedup();
    let persisted = fed_by_files
        .iter()
        .filter_map(|name| families.get(name).cloned())
        .collect();
    // Metrics one update alone feeds: a page pipeline built on a kept family (a reload) owns
    // its existing series, so an item gone while reloading still goes at the next document.
    let mut feeders: std::collections::HashMap<&str, usize> = Default::default();
    for u in config
        .sources
        .iter()
        .flat_map(|s| s.rules.iter().flat_map(|r| r.update.iter()))
    {
        *feeders.entry(u.metric.as_str()).or_default() += 1;
    }
    let mut sources = Vec::new();
    let mut pages = Vec::new();
    let mut statuses = Vec::new();
    for s in &config.sources {
        let kind = s.kind().with_context(|| format!("source {:?}", s.name))?;
        let mut pipeline = Pipeline::build(s, &families, self_metrics)?;
        if !kind.reads_lines() {
            pipeline.adopt_existing(|metric| feeders.get(metric) == Some(&1));
        }
        let status: SharedStatus = Arc::new(Mutex::new(SourceStatus::default()));
        match kind {
            SourceKind::File(file) => {
                let source = FileSource::new(
                    &s.name,
                    file,
                    base_dir,
                    pipeline,
                    self_metrics.clone(),
                    status.clone(),
                    gate.clone(),
                );
                sources.push((s.name.clone(), source));
            }
            SourceKind::Http(_)
            | SourceKind::Command(_)
            | SourceKind::StatusFile(_)
            | SourceKind::Socket(_) => pages.push(
                PageSource::new(
                    s,
                    base_dir,
                    pipeline,
                    self_metrics,
                    status.clone(),
                    gate.clone(),
                )
                .with_context(|| format!("source {:?}", s.name))?,
            ),
        }
        statuses.push(status);
    }
    Ok(Built {
        families,
        persisted,
        sources,
        pages,
        statuses,
    })
}

/// Puts a checkpoint's values and file positions into a freshly built config. What no longer
/// fits (a metric whose type, labels, buckets or states changed; a source no longer there) is
/// dropped, and said.
pub fn restore(built: &mut Built, snapshot: crate::checkpoint::Snapshot) {
    for saved in snapshot.families {
        match built.persisted.iter().find(|f| f.name == saved.name) {
            Some(f) if saved.fits(f) => f.restore(&saved.series),
            Some(_) => {
                tracing::warn!(metric = %saved.name, "its type, labels, buckets or states changed since the checkpoint: its {} saved series are dropped (the counters start again at 0)", saved.series.len())
            }
            None => {
                tracing::info!(metric = %saved.name, "no longer fed by a file source (or removed): its saved series are dropped")
            }
        }
    }
    for (name, state) in snapshot.sources {
        match built.sources.iter_mut().find(|(n, _)| *n == name) {
            Some((_, source)) => source.restore(state),
            None => {
                tracing::warn!(source = %name, "not in the config any more (renamed or removed): its saved file positions are dropped")
            }
        }
    }
}

fn mark_loaded(self_metrics: &SelfMetrics) {
    self_metrics.config_last_reload_successful().set(1.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    self_metrics.config_last_reload_success_timestamp().set(now);
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
    /// Accept `POST /-/reload`.
    pub enable_lifecycle: bool,
    /// `--web.config.file`: TLS and basic auth.
    pub web_config: Option<PathBuf>,
    /// `--storage.path`: where checkpoints go.
    pub storage: Option<PathBuf>,
    /// `--storage.interval`: checkpoints at least this often.
    pub storage_interval: std::time::Duration,
    /// `--probe.*`: the `/probe` endpoint's bounds.
    pub probe: ProbeOptions,
}

/// How long stopping the sources may take, at reload and at shutdown.
pub const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The sources running on the current config.
struct Generation {
    families: Families,
    files: Vec<RunningSource>,
    pages: Vec<tokio::task::JoinHandle<()>>,
    stop_pages: watch::Sender<bool>,
}

impl Generation {
    /// Starts `built`'s sources; file sources named in `previous` resume their files.
    fn start(
        built: Built,
        mut previous: Vec<FileSource>,
        pending: &Arc<AtomicUsize>,
        checkpointer: Option<&Checkpointer>,
    ) -> anyhow::Result<Generation> {
        pending.fetch_add(built.sources.len(), Ordering::SeqCst);
        let mut sources = Vec::new();
        for (name, mut source) in built.sources {
            if let Some(i) = previous.iter().position(|p| p.name() == name) {
                source.resume_from(previous.swap_remove(i));
            }
            sources.push((name, source));
        }
        // What checkpoints save is set before any source runs (a source asks for one before
        // it reads a new file).
        if let Some(c) = checkpointer {
            let shares = sources
                .iter()
                .map(|(n, s)| (n.clone(), s.share()))
                .collect();
            c.set(shares, built.persisted.clone());
        }
        let mut files = Vec::new();
        for (name, source) in sources {
            files.push(RunningSource::spawn(source, &name, pending.clone())?);
        }
        let (stop_pages, stopped) = watch::channel(false);
        let pages = built
            .pages
            .into_iter()
            .map(|p| tokio::spawn(p.run(stopped.clone())))
            .collect();
        Ok(Generation {
            families: built.families,
            files,
            pages,
            stop_pages,
        })
    }

    /// A generation that runs nothing (when a reload failed after the old one stopped).
    fn idle() -> Generation {
        Generation {
            families: Families::default(),
            files: Vec::new(),
            pages: Vec::new(),
            stop_pages: watch::channel(false).0,
        }
    }

    /// Stops every source within [`STOP_DEADLINE`]; returns the families and the file sources
    /// that stopped, with their files. A page task still busy at the deadline is aborted (its
    /// fetch is dropped: commands are killed, parses abandoned to their worker).
    async fn stop(self) -> (Families, Vec<FileSource>) {
        let deadline = std::time::Instant::now() + STOP_DEADLINE;
        let _ = self.stop_pages.send(true);
        for mut t in self.pages {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if tokio::time::timeout(left, &mut t).await.is_err() {
                t.abort();
            }
        }
        let files = tokio::task::spawn_blocking(move || {
            self.files
                .into_iter()
                .filter_map(|s| s.stop(deadline))
                .collect()
        })
        .await
        .unwrap_or_default();
        (self.families, files)
    }
}

/// Runs the exporter until SIGTERM or SIGINT, reloading on SIGHUP and `POST /-/reload`.
pub fn run(options: RunOptions, config: Config) -> anyhow::Result<()> {
    // Before the runtime and the sources start their threads.
    crate::allocator::tune();
    // A write past `ulimit -f` is an error to count (EFBIG), as a full disk is, not a signal
    // that ends the process.
    // SAFETY: a signal's disposition set to "ignore" (process-wide, no handler runs).
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let web_security = options
        .web_config
        .as_deref()
        .map(crate::webconfig::WebSecurity::load)
        .transpose()?;
    let (registry, self_metrics) = new_registry()?;
    let base = base_dir(&options.config_file);
    let gate = Arc::new(Gate::default());
    let (soft, budget) = crate::source::fs::raise_open_file_limit();
    info!(open_file_limit = soft, tailer_budget = budget, "open files");
    let mut built = build(&config, &base, &self_metrics, None, &gate)?;
    let probes = Arc::new(Probes::build(
        &config,
        &base,
        &self_metrics,
        &options.probe,
        None,
    )?);
    let checkpointer = match &options.storage {
        None => None,
        Some(dir) => {
            let store = Store::open(dir)?;
            let metrics = self_metrics.checkpoint();
            match store.load() {
                Loaded::Nothing => {
                    info!(path = %store.path().display(), "no checkpoint yet: starting afresh")
                }
                Loaded::Snapshot(snapshot) => {
                    // What cannot be right is refused whole: counts and offsets go together.
                    let mut problems = checkpoint::verify::values(&snapshot, &built.persisted);
                    problems.extend(checkpoint::verify::files(
                        &snapshot,
                        &crate::source::fs::RealFs::new(),
                    ));
                    if problems.is_empty() {
                        info!(path = %store.path().display(), families = snapshot.families.len(), sources = snapshot.sources.len(), "resuming from the checkpoint");
                        restore(&mut built, snapshot);
                    } else {
                        metrics.restore_refused.inc();
                        let moved = store.move_aside("refused");
                        error!(
                            "the checkpoint is refused: {}; it was moved to {} and the exporter starts afresh (counters from 0, files per start_at)",
                            checkpoint::verify::summary(&problems),
                            moved.display()
                        );
                    }
                }
                Loaded::Unreadable(why, moved) => {
                    metrics.restore_unreadable.inc();
                    error!(
                        "the checkpoint cannot be read ({why}); it was moved to {} and the exporter starts afresh (counters from 0, files per start_at)",
                        moved.display()
                    )
                }
            }
            let c = Arc::new(Checkpointer::new(
                store,
                gate.clone(),
                metrics,
                options.storage_interval,
            )?);
            gate.set_checkpointer(&c);
            Some(c)
        }
    };
    let history = Arc::new(match &options.storage {
        None => crate::board::History::default(),
        Some(dir) => crate::board::History::load(dir).unwrap_or_else(|e| {
            warn!("the status board's history is not read ({e}); it starts empty");
            crate::board::History::default()
        }),
    });
    mark_loaded(&self_metrics);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("quarry-web")
        .build()?;
    runtime.block_on(async {
        // The signals are taken before the exporter says it listens: a SIGHUP or SIGTERM sent
        // as soon as it does reloads or stops it once it has started, never kills it by the
        // signal's default action (without its last checkpoint).
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut int = signal(SignalKind::interrupt())?;
        let listeners = server::bind(&options.listen).await?;
        let pending = Arc::new(AtomicUsize::new(0));
        let statuses = built.statuses.clone();
        let families = built.families.clone();
        let mut generation = Generation::start(built, Vec::new(), &pending, checkpointer.as_deref())?;
        let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
        let state = Arc::new(WebState {
            registry: registry.clone(),
            self_metrics: self_metrics.clone(),
            telemetry_path: options.telemetry_path.clone(),
            statuses: std::sync::RwLock::new(statuses),
            families: std::sync::RwLock::new(families),
            pending_sources: pending.clone(),
            config_file: options.config_file.display().to_string(),
            reload: options.enable_lifecycle.then_some(reload_tx),
            security: web_security,
            renders: Default::default(),
            checkpointer: checkpointer.clone(),
            probes: std::sync::RwLock::new(probes),
            board: std::sync::RwLock::new(Arc::new(crate::board::Plan::build(&config))),
            history: history.clone(),
        });
        // The status board's history: every second the state families are read (a change is
        // seen within a second), and with --storage.path the history is saved every minute
        // it changed.
        {
            let state = state.clone();
            let storage = options.storage.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_save = crate::board::unix_now();
                loop {
                    ticks.tick().await;
                    let state = state.clone();
                    let storage = storage.clone();
                    let saved = tokio::task::spawn_blocking(move || {
                        let plan = state.board.read().unwrap_or_else(|e| e.into_inner()).clone();
                        let families = state.families.read().unwrap_or_else(|e| e.into_inner()).clone();
                        let now = crate::board::unix_now();
                        state.history.observe(now, &families, &plan.metrics, &plan.headline_metrics());
                        match storage {
                            Some(dir) if now >= last_save + 60 && state.history.dirty() => {
                                if let Err(e) = state.history.save(&dir, now) {
                                    warn!(path = %dir.display(), "cannot save the status board's history: {e}");
                                }
                                now
                            }
                            _ => last_save,
                        }
                    })
                    .await;
                    if let Ok(at) = saved {
                        last_save = at;
                    }
                }
            });
        }
        // Idle series of metrics with `expire_after` go, checked every second.
        {
            let state = state.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    ticks.tick().await;
                    let families = state.families.read().unwrap_or_else(|e| e.into_inner()).clone();
                    if !families.iter().any(|f| f.expires()) {
                        continue;
                    }
                    let gate = gate.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        for family in families.iter().filter(|f| f.expires()) {
                            // Mostly nothing expires: a checkpoint is due only when some did.
                            let _section = gate.quiet_section();
                            if family.expire() > 0 {
                                gate.mark_changed();
                            }
                        }
                    })
                    .await;
                }
            });
        }
        info!(config = %state.config_file, "quarry_exporter started");
        let (stop_server, server_stopped) = watch::channel(false);
        let server = tokio::spawn(server::serve(listeners, state.clone(), async move {
            let mut s = server_stopped;
            let _ = s.changed().await;
        }));
        loop {
            let reply = tokio::select! {
                _ = term.recv() => { info!("received SIGTERM"); break; }
                _ = int.recv() => { info!("received SIGINT"); break; }
                _ = hup.recv() => { info!("received SIGHUP: reloading"); None }
                Some(reply) = reload_rx.recv() => { info!("reload requested over HTTP"); Some(reply) }
            };
            // However long loading and the dry build take, a SIGTERM meanwhile is answered:
            // the reload is abandoned (the old config was never stopped).
            let prepared = tokio::select! {
                p = prepare(&options, &self_metrics, state.probes.read().unwrap_or_else(|e| e.into_inner()).clone()) => Some(p),
                _ = term.recv() => { info!("received SIGTERM during a reload: reload abandoned"); None }
                _ = int.recv() => { info!("received SIGINT during a reload: reload abandoned"); None }
            };
            let Some(prepared) = prepared else {
                if let Some(reply) = reply {
                    let _ = reply.send(Err("the exporter is shutting down".to_owned()));
                }
                break;
            };
            let (next, result) = reload(prepared, &options, &self_metrics, generation, &pending, &state, &gate, checkpointer.as_deref()).await;
            generation = next;
            // The old config's memory was just freed: hand it back rather than keep it.
            crate::allocator::release_free_memory();
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        info!("shutting down");
        let _ = stop_server.send(true);
        let _ = server.await;
        generation.stop().await;
        if let Some(dir) = options.storage.clone() {
            let history = history.clone();
            let saved = tokio::task::spawn_blocking(move || history.save(&dir, crate::board::unix_now()));
            match tokio::time::timeout(checkpoint::SHUTDOWN_WAIT, saved).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!("cannot save the status board's history: {e}"),
                _ => warn!("the status board's history was not saved within {:?}", checkpoint::SHUTDOWN_WAIT),
            }
        }
        if let Some(c) = checkpointer.clone() {
            // The last checkpoint: every line read so far, and where each file stands — waited
            // for within a bound (a hung volume must not hold the exit).
            if tokio::task::spawn_blocking(move || c.finish()).await.unwrap_or(false) {
                info!("checkpoint written");
            } else {
                warn!("the last checkpoint was not written within {:?}; a restart goes back to the last one written", checkpoint::SHUTDOWN_WAIT);
            }
        }
        anyhow::Ok(())
    })?;
    // Blocking-pool threads still inside a read that never returns must not hold the process.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// A new config, loaded (its examples run) and dry-built, and its probe modules; or why not.
type Prepared = Result<(Config, Arc<Probes>), String>;

/// Loads the config file anew and dry-builds it, on the blocking pool: a big config (many
/// rules, examples, pre-declared series) takes a while, and the caller must stay free to
/// answer a SIGTERM. A panic there refuses the reload; it cannot take the exporter down.
async fn prepare(
    options: &RunOptions,
    self_metrics: &SelfMetrics,
    previous_probes: Arc<Probes>,
) -> Prepared {
    let config_file = options.config_file.clone();
    let probe_options = options.probe.clone();
    let self_metrics = self_metrics.clone();
    let work = tokio::task::spawn_blocking(move || {
        let config = load(&config_file).map_err(|errors| errors.to_string())?;
        let base = base_dir(&config_file);
        // Dry run with scratch self-metrics: files the sources need (bodies, CAs), regexes, ...
        let scratch = SelfMetrics::new();
        build(&config, &base, &scratch, None, &Arc::new(Gate::default()))
            .map_err(|e| format!("{e:#}"))?;
        // Probe modules keep no state: built now, they replace the old ones once the rest is up.
        // Probe modules keep no state but the limits in flight, which they share with the
        // old ones.
        let probes = Probes::build(
            &config,
            &base,
            &self_metrics,
            &probe_options,
            Some(&previous_probes),
        )
        .map_err(|e| format!("{e:#}"))?;
        Ok((config, Arc::new(probes)))
    });
    work.await
        .unwrap_or_else(|e| Err(format!("loading the config failed: {e}")))
}

/// Applies a prepared config; on any error the old generation keeps running.
#[allow(clippy::too_many_arguments)]
async fn reload(
    prepared: Prepared,
    options: &RunOptions,
    self_metrics: &SelfMetrics,
    current: Generation,
    pending: &Arc<AtomicUsize>,
    state: &WebState,
    gate: &Arc<Gate>,
    checkpointer: Option<&Checkpointer>,
) -> (Generation, Result<(), String>) {
    let (config, probes) = match prepared {
        Ok(p) => p,
        Err(message) => {
            error!("reload failed, keeping the running config: {message}");
            self_metrics.config_last_reload_successful().set(0.0);
            return (current, Err(message));
        }
    };
    let base = base_dir(&options.config_file);
    let (families, files) = current.stop().await;
    let built = match build(&config, &base, self_metrics, Some(families), gate) {
        Ok(b) => b,
        Err(e) => {
            // Cannot happen after the dry run unless files changed in between; run nothing
            // rather than half a config, and say so.
            self_metrics.config_last_reload_successful().set(0.0);
            let message = format!("{e:#}");
            error!("reload failed after stopping the old sources: {message}");
            return (Generation::idle(), Err(message));
        }
    };
    *state.statuses.write().unwrap_or_else(|e| e.into_inner()) = built.statuses.clone();
    *state.families.write().unwrap_or_else(|e| e.into_inner()) = built.families.clone();
    *state.board.write().unwrap_or_else(|e| e.into_inner()) =
        Arc::new(crate::board::Plan::build(&config));
    {
        let mut current = state.probes.write().unwrap_or_else(|e| e.into_inner());
        current.forget_removed(&probes);
        *current = probes;
    }
    match Generation::start(built, files, pending, checkpointer) {
        Ok(g) => {
            mark_loaded(self_metrics);
            info!("configuration reloaded");
            (g, Ok(()))
        }
        Err(e) => {
            self_metrics.config_last_reload_successful().set(0.0);
            (
                Generation::idle(),
                Err(format!("cannot start sources: {e}")),
            )
        }
    }
}

/// A source that gave `one-shot` nothing: its name and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFailure {
    pub source: String,
    pub why: String,
}

/// Reads every file source from its beginning to its end, fetches every page source once (all
/// at once, beside the files, as when the exporter runs), and writes the exposition to `out`:
/// the user's metrics, plus the `quarry_` self-metrics when `self_metrics` is set. Returns the
/// sources that failed (a page source whose fetch or document failed, a file source whose globs
/// matched no file); the exposition is written either way. With `match_ahead`, each file
/// source's matchers run on a second thread ([`crate::pipeline::ahead`]): the same output.
pub fn one_shot(
    config_file: &Path,
    config: Config,
    self_metrics: bool,
    match_ahead: bool,
    out: &mut impl Write,
) -> anyhow::Result<Vec<SourceFailure>> {
    let mut failures = Vec::new();
    let (registry, metrics) = new_registry()?;
    let built = build(
        &config,
        &base_dir(config_file),
        &metrics,
        None,
        &Arc::new(Gate::default()),
    )?;
    let built_families = built.families.clone();
    // Page sources are fetched all at once, as when the exporter runs (the slowest sets the
    // time, not the sum), while the files are read on this thread.
    let runtime = if built.pages.is_empty() {
        None
    } else {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
        )
    };
    let fetches: Vec<(String, tokio::task::JoinHandle<Option<String>>)> = match &runtime {
        Some(runtime) => built
            .pages
            .into_iter()
            .map(|mut page| {
                let name = page.name().to_owned();
                let fetch = runtime.spawn(async move {
                    page.run_once().await;
                    tracing::debug!(source = %page.name(), "fetched once");
                    page.last_error().map(str::to_owned)
                });
                (name, fetch)
            })
            .collect(),
        None => Vec::new(),
    };
    // File sources are read one after the other: two of them adding fractions to one series
    // (a histogram's sum) in interleaved order would print a sum that differs in its last
    // digits from one run to the next (measured: 3174.566000000004 and 3174.5659999999916),
    // and one-shot's output is compared byte for byte (golden files, authoring).
    for (name, mut source) in built.sources {
        if source.read_everything_once(match_ahead).is_empty() {
            let not_read = source.not_read();
            failures.push(SourceFailure {
                source: name.clone(),
                why: if not_read.is_empty() {
                    "its paths matched no file".into()
                } else {
                    format!("it read no file: {}", not_read.join("; "))
                },
            });
        }
        tracing::debug!(source = %name, "read to the end");
    }
    if let Some(runtime) = &runtime {
        for (source, fetch) in fetches {
            let why = match runtime.block_on(fetch) {
                Ok(why) => why,
                Err(e) => Some(format!("its fetch failed: {e}")),
            };
            if let Some(why) = why {
                failures.push(SourceFailure { source, why });
            }
        }
    }
    let text = crate::render::render(&registry, &built_families, &metrics, |name| {
        if name.starts_with("quarry_") {
            // Build, reload and logging facts say nothing about the data read.
            self_metrics
                && name != "quarry_build_info"
                && name != "quarry_log_messages_dropped_total"
                && name != "quarry_source_panics_total"
                && name != "quarry_source_stalls_total"
                && !name.starts_with("quarry_config_")
        } else {
            !name.starts_with("process_")
        }
    })?;
    out.write_all(&text)?;
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_in_the_exporter_toolkit_forms() {
        assert_eq!(
            parse_listen_address(":9847").unwrap(),
            vec!["0.0.0.0:9847".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:0").unwrap(),
            vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            parse_listen_address("[::1]:9847").unwrap(),
            vec!["[::1]:9847".parse::<SocketAddr>().unwrap()]
        );
        assert!(parse_listen_address("9847").is_err());
        assert!(parse_listen_address("localhost:notaport").is_err());
    }
}
