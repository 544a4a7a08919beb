//! Command-line flags in the exporter-toolkit style, and the commands they start.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app;

/// What `--version` prints, in the layout of Prometheus components.
pub const VERSION_TEXT: &str = concat!(
    "quarry_exporter, version ",
    env!("CARGO_PKG_VERSION"),
    " (branch: ",
    env!("QUARRY_BRANCH"),
    ", revision: ",
    env!("QUARRY_REVISION"),
    ")\n  build user:       ",
    env!("QUARRY_BUILD_USER"),
    "\n  build date:       ",
    env!("QUARRY_BUILD_DATE"),
    "\n  rustc version:    ",
    env!("QUARRY_RUSTC_VERSION"),
    "\n  platform:         ",
    env!("QUARRY_PLATFORM"),
);

/// `one-shot`'s exit code when a source failed (its metrics are printed all the same); 1 is a
/// config or startup error, as for every command.
pub const ONE_SHOT_SOURCE_FAILED: u8 = 3;

/// The port the exporter listens on when not told otherwise.
pub const DEFAULT_PORT: u16 = 9847;

/// quarry_exporter: turns logs and status pages into Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "quarry_exporter", about, long_about = None, disable_version_flag = true)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "exporter.yaml",
        global = true
    )]
    pub config_file: PathBuf,
    /// Address to listen on; repeat for several. `:PORT` listens on all interfaces.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9847"
    )]
    pub listen: Vec<String>,
    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,
    /// Accept `POST /-/reload` to reload the config (SIGHUP always does).
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Web config file (exporter-toolkit format): TLS, basic auth, headers.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Directory for checkpoints (file offsets and the values of metrics fed by files): a
    /// restart then neither loses nor counts lines twice. Use a persistent, writable volume.
    #[arg(long = "storage.path", value_name = "DIR")]
    pub storage_path: Option<PathBuf>,
    /// Checkpoint at least this often (also before every scrape and at shutdown).
    #[arg(long = "storage.interval", value_name = "DURATION", default_value = "10s",
          value_parser = parse_duration)]
    pub storage_interval: std::time::Duration,
    /// Probes (`/probe` requests) that may fetch and parse at once over all targets; more
    /// wait for a slot within their budget, then fail with `no_slot`.
    #[arg(long = "probe.max-concurrent", value_name = "N",
          default_value_t = crate::probe::DEFAULT_MAX_CONCURRENT as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub probe_max_concurrent: u32,
    /// Probes of one target (scheme, host and port of its URL) that may run at once; more wait
    /// for one of its slots without holding any other, so a hanging target cannot take the
    /// others' slots.
    #[arg(long = "probe.max-per-target", value_name = "N",
          default_value_t = crate::probe::DEFAULT_MAX_PER_TARGET as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub probe_max_per_target: u32,
    /// Bytes of documents all probes may hold at once (taken as bodies arrive, given back
    /// once they are parsed); `KiB`, `MiB` and `GiB` suffixes are accepted.
    #[arg(long = "probe.max-body-bytes-in-flight", value_name = "BYTES", default_value = "64MiB",
          value_parser = parse_bytes)]
    pub probe_max_body_bytes_in_flight: usize,
    /// Taken off Prometheus' scrape timeout (X-Prometheus-Scrape-Timeout-Seconds) so that a
    /// probe answers before Prometheus gives up.
    #[arg(long = "probe.timeout-offset", value_name = "DURATION", default_value = "500ms",
          value_parser = parse_offset)]
    pub probe_timeout_offset: std::time::Duration,
    /// Only log messages at this level or above.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", global = true,
          value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,
    /// Log line format: `logfmt` (`ts=… level=… msg=…`) or `json`, as Prometheus components.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt", global = true,
          value_parser = ["logfmt", "json"])]
    pub log_format: String,
    /// Print the version, revision, branch, build user and date, rustc version and platform.
    #[arg(short = 'V', long = "version", global = true)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the JSON Schema of the config file (for editors: yaml-language-server).
    Schema,
    /// List the bundled grok patterns (name and definition), or show one: its definition, the
    /// fields it captures and its whole expansion (the regex a rule runs).
    Grok {
        /// The pattern to show (default: list them all).
        name: Option<String>,
    },
    /// List the catalog's modules (name, description, the exporter each is a drop-in for), or
    /// show one: what it reads, its parameters and metrics; `--yaml` prints its file to copy.
    Catalog {
        /// The module to show (default: list them all).
        name: Option<String>,
        /// Print the module file itself (to copy and change, then `use:` it by path).
        #[arg(long, requires = "name")]
        yaml: bool,
    },
    /// Read every file source from its beginning and fetch every page source once, and show
    /// why each rule did what it did: the fetch, each rule's first matches with their fields
    /// and what each update made of them (or why it failed), the records no rule matched, the
    /// samples made.
    Explain {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Matches shown in full per rule (the others are counted).
        #[arg(long, default_value_t = 5)]
        matches: usize,
        /// Show records whole (by default they are cut at 240 bytes): a traceback to its end.
        #[arg(long)]
        full: bool,
        /// Show only matches with a failed update, and of them only the failed updates.
        #[arg(long)]
        failed: bool,
        /// Show only matches whose field passes: `FIELD=VALUE`, `FIELD!=VALUE` or
        /// `FIELD~REGEX` (a named group, JSON or logfmt field, derived or built-in field such
        /// as `__stream__`); repeat for several, all must pass.
        #[arg(long = "where", value_name = "FIELD=VALUE",
              value_parser = crate::pipeline::FieldFilter::parse)]
        filters: Vec<crate::pipeline::FieldFilter>,
        /// `text` for a terminal, `json` for tools.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Validate the config file and exit: 0 when valid, 1 with every error otherwise.
    Check,
    /// Read every file source from its beginning to its end, fetch every page source once,
    /// print the metrics and exit: 0, or 3 when a source failed (a fetch or document failed, or
    /// paths matched no file), 1 for a config error.
    OneShot {
        /// Include the exporter's own quarry_* metrics (lines, matches, errors).
        #[arg(long = "self-metrics")]
        self_metrics: bool,
        /// Threads per file source: 2 runs its rules' matchers on a second thread, a batch of
        /// lines ahead of the one that reads them and applies the matches in order (the same
        /// output, sooner on a large file; sources with only regex or grok rules); 1 reads on
        /// one thread. Default: 2 on a machine with two cores or more.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
        threads: Option<u8>,
    },
    /// Read a sample (a log file, a page's URL, or `-` for standard input), recognise what it
    /// is, and print a starter config for it: metrics named by Prometheus' conventions, rules
    /// in the reader that fits, examples cut from the sample. What was recognised, why, and
    /// what was not understood are comments at its top. It passes `check`.
    Suggest {
        /// A file, an http(s) URL, or `-` (standard input).
        #[arg(value_name = "PATH|URL|-")]
        sample: String,
        /// Prefix of metric names and the source's name (default: from the sample's name and
        /// format, such as `http` for access logs).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Convert another exporter's config (json_exporter's modules, grok_exporter's metrics,
    /// what can be converted of an mtail program) into an equivalent config for this one, printed with comments saying what was
    /// converted and what could not be. Exits 1 when the result would not pass `check` (its
    /// errors are comments at its top).
    Migrate {
        /// The exporter the config (or program) is for.
        #[arg(long, value_name = "EXPORTER", value_parser = ["json_exporter", "grok_exporter", "mtail"])]
        from: String,
        /// Its config file. Relative paths in it (grok pattern directories) are looked for
        /// from the current directory, then from the file's.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Print a Grafana dashboard (JSON) for the config: a panel per metric by its type, then
    /// the exporter-health rows.
    Dashboard {
        /// Only the exporter-health dashboard (the same for every config).
        #[arg(long)]
        health: bool,
        /// The dashboard's uid (default: from the config file's name and path, so boards of
        /// different configs never overwrite each other or the bundled ones).
        #[arg(long)]
        uid: Option<String>,
        /// The dashboard's title (default: from the config file's name).
        #[arg(long)]
        title: Option<String>,
    },
}

/// `migrate`: prints the converted config; exit 1 when it would not pass `check` (or the file
/// cannot be read or converted).
fn migrate(from: &str, file: &std::path::Path) -> ExitCode {
    let from = crate::migrate::From::parse(from).expect("clap checked the value");
    let result = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: {e}", file.display()))
        .and_then(|text| {
            let cwd = std::env::current_dir().unwrap_or_default();
            crate::migrate::migrate(from, &text, file, &cwd)
                .map_err(|e| format!("{}: {e}", file.display()))
        });
    match result {
        Err(e) => {
            crate::logging::print_err(&e);
            ExitCode::from(1)
        }
        Ok(outcome) => {
            if print_out(outcome.yaml.trim_end()).is_err() {
                return ExitCode::from(1);
            }
            if outcome.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                crate::logging::print_err(&format!(
                    "the converted config does not pass check yet ({} error(s), listed at its top)",
                    outcome.errors.len()
                ));
                ExitCode::from(1)
            }
        }
    }
}

