//! The status board: `/status` (a page for a wall screen), `/status.json` (the same, for
//! tools and for the page's own updates) and `/status/badge.svg` (SVG badges to embed).
//!
//! Every state metric on the board is a list of components, one per label set, read from the
//! registry's families at each request (the families stay the only owner of series): each
//! with its state (coloured by its position in the declared states, `unknown` grey), how long
//! it has been in it, a timeline of the last hours and its shares of time over a day and a
//! week ([`history`]), the health of the sources that feed its metric, and links. Components
//! are grouped by metric, and by a label's value with `status.group_by`, the worst first.
//!
//! A [`Plan`] is made from the config (and replaced on reload); [`snapshot`] makes a
//! [`Board`], which [`page`] renders as HTML and serde as JSON (its shape is versioned:
//! [`JSON_VERSION`], documented in CONFIG.md, checked by a golden test).

pub mod badge;
pub mod history;
pub mod page;
pub mod palette;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::config::template::{self, Piece};
use crate::config::{Config, MetricKind, UNKNOWN_STATE};
use crate::registry::{Families, KEY_SEPARATOR};
use crate::status::SharedStatus;
pub use history::History;
pub use palette::Tone;

/// The version of `/status.json`'s shape; a change that removes or renames a field raises it.
pub const JSON_VERSION: u32 = 1;
/// `status.refresh` when the config does not say.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(10);
/// `status.timeline` when the config does not say.
pub const DEFAULT_TIMELINE: Duration = Duration::from_secs(6 * 3600);
/// `status.title` when the config does not say.
pub const DEFAULT_TITLE: &str = "Status";

/// A link template on tiles.
#[derive(Debug, Clone)]
pub struct LinkPlan {
    pub title: String,
    pieces: Vec<Piece>,
    metrics: Option<Vec<String>>,
}

/// What the board shows, made from a validated config.
#[derive(Debug, Clone)]
pub struct Plan {
    pub title: String,
    /// The state metrics on the board, in config order.
    pub metrics: Vec<String>,
    pub group_by: Option<String>,
    pub refresh: Duration,
    pub timeline: Duration,
    pub links: Vec<LinkPlan>,
    /// (metric, title) of each headline.
    pub headlines: Vec<(String, String)>,
    /// metric → the sources whose rules update it.
    pub sources_of: HashMap<String, Vec<String>>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan::build(&Config::default())
    }
}

impl Plan {
    /// The plan of `config` (validated: its metrics exist and are state metrics).
    pub fn build(config: &Config) -> Plan {
        let s = &config.status;
        let fed = Config::metrics_fed_by(&config.sources);
        let metrics = match &s.metrics {
            Some(list) => list.clone(),
            None => config
                .metrics
                .iter()
                .filter(|m| m.kind == MetricKind::State && fed.contains(m.name.as_str()))
                .map(|m| m.name.clone())
                .collect(),
        };
        let mut sources_of: HashMap<String, Vec<String>> = HashMap::new();
        for source in &config.sources {
            for u in source.rules.iter().flat_map(|r| r.update.iter()) {
                let list = sources_of.entry(u.metric.clone()).or_default();
                if !list.contains(&source.name) {
                    list.push(source.name.clone());
                }
            }
        }
        Plan {
            title: s.title.clone().unwrap_or_else(|| DEFAULT_TITLE.to_owned()),
            metrics,
            group_by: s.group_by.clone(),
            refresh: s.refresh.unwrap_or(DEFAULT_REFRESH),
            timeline: s.timeline.unwrap_or(DEFAULT_TIMELINE),
            links: s
                .links
                .iter()
                .map(|l| LinkPlan {
                    title: l.title.clone(),
                    pieces: template::parse(&l.url).unwrap_or_default(),
                    metrics: l.metrics.clone(),
                })
                .collect(),
            headlines: s
                .headlines
                .iter()
                .map(|h| {
                    (
                        h.metric.clone(),
                        h.title.clone().unwrap_or_else(|| h.metric.clone()),
                    )
                })
                .collect(),
            sources_of,
        }
    }

