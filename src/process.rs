//! The standard `process_*` metrics, read from `/proc/self` at each scrape, with the names,
//! HELP texts, types and precision of the Go client (client_golang), which dashboards and
//! alerts are written against.
//!
//! The prometheus crate's own process collector divides the CPU ticks by the tick rate in
//! integers: `process_cpu_seconds_total` stayed 0 for the first second of CPU and then moved in
//! whole seconds, so `rate()` of an exporter that uses a few percent of a core read 0 or jumps.
//! Here it is ticks ÷ `sysconf(_SC_CLK_TCK)` as a float (0.01 s resolution, as client_golang
//! gives), and the start time keeps its fraction too. It is a collector of that crate's
//! registry, so it is encoded and merged with everything else as before.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};

/// One `process_*` family: name, HELP (client_golang's texts) and type.
struct Spec {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
}

const CPU: usize = 0;
const OPEN_FDS: usize = 1;
const MAX_FDS: usize = 2;
const VSIZE: usize = 3;
const VSIZE_MAX: usize = 4;
const RSS: usize = 5;
const START: usize = 6;
const THREADS: usize = 7;

const SPECS: [Spec; 8] = [
    Spec {
        name: "process_cpu_seconds_total",
        help: "Total user and system CPU time spent in seconds.",
        kind: MetricType::COUNTER,
    },
    Spec {
        name: "process_open_fds",
        help: "Number of open file descriptors.",
        kind: MetricType::GAUGE,
    },
    Spec {
        name: "process_max_fds",
        help: "Maximum number of open file descriptors.",
        kind: MetricType::GAUGE,
    },
    Spec {
        name: "process_virtual_memory_bytes",
        help: "Virtual memory size in bytes.",
        kind: MetricType::GAUGE,
    },
    Spec {
        name: "process_virtual_memory_max_bytes",
        help: "Maximum amount of virtual memory available in bytes.",
        kind: MetricType::GAUGE,
    },
    Spec {
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes.",
        kind: MetricType::GAUGE,
    },
    Spec {
        name: "process_start_time_seconds",
        help: "Start time of the process since unix epoch in seconds.",
        kind: MetricType::GAUGE,
    },
    Spec {
        name: "process_threads",
        help: "Number of OS threads in the process.",
        kind: MetricType::GAUGE,
    },
];

/// The fields of `/proc/<pid>/stat` this collector uses, in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// User plus system CPU time, in clock ticks (`utime + stime`).
    pub cpu_ticks: u64,
    /// Threads in the process.
    pub threads: u64,
    /// When the process started, in clock ticks after boot.
    pub start_ticks: u64,
    /// Virtual memory size, bytes.
    pub vsize: u64,
    /// Resident set size, pages.
    pub rss_pages: u64,
}

impl Stat {
    /// Parses the one line of `/proc/<pid>/stat`. The command name (field 2) is in
    /// parentheses and may itself contain spaces and `)`, so fields are counted from the last
    /// `)`.
    pub fn parse(line: &str) -> Option<Stat> {
        let rest = &line[line.rfind(')')? + 1..];
        // Fields 3 (state) onwards; proc(5) numbers them from 1.
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            cpu_ticks: field(14)? + field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }

    /// Reads the calling process's stat.
    pub fn read_self() -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of CPU times in `/proc`.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU time in seconds, as client_golang computes it: ticks ÷ tick rate, as a float.
pub fn cpu_seconds(ticks: u64, clock_ticks: f64) -> f64 {
    ticks as f64 / clock_ticks
}

fn page_size() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as f64
    } else {
        4096.0
    }
}

/// The soft limits of open files and of the address space; unlimited is `u64::MAX` as a float,
/// as client_golang (through procfs) exports it.
fn soft_limits() -> (Option<f64>, Option<f64>) {
    // A closure, so the resource's type is whatever this libc's getrlimit takes.
    let read = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit with a valid pointer to an rlimit.
        (unsafe { libc::getrlimit(resource, &mut limit) } == 0).then_some(limit.rlim_cur as f64)
    };
    (read(libc::RLIMIT_NOFILE), read(libc::RLIMIT_AS))
}

/// Seconds since the epoch at boot (`btime` of `/proc/stat`).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(|t| t as f64)
}

/// Open descriptors: the entries of `/proc/self/fd` (the one listing it included, as the Go
/// client counts).
fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