/// Writes a command's output to stdout; a closed stdout is an error, not a panic.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))
}

/// Parses the command line and runs; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        return match print_out(VERSION_TEXT) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    crate::logging::init(&cli.log_level, &cli.log_format);
    if let Some(Command::Schema) = &cli.command {
        return finish(
            serde_json::to_string_pretty(&crate::config::schema::schema())
                .map_err(anyhow::Error::from)
                .and_then(|text| print_out(&text)),
        );
    }
    if let Some(Command::Grok { name }) = &cli.command {
        // The bundled patterns: no config is needed.
        return finish(grok_text(name.as_deref()).and_then(|text| print_out(text.trim_end())));
    }
    if let Some(Command::Catalog { name, yaml }) = &cli.command {
        // The embedded catalog: no config is needed.
        return finish(match (name, yaml) {
            (None, _) => print_out(crate::catalog::list_text().trim_end()),
            (Some(name), false) => {
                crate::catalog::show_text(name).and_then(|text| print_out(text.trim_end()))
            }
            (Some(name), true) => {
                crate::catalog::yaml_text(name).and_then(|text| print_out(text.trim_end()))
            }
        });
    }
    if let Some(Command::Suggest { sample, prefix }) = &cli.command {
        // A sample, not a config: nothing is loaded.
        return finish(read_sample(sample).and_then(|(text, origin)| {
            let options = crate::suggest::Options {
                prefix: prefix.clone(),
            };
            let s = crate::suggest::suggest(&text, &origin, &options);
            print_out(s.yaml.trim_end())
        }));
    }
    if let Some(Command::Migrate { from, file }) = &cli.command {
        // Another exporter's config, not ours: nothing is loaded.
        return migrate(from, file);
    }
    if let Some(Command::Dashboard { health: true, .. }) = &cli.command {
        // The health dashboard is the same for every config: none is needed.
        return finish(
            serde_json::to_string_pretty(&crate::dashboard::health())
                .map_err(anyhow::Error::from)
                .and_then(|text| print_out(&text)),
        );
    }
    let config = match app::load(&cli.config_file) {
        Ok(c) => c,
        Err(errors) => {
            crate::logging::print_err(&errors.to_string());
            let n = errors.errors.len();
            crate::logging::print_err(&format!(
                "{n} error{} in {}",
                if n == 1 { "" } else { "s" },
                errors.file
            ));
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Some(Command::Schema)
        | Some(Command::Suggest { .. })
        | Some(Command::Grok { .. })
        | Some(Command::Catalog { .. })
        | Some(Command::Migrate { .. }) => Ok(()),
        Some(Command::Explain {
            source,
            matches,
            full,
            failed,
            filters,
            output,
        }) => {
            let options = crate::pipeline::TraceOptions {
                limit: matches,
                full,
                failed_only: failed,
                filters,
            };
            crate::explain::explain(&cli.config_file, &config, source.as_deref(), &options)
        }
        .and_then(|sources| {
            if output == "json" {
                serde_json::to_string_pretty(&sources)
                    .map_err(anyhow::Error::from)
                    .and_then(|text| print_out(&text))
            } else {
                print_out(crate::explain::render_text(&sources).trim_end())
            }
        }),
        Some(Command::Check) => {
            let rules: usize = config
                .sources
                .iter()
                .chain(&config.modules)
                .map(|s| s.rules.len())
                .sum();
            let mut modules = match config.modules.len() {
                0 => String::new(),
                1 => ", 1 probe module".to_owned(),
                n => format!(", {n} probe modules"),
            };
            if !config.uses.is_empty() {
                let names: Vec<String> = config
                    .uses
                    .iter()
                    .map(|u| format!("{} ({})", u.instance, u.file))
                    .collect();
                modules.push_str(&format!(", using {}", names.join(", ")));
            }
            print_out(&format!(
                "{}: OK ({} metrics, {} sources{modules}, {} rules)",
                cli.config_file.display(),
                config.metrics.len(),
                config.sources.len(),
                rules
            ))
        }
        Some(Command::Dashboard { health, uid, title }) => {
            let board = if health {
                crate::dashboard::health()
            } else {
                let uid = uid.unwrap_or_else(|| crate::dashboard::default_uid(&cli.config_file));
                let title =
                    title.unwrap_or_else(|| crate::dashboard::default_title(&cli.config_file));
                crate::dashboard::for_config(&config, &uid, &title)
            };
            serde_json::to_string_pretty(&board)
                .map_err(anyhow::Error::from)
                .and_then(|text| print_out(&text))
        }
        Some(Command::OneShot {
            self_metrics,
            threads,
        }) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let match_ahead = threads.map_or(cores >= 2, |n| n >= 2);
            match app::one_shot(
                &cli.config_file,
                config,
                self_metrics,
                match_ahead,
                &mut std::io::stdout().lock(),
            ) {
                Ok(failures) if !failures.is_empty() => {
                    for f in &failures {
                        crate::logging::print_err(&format!("source {:?}: {}", f.source, f.why));
                    }
                    let n = failures.len();
                    crate::logging::print_err(&format!(
                        "{n} source{} failed; the metrics above lack what {} would have given",
                        if n == 1 { "" } else { "s" },
                        if n == 1 { "it" } else { "they" }
                    ));
                    return ExitCode::from(ONE_SHOT_SOURCE_FAILED);
                }
                other => other.map(|_| ()),
            }
        }
        None => listen_addresses(&cli.listen).and_then(|listen| {
            app::run(
                app::RunOptions {
                    config_file: cli.config_file.clone(),
                    listen,
                    telemetry_path: cli.telemetry_path.clone(),
                    enable_lifecycle: cli.enable_lifecycle,
                    web_config: cli.web_config.clone(),
                    storage: cli.storage_path.clone(),
                    storage_interval: cli.storage_interval,
                    probe: crate::probe::ProbeOptions {
                        max_concurrent: cli.probe_max_concurrent as usize,
                        max_per_target: cli.probe_max_per_target as usize,
                        max_body_bytes_in_flight: cli.probe_max_body_bytes_in_flight,
                        timeout_offset: cli.probe_timeout_offset,
                    },
                },
                config,
            )
        }),
    };
    finish(result)
}