    /// The headline metrics' names.
    pub fn headline_metrics(&self) -> Vec<String> {
        self.headlines.iter().map(|(m, _)| m.clone()).collect()
    }
}

/// A source's health as the board shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHealth {
    pub source: String,
    /// `true` after a successful fetch (page sources) or while no error is pending (file
    /// sources); `null` before a page source's first fetch.
    pub up: Option<bool>,
    /// The last error, `reason: message`, while failing.
    pub error: Option<String>,
}

/// Every source's health, by name, from the landing page's status snapshots.
pub fn health(statuses: &[SharedStatus]) -> HashMap<String, SourceHealth> {
    statuses
        .iter()
        .map(|s| {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            let (up, error) = if s.reads_lines {
                (Some(s.last_error.is_none()), s.last_error.clone())
            } else {
                match &s.fetch {
                    None => (None, None),
                    Some(f) => (Some(f.ok), f.error.clone()),
                }
            };
            (
                s.name.clone(),
                SourceHealth {
                    source: s.name.clone(),
                    up,
                    error,
                },
            )
        })
        .collect()
}

/// `/status.json` (version [`JSON_VERSION`]).
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    pub version: u32,
    pub title: String,
    /// When this was made, unix seconds (durations are relative to it, not to a reader's
    /// clock).
    pub now: u64,
    pub refresh_seconds: f64,
    pub timeline_seconds: u64,
    /// The worst component's state over the whole board.
    pub overall: Verdict,
    /// Components per state, worst first.
    pub summary: Vec<Count>,
    pub headlines: Vec<Headline>,
    pub groups: Vec<Group>,
}

/// A worst state and where its badge is.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The state's name (`none` when there is no component).
    pub state: String,
    pub tone: &'static str,
    pub badge: String,
}

/// How many components are in one state.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub state: String,
    pub tone: &'static str,
    pub count: usize,
}

/// A headline gauge.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    pub metric: String,
    pub title: String,
    pub series: Vec<HeadlineSeries>,
}

/// One series of a headline, with its samples of the last hour ([unix seconds, value]).
#[derive(Debug, Clone, Serialize)]
pub struct HeadlineSeries {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub samples: Vec<(u64, f64)>,
}

/// A section: the components of one value of `group_by` (or all, without it).
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// `{"label": "site", "value": "eu"}`; `null` for metrics without the label (or without
    /// `group_by`).
    pub group: Option<GroupKey>,
    pub verdict: Verdict,
    pub metrics: Vec<MetricBlock>,
}

/// A group's label and value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub label: String,
    pub value: String,
}

/// One metric's components in a group.
#[derive(Debug, Clone, Serialize)]
pub struct MetricBlock {
    pub metric: String,
    pub help: String,
    /// Declared states, best first, then `unknown`.
    pub states: Vec<String>,
    /// The sources whose rules update this metric.
    pub sources: Vec<SourceHealth>,
    pub components: Vec<Component>,
}

/// One tile.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// `metric{label="value",...}`.
    pub id: String,
    /// The label values (less the group's), as the tile names it.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    /// Position among `states`.
    pub level: usize,
    pub tone: &'static str,
    /// In this state since (unix seconds); `null` when no history is kept for it.
    pub since: Option<u64>,
    pub timeline: Vec<history::Segment>,
    pub share: Shares,
    pub links: Vec<Link>,
    pub badge: String,
}

/// Shares of time in each state.
#[derive(Debug, Clone, Serialize)]
pub struct Shares {
    pub day: history::Share,
    pub week: history::Share,
}

/// A link of a tile.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub title: String,
    pub url: String,
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn badge_url(metric: Option<&str>, labels: &[(&str, &str)]) -> String {
    let mut q: Vec<String> = Vec::new();
    if let Some(m) = metric {
        q.push(format!("metric={}", encode(m)));
    }
    for (k, v) in labels {
        q.push(format!("{}={}", encode(k), encode(v)));
    }
    if q.is_empty() {
        "/status/badge.svg".to_owned()
    } else {
        format!("/status/badge.svg?{}", q.join("&"))
    }
}