/// The collector of the calling process's `process_*` metrics.
pub struct ProcessCollector {
    descs: Vec<Desc>,
    clock_ticks: f64,
    page_size: f64,
    /// Fixed for the life of the process, so read once.
    start_time: Option<f64>,
}

impl ProcessCollector {
    /// A collector of this process.
    pub fn for_self() -> ProcessCollector {
        let clock_ticks = clock_ticks();
        let start_time = match (boot_time(), Stat::read_self()) {
            (Some(boot), Some(stat)) => Some(boot + cpu_seconds(stat.start_ticks, clock_ticks)),
            _ => None,
        };
        ProcessCollector {
            descs: SPECS
                .iter()
                .map(|s| {
                    Desc::new(s.name.into(), s.help.into(), Vec::new(), Default::default())
                        .expect("a valid process metric name")
                })
                .collect(),
            clock_ticks,
            page_size: page_size(),
            start_time,
        }
    }

    /// Every family with its current value (a family whose source cannot be read is left out,
    /// as client_golang does).
    fn values(&self) -> [Option<f64>; 8] {
        let stat = Stat::read_self();
        let mut v = [None; 8];
        v[CPU] = stat.map(|s| cpu_seconds(s.cpu_ticks, self.clock_ticks));
        v[OPEN_FDS] = open_fds();
        (v[MAX_FDS], v[VSIZE_MAX]) = soft_limits();
        v[VSIZE] = stat.map(|s| s.vsize as f64);
        v[RSS] = stat.map(|s| s.rss_pages as f64 * self.page_size);
        v[START] = self.start_time;
        v[THREADS] = stat.map(|s| s.threads as f64);
        v
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        SPECS
            .iter()
            .zip(self.values())
            .filter_map(|(spec, value)| {
                let value = value?;
                let mut metric = Metric::default();
                if spec.kind == MetricType::COUNTER {
                    let mut c = Counter::default();
                    c.set_value(value);
                    metric.set_counter(c);
                } else {
                    let mut g = Gauge::default();
                    g.set_value(value);
                    metric.set_gauge(g);
                }
                let mut family = MetricFamily::default();
                family.set_name(spec.name.into());
                family.set_help(spec.help.into());
                family.set_field_type(spec.kind);
                family.set_metric(vec![metric]);
                Some(family)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command name with spaces and a `)` does not shift the fields.
    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (quarry) exp) S 1 4242 4242 0 -1 4194560 2710 0 0 0 77 14 0 0 20 0 \
                    9 0 123456 1052672000 3075 18446744073709551615 1 1 0 0 0 0 0 4096 17 1 0 \
                    0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                cpu_ticks: 91,
                threads: 9,
                start_ticks: 123456,
                vsize: 1052672000,
                rss_pages: 3075,
            })
        );
        assert_eq!(Stat::parse("4242 (x"), None);
    }

    /// 91 ticks at 100 Hz are 0.91 s, not 0 (the prometheus crate's integer division).
    #[test]
    fn cpu_time_keeps_its_fraction() {
        assert_eq!(cpu_seconds(91, 100.0), 0.91);
        assert_eq!(cpu_seconds(140, 100.0), 1.4);
    }

    /// The collector's CPU reading lies between two reads of /proc made around it, and every
    /// family the crate's collector had is still there, with its type.
    #[test]
    fn collects_this_process() {
        let collector = ProcessCollector::for_self();
        let ticks = clock_ticks();
        let before = cpu_seconds(Stat::read_self().unwrap().cpu_ticks, ticks);
        let families = collector.collect();
        let after = cpu_seconds(Stat::read_self().unwrap().cpu_ticks, ticks);
        let get = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let cpu = get("process_cpu_seconds_total");
        assert_eq!(cpu.get_field_type(), MetricType::COUNTER);
        let value = cpu.get_metric()[0].get_counter().get_value();
        assert!(
            before <= value && value <= after,
            "{before} <= {value} <= {after}"
        );
        for name in [
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_virtual_memory_max_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_threads",
        ] {
            let family = get(name);
            assert_eq!(family.get_field_type(), MetricType::GAUGE, "{name}");
            assert!(
                family.get_metric()[0].get_gauge().get_value() > 0.0,
                "{name}"
            );
        }
        let registry = prometheus::Registry::new();
        registry.register(Box::new(collector)).unwrap();
    }
}