/// What `quarry_exporter grok [NAME]` prints: every bundled pattern as `NAME  definition`, or
/// one with its fields and expansion.
fn grok_text(name: Option<&str>) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut t = String::new();
    match name {
        None => {
            let width = crate::grok::bundled_patterns()
                .map(|(n, _)| n.len())
                .max()
                .unwrap_or(0);
            for (n, d) in crate::grok::bundled_patterns() {
                let _ = writeln!(t, "{n:width$}  {d}");
            }
        }
        Some(name) => {
            let p = crate::grok::describe(name).map_err(|e| anyhow::anyhow!(e))?;
            let _ = writeln!(t, "name: {}", p.name);
            let _ = writeln!(t, "definition: {}", p.definition);
            let fields = if p.fields.is_empty() {
                format!("(none: write %{{{}:field}} to capture it)", p.name)
            } else {
                p.fields.join(", ")
            };
            let _ = writeln!(t, "fields: {fields}");
            let _ = writeln!(t, "regex: {}", p.regex);
        }
    }
    Ok(t)
}

/// Most of a sample `suggest` reads (a log's first lines are what it looks at).
const MAX_SAMPLE_BYTES: u64 = 16 << 20;

/// The sample `suggest` reads: a file, a URL's body, or standard input (each at most
/// [`MAX_SAMPLE_BYTES`]; text that is not UTF-8 has its bad bytes replaced).
fn read_sample(sample: &str) -> anyhow::Result<(String, crate::suggest::Origin)> {
    use crate::suggest::Origin;
    use std::io::Read;
    let mut bytes = Vec::new();
    let origin = if sample == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_SAMPLE_BYTES)
            .read_to_end(&mut bytes)?;
        Origin::Stdin
    } else if sample.starts_with("http://") || sample.starts_with("https://") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        bytes = runtime
            .block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()?;
                let response = client.get(sample).send().await?.error_for_status()?;
                let mut body = Vec::new();
                let mut response = response;
                while let Some(chunk) = response.chunk().await? {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > MAX_SAMPLE_BYTES {
                        body.truncate(MAX_SAMPLE_BYTES as usize);
                        break;
                    }
                }
                anyhow::Ok(body)
            })
            .map_err(|e| anyhow::anyhow!("fetching {sample}: {e:#}"))?;
        Origin::Url(sample.to_owned())
    } else {
        std::fs::File::open(sample)
            .and_then(|f| f.take(MAX_SAMPLE_BYTES).read_to_end(&mut bytes))
            .map_err(|e| anyhow::anyhow!("reading {sample}: {e}"))?;
        Origin::File(PathBuf::from(sample))
    };
    Ok((String::from_utf8_lossy(&bytes).into_owned(), origin))
}

/// The exit code of a command's result; an error is logged.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match crate::config::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e),
    }
}

fn parse_offset(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

/// A size in bytes: a whole number, optionally with `KiB`, `MiB` or `GiB`; more than 0.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => return Err(format!("unknown unit {other:?} (use KiB, MiB or GiB)")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 64MiB"))?;
    match n.checked_mul(1 << shift) {
        Some(0) => Err("must be more than 0".into()),
        Some(v) => Ok(v),
        None => Err(format!("{text:?} is too large")),
    }
}

fn listen_addresses(values: &[String]) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let mut out = Vec::new();
    for v in values {
        out.extend(app::parse_listen_address(v)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        for bad in ["0", "0MiB", "", "MiB", "64MB", "-1", "1.5MiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