/// A component before it is placed: its metric, labels and level.
struct Found {
    metric: String,
    key: Box<[u8]>,
    /// (name, value) in declaration order.
    labels: Vec<(String, String)>,
    level: usize,
    declared: usize,
}

/// Every component of the plan's metrics matching `filter` (label name → value; `metric`
/// for the metric), read from `families`.
fn find(plan: &Plan, families: &Families, filter: &[(String, String)]) -> Vec<Found> {
    let mut out = Vec::new();
    for metric in &plan.metrics {
        if filter.iter().any(|(k, v)| k == "metric" && v != metric) {
            continue;
        }
        let Some(family) = families.get(metric) else {
            continue;
        };
        let key_labels = family.key_labels();
        let declared = family.state_names().len();
        let copy = family.copy();
        for i in copy.sorted() {
            let key = copy.key(i as usize);
            let values: Vec<&[u8]> = if key_labels.is_empty() {
                Vec::new()
            } else {
                key.split(|b| *b == KEY_SEPARATOR).collect()
            };
            let by_key: HashMap<&str, String> = key_labels
                .iter()
                .map(String::as_str)
                .zip(
                    values
                        .iter()
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                )
                .collect();
            let matches = filter
                .iter()
                .filter(|(k, _)| k != "metric")
                .all(|(k, v)| by_key.get(k.as_str()) == Some(v));
            if !matches {
                continue;
            }
            let level = copy.values(i as usize)[0];
            let level = if level >= 0.0 {
                (level as usize).min(declared)
            } else {
                declared
            };
            out.push(Found {
                metric: metric.clone(),
                key: key.into(),
                labels: family
                    .label_names
                    .iter()
                    .map(|n| {
                        (
                            n.clone(),
                            by_key.get(n.as_str()).cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
                level,
                declared,
            });
        }
    }
    out
}

/// How bad a level is, for ordering: tone first, then the position within the metric.
type Severity = (Tone, u64);

fn severity(level: usize, declared: usize) -> Severity {
    let fraction = if declared == 0 {
        u64::MAX
    } else {
        (level as u64 * 1_000_000) / declared as u64
    };
    (Tone::of(level, declared), fraction)
}

fn state_name(families: &Families, metric: &str, level: usize) -> String {
    families
        .get(metric)
        .and_then(|f| f.state_names().get(level).cloned())
        .unwrap_or_else(|| UNKNOWN_STATE.to_owned())
}

/// The worst state among `filter`'s components, for a badge: (label text, state, tone), or
/// `None` when nothing matches.
pub fn verdict_of(
    plan: &Plan,
    families: &Families,
    filter: &[(String, String)],
) -> Option<(String, Tone)> {
    let found = find(plan, families, filter);
    let worst = found.iter().max_by_key(|f| severity(f.level, f.declared))?;
    Some((
        state_name(families, &worst.metric, worst.level),
        Tone::of(worst.level, worst.declared),
    ))
}

/// The board as of unix second `now`. `health` is asked after the components' states are
/// read: a page source that fails says so in its status before it marks its states unknown,
/// so a component found unknown for that reason always has its source's failure beside it.
pub fn snapshot(
    plan: &Plan,
    families: &Families,
    health: impl FnOnce() -> HashMap<String, SourceHealth>,
    history: &History,
    now: u64,
) -> Board {
    let window = plan.timeline.as_secs();
    let found = find(plan, families, &[]);
    let health = health();
    // Group, then metric, then components.
    type Ranked = Vec<((Tone, u64), Component)>;
    let mut groups: BTreeMap<Option<GroupKey>, BTreeMap<usize, Ranked>> = BTreeMap::new();
    let mut counts: BTreeMap<String, (Tone, u64, usize)> = BTreeMap::new();
    let mut worst: Option<((Tone, u64), String)> = None;
    for f in &found {
        let state = state_name(families, &f.metric, f.level);
        let sev = severity(f.level, f.declared);
        let tone = sev.0;
        let group = plan.group_by.as_ref().and_then(|g| {
            f.labels
                .iter()
                .find(|(n, _)| n == g)
                .map(|(_, v)| GroupKey {
                    label: g.clone(),
                    value: v.clone(),
                })
        });
        let name_parts: Vec<&str> = f
            .labels
            .iter()
            .filter(|(n, _)| Some(n) != plan.group_by.as_ref() || group.is_none())
            .map(|(_, v)| v.as_str())
            .collect();
        let name = if name_parts.is_empty() {
            f.metric.clone()
        } else {
            name_parts.join(" · ")
        };
        let labels: BTreeMap<String, String> = f.labels.iter().cloned().collect();
        let id = format!(
            "{}{{{}}}",
            f.metric,
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let past = history.past(&f.metric, &f.key, now, window);
        let mut links = Vec::new();
        for source in plan.sources_of.get(&f.metric).into_iter().flatten() {
            links.push(Link {
                title: format!("source {source}"),
                url: format!("/#source-{}", encode(source)),
            });
        }
        for l in &plan.links {
            if l.metrics.as_ref().is_some_and(|m| !m.contains(&f.metric)) {
                continue;
            }
            let mut url = String::new();
            let mut complete = true;
            for p in &l.pieces {
                match p {
                    Piece::Literal(t) => url.push_str(t),
                    Piece::Field(n) if n == "metric" => url.push_str(&encode(&f.metric)),
                    Piece::Field(n) if n == "state" => url.push_str(&encode(&state)),
                    Piece::Field(n) => match labels.get(n) {
                        Some(v) => url.push_str(&encode(v)),
                        None => complete = false,
                    },
                }
            }
            if complete {
                links.push(Link {
                    title: l.title.clone(),
                    url,
                });
            }
        }
        let label_pairs: Vec<(&str, &str)> = f
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let component = Component {
            id,
            name,
            badge: badge_url(Some(&f.metric), &label_pairs),
            labels,
            state: state.clone(),
            level: f.level,
            tone: tone.as_str(),
            since: past.since,
            timeline: past.timeline,
            share: Shares {
                day: past.day,
                week: past.week,
            },
            links,
        };
        let metric_index = plan
            .metrics
            .iter()
            .position(|m| *m == f.metric)
            .unwrap_or(0);
        groups
            .entry(group)
            .or_default()
            .entry(metric_index)
            .or_default()
            .push((sev, component));
        let entry = counts.entry(state.clone()).or_insert((tone, sev.1, 0));
        entry.2 += 1;
        if (entry.0, entry.1) < sev {
            (entry.0, entry.1) = sev;
        }
        if worst.as_ref().is_none_or(|(s, _)| *s < sev) {
            worst = Some((sev, state));
        }
    }
    let mut out_groups: Vec<(Option<(Tone, u64)>, Group)> = Vec::new();
    for (key, metrics) in groups {
        let mut blocks: Vec<(Option<Severity>, usize, MetricBlock)> = Vec::new();
        for (index, mut components) in metrics {
            components.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
            let block_worst = components.first().map(|c| c.0);
            let components: Vec<Component> = components.into_iter().map(|c| c.1).collect();
            let metric = &plan.metrics[index];
            let family = families.get(metric);
            let mut states: Vec<String> =
                family.map(|f| f.state_names().to_vec()).unwrap_or_default();
            states.push(UNKNOWN_STATE.to_owned());
            blocks.push((
                block_worst,
                index,
                MetricBlock {
                    metric: metric.clone(),
                    help: family.map(|f| f.help().to_owned()).unwrap_or_default(),
                    states,
                    sources: plan
                        .sources_of
                        .get(metric)
                        .into_iter()
                        .flatten()
                        .map(|s| {
                            health.get(s).cloned().unwrap_or(SourceHealth {
                                source: s.clone(),
                                up: None,
                                error: None,
                            })
                        })
                        .collect(),
                    components,
                },
            ));
        }
        blocks.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let group_worst = blocks.first().and_then(|b| b.0);
        let first = blocks.first().and_then(|b| b.2.components.first());
        let verdict = Verdict {
            state: first.map_or("none".to_owned(), |c| c.state.clone()),
            tone: first.map_or(Tone::Unknown.as_str(), |c| c.tone),
            badge: match &key {
                Some(g) => badge_url(None, &[(&g.label, &g.value)]),
                None => "/status/badge.svg".to_owned(),
            },
        };
        out_groups.push((
            group_worst,
            Group {
                group: key,
                verdict,
                metrics: blocks.into_iter().map(|b| b.2).collect(),
            },
        ));
    }
    // Worst first; named groups in name order, the ungrouped last among equals.
    out_groups.sort_by(|a, b| {
        b.0.cmp(&a.0).then_with(|| match (&a.1.group, &b.1.group) {
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (x, y) => x.cmp(y),
        })
    });
    let mut summary: Vec<((Tone, u64), Count)> = counts
        .into_iter()
        .map(|(state, (tone, fraction, count))| {
            let tone_name = tone.as_str();
            (
                (tone, fraction),
                Count {
                    state,
                    tone: tone_name,
                    count,
                },
            )
        })
        .collect();
    summary.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.state.cmp(&b.1.state)));
    let summary = summary.into_iter().map(|(_, c)| c).collect();
    let headlines = plan
        .headlines
        .iter()
        .filter_map(|(metric, title)| {
            let family = families.get(metric)?;
            let copy = family.copy();
            let key_labels = family.key_labels();
            let series = copy
                .sorted()
                .into_iter()
                .take(history::MAX_HEADLINE_SERIES)
                .map(|i| {
                    let key = copy.key(i as usize);
                    let labels = if key_labels.is_empty() {
                        BTreeMap::new()
                    } else {
                        key_labels
                            .iter()
                            .cloned()
                            .zip(
                                key.split(|b| *b == KEY_SEPARATOR)
                                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                            )
                            .collect()
                    };
                    HeadlineSeries {
                        labels,
                        value: copy.values(i as usize)[0],
                        samples: history.samples(metric, key),
                    }
                })
                .collect();
            Some(Headline {
                metric: metric.clone(),
                title: title.clone(),
                series,
            })
        })
        .collect();
    Board {
        version: JSON_VERSION,
        title: plan.title.clone(),
        now,
        refresh_seconds: plan.refresh.as_secs_f64(),
        timeline_seconds: window,
        overall: Verdict {
            state: worst.as_ref().map_or("none".to_owned(), |(_, s)| s.clone()),
            tone: worst.map_or(Tone::Unknown, |(s, _)| s.0).as_str(),
            badge: "/status/badge.svg".to_owned(),
        },
        summary,
        headlines,
        groups: out_groups.into_iter().map(|(_, g)| g).collect(),
    }
}

/// `3m 20s`, `2h 5m`, `3d 4h`: how long, to two units.
pub fn duration_text(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The pairs of a query string, percent-decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://board.invalid/").expect("a valid URL");
    url.set_query(Some(query));
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The badge of the components `filter` selects (`metric=M`, and label `name=value` pairs;
/// none: the whole board): its HTTP status (404 when nothing matches) and SVG.
pub fn badge_for(
    plan: &Plan,
    families: &Families,
    filter: &[(String, String)],
) -> (hyper::StatusCode, String) {
    let values: Vec<&str> = filter
        .iter()
        .filter(|(k, _)| k != "metric")
        .map(|(_, v)| v.as_str())
        .collect();
    let label = if !values.is_empty() {
        values.join(" · ")
    } else if let Some((_, m)) = filter.iter().find(|(k, _)| k == "metric") {
        m.clone()
    } else {
        plan.title.clone()
    };
    match verdict_of(plan, families, filter) {
        Some((state, tone)) => (hyper::StatusCode::OK, badge::render(&label, &state, tone)),
        None if filter.is_empty() => (
            hyper::StatusCode::OK,
            badge::render(&label, "none", Tone::Unknown),
        ),
        None => (
            hyper::StatusCode::NOT_FOUND,
            badge::render(&label, "not found", Tone::Unknown),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Change;
    use crate::selfmetrics::SelfMetrics;

    const CONFIG: &str = r#"version: 1
metrics:
  - {name: backend_state, type: state, help: Backend servers., labels: [site, server], states: [up, degraded, maintenance, down]}
  - {name: disk_state, type: state, help: Disks., labels: [disk], states: [ok, full]}
  - {name: queue_depth, type: gauge, help: Queue depth.}
sources:
  - name: stats
    http: {url: "http://127.0.0.1:9/stats"}
    rules:
      - regex: '(?P<site>\w+) (?P<server>\w+) (?P<state>\w+)'
        update:
          - {metric: backend_state, labels: {site: $site, server: $server}, state: $state}
          - {metric: queue_depth, set: "1"}
  - name: disks
    status_file: {path: disks.txt}
    rules:
      - regex: '(?P<disk>\w+) (?P<state>\w+)'
        update: [{metric: disk_state, labels: {disk: $disk}, state: $state}]
status:
  title: Wall
  group_by: site
  refresh: 5s
  timeline: 1h
  links:
    - {title: Grafana, url: "https://grafana.example/d/x?var-server=$server&state=$state"}
  headlines:
    - {metric: queue_depth, title: Queue}
"#;

    /// The sources' health is read after the states: a state marked unknown while the board is
    /// being made (a page source fails: it writes its status, then marks its states) is either
    /// not seen yet, or seen with its source's failure; never unknown beside a source still up.
    #[test]
    fn the_health_is_read_after_the_states() {
        let config = crate::config::load_str(CONFIG, "t.yaml").unwrap();
        let plan = Plan::build(&config);
        let families = Families::build(&config.metrics, &SelfMetrics::new());
        let disk = families.get("disk_state").unwrap();
        disk.apply(b"sda", Change::State(0));
        let health = || {
            // The source fails between the two reads: status first (still up in this read,
            // which comes before it), then its state.
            disk.set_unknown(b"sda");
            [SourceHealth {
                source: "disks".into(),
                up: Some(true),
                error: None,
            }]
            .into_iter()
            .map(|h| (h.source.clone(), h))
            .collect()
        };
        let board = snapshot(&plan, &families, health, &History::default(), 1_700_000_000);
        let json = serde_json::to_value(&board).unwrap();
        let disk_tile = json["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["metrics"].as_array().unwrap())
            .flat_map(|m| m["components"].as_array().unwrap())
            .find(|c| c["id"].as_str().is_some_and(|id| id.contains("sda")))
            .cloned()
            .expect("the disk's tile");
        assert_ne!(disk_tile["state"], "unknown", "{disk_tile:#}");
    }

    /// `/status.json` of a known board at a fixed clock, against `tests/status/board.json`
    /// (`UPDATE_GOLDEN=1` rewrites it): the documented, versioned shape.
    #[test]
    fn the_json_shape_is_the_golden_one() {
        let config = crate::config::load_str(CONFIG, "t.yaml").unwrap();
        let plan = Plan::build(&config);
        let families = Families::build(&config.metrics, &SelfMetrics::new());
        let history = History::default();
        let backend = families.get("backend_state").unwrap();
        let disk = families.get("disk_state").unwrap();
        // Keys are in alphabetical label order: server, then site.
        let key = |site: &str, server: &str| {
            let mut out = server.as_bytes().to_vec();
            out.push(KEY_SEPARATOR);
            out.extend_from_slice(site.as_bytes());
            out
        };
        let metrics = plan.metrics.clone();
        let headlines = plan.headline_metrics();
        let t0 = 1_700_000_000;
        backend.apply(&key("eu", "web1"), Change::State(0));
        backend.apply(&key("eu", "web2"), Change::State(0));
        backend.apply(&key("us", "web3"), Change::State(0));
        disk.apply(b"sda", Change::State(0));
        families
            .get("queue_depth")
            .unwrap()
            .apply(b"", Change::Set(4.0));
        history.observe(t0, &families, &metrics, &headlines);
        backend.apply(&key("eu", "web2"), Change::State(1));
        families
            .get("queue_depth")
            .unwrap()
            .apply(b"", Change::Set(7.5));
        history.observe(t0 + 600, &families, &metrics, &headlines);
        backend.apply(&key("us", "web3"), Change::State(3));
        disk.set_unknown(b"sda");
        history.observe(t0 + 1200, &families, &metrics, &headlines);
        let health: HashMap<String, SourceHealth> = [
            SourceHealth {
                source: "stats".into(),
                up: Some(true),
                error: None,
            },
            SourceHealth {
                source: "disks".into(),
                up: Some(false),
                error: Some("http_status: HTTP 500".into()),
            },
        ]
        .into_iter()
        .map(|h| (h.source.clone(), h))
        .collect();
        let board = snapshot(&plan, &families, || health, &history, t0 + 1800);
        let json = serde_json::to_string_pretty(&board).unwrap() + "\n";
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status/board.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &json).unwrap();
        }
        let expected = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            json == expected,
            "/status.json changed (UPDATE_GOLDEN=1 rewrites {}; raise JSON_VERSION if a field went or changed meaning):\n{json}",
            file.display()
        );
        // Worst first: the unknown disk (its source failing), then the us site (down), then eu.
        let order: Vec<(Option<&str>, &str)> = board
            .groups
            .iter()
            .map(|g| {
                (
                    g.group.as_ref().map(|k| k.value.as_str()),
                    g.verdict.state.as_str(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                (None, "unknown"),
                (Some("us"), "down"),
                (Some("eu"), "degraded")
            ]
        );
        // The page renders every tile as a list item with its state as text.
        assert_eq!(
            page::board_html(&board)
                .matches("<li class=\"tile ")
                .count(),
            4
        );
        let page = page::render(&board);
        assert!(page.contains("<span class=\"st\">degraded</span>"));
        assert!(
            page.contains("source disks: http_status: HTTP 500"),
            "{page}"
        );
        assert!(
            page.contains("https://grafana.example/d/x?var-server=web2&amp;state=degraded"),
            "{page}"
        );
    }

    #[test]
    fn badges_take_the_worst_of_what_the_query_selects() {
        let config = crate::config::load_str(CONFIG, "t.yaml").unwrap();
        let plan = Plan::build(&config);
        let families = Families::build(&config.metrics, &SelfMetrics::new());
        let backend = families.get("backend_state").unwrap();
        backend.apply(b"web1\xFFeu", Change::State(0));
        backend.apply(b"web2\xFFeu", Change::State(2));
        let q = |s: &str| query_pairs(s);
        let (status, svg) = badge_for(&plan, &families, &q("site=eu"));
        assert_eq!(status, hyper::StatusCode::OK);
        assert!(svg.contains("<title>eu: maintenance</title>"), "{svg}");
        let (_, svg) = badge_for(&plan, &families, &q("metric=backend_state&server=web1"));
        assert!(svg.contains("<title>web1: up</title>"), "{svg}");
        let (status, svg) = badge_for(&plan, &families, &q("site=mars"));
        assert_eq!(status, hyper::StatusCode::NOT_FOUND);
        assert!(svg.contains("not found"), "{svg}");
        let (_, svg) = badge_for(&plan, &families, &[]);
        assert!(svg.contains("<title>Wall: maintenance</title>"), "{svg}");
    }
}
