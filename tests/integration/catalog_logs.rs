//! Catalog modules that read logs. `postfix` against prometheus-postfix-exporter 0.3 on a log
//! a real Postfix wrote (`tests/fixtures/postfix/`, with how it was made), in each of the
//! timestamp formats the mail log comes in, every sample compared (see `parity.rs`).
//! `openssh` and `postgresql` (no dedicated exporter reads their logs) against a real sshd and
//! a real PostgreSQL on loopback: each count equals what the test did to the server.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::parity::*;

/// Series a log exporter never has in common with the module: their process and runtime
/// series, our self-metrics.
const IGNORED: &[&str] = &["go_", "process_", "promhttp_", "quarry_"];

/// The real Postfix log, in postfix's own `maillog_file` format (`Dec 05 15:29:31 mx ...`).
fn postfix_log() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/postfix/mail.log"),
    )
    .unwrap()
}

/// `log` with its `Mmm DD HH:MM:SS` timestamps rewritten as `format` says: `maillog` (as
/// written), `syslog` (the traditional `Dec  5 15:29:31`, day padded with a space) or
/// `rfc3339` (rsyslog's high-precision `2026-12-05T15:29:31.000000+00:00`).
fn in_format(log: &str, format: &str) -> String {
    let mut out = String::new();
    for line in log.lines() {
        let (stamp, rest) = line.split_at(15);
        let day: u32 = stamp[4..6].parse().unwrap();
        let time = &stamp[7..15];
        let stamp = match format {
            "maillog" => stamp.to_owned(),
            "syslog" => format!("{} {day:>2} {time}", &stamp[..3]),
            "rfc3339" => {
                assert_eq!(&stamp[..3], "Dec");
                format!("2026-12-{day:02}T{time}.000000+00:00")
            }
            _ => unreachable!(),
        };
        out.push_str(&stamp);
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// Whether the log's samples in `theirs`, a scrape of the dedicated exporter, are those of its
/// `previous` scrape (which they then replace); showq's are left out, as it reads them anew on
/// each scrape. A scrape taken while it reads can be torn: its counters are read as they are
/// written out, after its labelled families listed their series, so a scrape can show every
/// counter final and none of the series the same lines made (seen on a busy machine: 33 of 55
/// series, each equal to ours). A comparison waits for two scrapes in a row that agree.
fn settled(previous: &mut Vec<String>, theirs: &str) -> bool {
    let samples: Vec<String> = theirs
        .lines()
        .filter(|l| l.starts_with("postfix_") && !l.starts_with("postfix_showq_"))
        .map(str::to_owned)
        .collect();
    let same = samples == *previous;
    *previous = samples;
    same
}

/// The series the warm-up lines make.
const WARMUP: &str = r#"postfix_unsupported_log_entries_total{service="warmup"}"#;

/// Appends a warm-up line (an unsupported service's, in `format`) to `log` until the dedicated
/// exporter on `port` and `exporter` have both counted one. Both read the log from its end as
/// they first open it: the dedicated one in a goroutine started before it listens, ours at its
/// source's first scan; on a busy machine either may come after any fixed pause, and lines
/// appended before it are not theirs to read.
fn warm_up(log: &Path, format: &str, port: u16, exporter: &Exporter) {
    let line = in_format("Dec 05 15:29:12 mx postfix/warmup[1]: ready\n", format);
    let start = Instant::now();
    loop {
        append(log, &line);
        std::thread::sleep(Duration::from_millis(300));
        let seen = |t: &str| value_in(t, WARMUP).is_some_and(|v| v >= 1.0);
        if seen(&get_text(port, "/metrics")) && seen(&exporter.scrape()) {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{format}: a warm-up line was never counted"
        );
    }
}

/// `text` without the warm-up lines' series: the two exporters may have counted a different
/// number of them.
fn without_warmup(text: String) -> String {
    text.lines()
        .filter(|l| !l.contains(r#"service="warmup""#))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// How many lines of `log` contain every one of `needles`: the test's own count, to check
/// the exporters against something other than each other.
fn count(log: &str, needles: &[&str]) -> f64 {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count() as f64
}

#[test]
fn postfix_module_is_a_drop_in_for_prometheus_postfix_exporter() {
    if !dedicated_installed("prometheus-postfix-exporter") {
        return;
    }
    let real = postfix_log();
    for format in ["maillog", "syslog", "rfc3339"] {
        let dir = tempdir();
        let log = dir.path().join("mail.log");
        std::fs::write(&log, "").unwrap();
        // No showq socket here: both say postfix_up{path} 0 and neither has queue series
        // (the live test below reads a real one).
        let showq = dir.path().join("showq");
        let config = format!(
            "version: 1\nuse:\n  - {{module: postfix, with: {{log: '{}', showq_path: '{}', interval: 200ms}}}}\n",
            log.display(),
            showq.display()
        );
        let exporter = Exporter::start(dir.path(), &config);
        // Both read what is appended after they started. Ours has begun once its showq
        // source has failed a first time (the empty log is followed as soon as it has lines).
        let up = format!(r#"postfix_up{{path="{}"}}"#, showq.display());
        exporter.wait_value(&up, 0.0);
        let dedicated = start_dedicated(
            "prometheus-postfix-exporter",
            &[
                "--web.listen-address=127.0.0.1:{port}",
                &format!("--postfix.logfile_path={}", log.display()),
                &format!("--postfix.showq_path={}", showq.display()),
            ],
            dir.path(),
        );
        warm_up(&log, format, dedicated.1, &exporter);
        let text = in_format(&real, format);
        append(&log, &text);

        // Both have read every line once each counts the log's last line, a deferred smtp
        // delivery (the lines are read in order); then the comparison must hold.
        let last = "postfix_smtp_status_deferred";
        let deferred = count(&text, &["postfix/smtp[", ", status=deferred"]);
        assert_eq!(
            text.lines().last().map(|l| l.contains(", status=deferred")),
            Some(true)
        );
        let mut previous = Vec::new();
        let start = Instant::now();
        let parity = loop {
            let theirs = without_warmup(get_text(dedicated.1, "/metrics"));
            let ours = without_warmup(exporter.scrape());
            let read_all = |t: &str| value_in(t, last) == Some(deferred);
            if (settled(&mut previous, &theirs) && read_all(&theirs) && read_all(&ours))
                || start.elapsed() > WAIT
            {
                break compare(&theirs, &ours, IGNORED);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_full_parity(&format!("postfix ({format})"), &parity);
        assert_eq!(parity.reproduced.len(), 55, "{format}: {parity:?}");
        assert_eq!(parity.added, ["postfix_showq_message_size_bytes"]);

        // Neither merely agrees with the other: the counts are the log's.
        let ours = exporter.scrape();
        let value = |series: &str| value_in(&ours, series);
        let smtpd = "postfix/smtpd[";
        assert_eq!(
            value("postfix_smtpd_connects_total"),
            Some(count(&text, &[smtpd, "]: connect from "]))
        );
        assert_eq!(value("postfix_smtpd_connects_total"), Some(9.0));
        assert_eq!(
            value(r#"postfix_smtpd_messages_rejected_total{code="550"}"#),
            Some(count(
                &text,
                &[smtpd, "NOQUEUE: reject: RCPT from ", ": 550 "]
            ))
        );
        assert_eq!(
            value(r#"postfix_smtpd_messages_rejected_total{code="554"}"#),
            Some(1.0)
        );
        assert_eq!(
            value("postfix_qmgr_messages_removed_total"),
            Some(count(&text, &["postfix/qmgr[", ": removed"]))
        );
        assert_eq!(
            value("postfix_qmgr_messages_inserted_size_bytes_sum"),
            Some(
                text.lines()
                    .filter(|l| l.contains("postfix/qmgr["))
                    .filter_map(|l| l.split(", size=").nth(1))
                    .map(|s| s.split(',').next().unwrap().parse::<f64>().unwrap())
                    .sum()
            )
        );
        // Four delays per smtp delivery, all with stage="" as the exporter has them.
        assert_eq!(
            value(r#"postfix_smtp_delivery_delay_seconds_count{stage=""}"#),
            Some(4.0 * count(&text, &["postfix/smtp[", ", delays="]))
        );
        assert_eq!(
            value("postfix_smtp_status_deferred"),
            Some(count(&text, &["postfix/smtp[", ", status=deferred"]))
        );
        assert_eq!(value("postfix_smtp_status_deferred"), Some(2.0));
        assert_eq!(
            value(
                r#"postfix_smtpd_tls_connections_total{algorithm_bits="256",cipher="TLS_AES_256_GCM_SHA384",protocol="TLSv1.3",secret_bits="256",trust="Anonymous"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(r#"postfix_unsupported_log_entries_total{service="discard"}"#),
            Some(count(&text, &["postfix/discard["]))
        );
        assert_eq!(value(&up), Some(0.0));
    }
}

/// `ssh` to the test's sshd on `port` as `user`, with `options` (`-o` pairs and keys); with
/// `password`, through sshpass, which types it at the prompt (once: a second prompt makes
/// sshpass give up). Returns whether the command ran.
fn ssh(port: u16, user: &str, password: Option<&str>, options: &[&str]) -> bool {
    let mut command = match password {
        Some(p) => {
            let mut c = std::process::Command::new("sshpass");
            c.args(["-p", p, "ssh"]);
            c
        }
        None => std::process::Command::new("ssh"),
    };
    command
        .args(["-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
        .args(options)
        .arg(format!("{user}@127.0.0.1"))
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .status
        .success()
}

/// Whether a real sshd can be tested here: as root (sshd checks passwords, and changes user,
/// only as root), with sshd and sshpass installed (required in CI). Says why not.
pub(crate) fn sshd_testable() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: sshd cannot check passwords; skipping");
        return false;
    }
    if !crate::real_servers::installed("sshd") || !Path::new("/usr/bin/sshpass").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "sshpass is required in CI"
        );
        return false;
    }
    true
}

/// A real sshd on loopback (see [`sshd_testable`]), logging to a file at LogLevel VERBOSE,
/// with PAM, `MaxAuthTries 3`, one authorized key and four others; stopped when dropped.
pub(crate) struct Sshd {
    _server: crate::real_servers::Server,
    /// Its port.
    pub(crate) port: u16,
    good: String,
    bad: Vec<String>,
}

/// Starts [`Sshd`] with its keys and config in `d`, logging to `log` (`sshd -E`).
pub(crate) fn start_sshd(d: &Path, log: &Path) -> Sshd {
    use crate::real_servers::{free_port, start};
    let keygen = |name: &str| {
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join(name))
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen {name}");
        path_str(&d.join(name))
    };
    let host_key = keygen("host_key");
    let good = keygen("good_key");
    let bad: Vec<String> = (0..4).map(|i| keygen(&format!("bad_key{i}"))).collect();
    std::fs::copy(d.join("good_key.pub"), d.join("authorized_keys")).unwrap();
    // Its privilege-separation directory, which Debian's package makes at boot.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = free_port();
    // VERBOSE, so that failed publickey attempts are logged too; PAM, so that
    // keyboard-interactive exists (as on Debian). Root's password is not known to anyone
    // here: password logins can only fail.
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM yes\nPermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication yes\nMaxAuthTries 3\nLogLevel VERBOSE\n",
            path_str(&d.join("sshd.pid")),
            path_str(&d.join("authorized_keys")),
        ),
    )
    .unwrap();
    let config = path_str(&d.join("sshd_config"));
    let server = start(
        "sshd",
        &["-D", "-f", &config, "-E", &path_str(log)],
        port,
        d,
    );
    Sshd {
        _server: server,
        port,
        good,
        bad,
    }
}

impl Sshd {
    /// The attempts the openssh test counts: two logins with the authorized key; one with a
    /// key that is not (one failed publickey, then the client closes); two wrong passwords,
    /// one for a user that does not exist, one keyboard-interactive; four unauthorized keys
    /// against MaxAuthTries 3 (three failures, then sshd drops it).
    pub(crate) fn attempts(&self) {
        let port = self.port;
        let key_only = [
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            "IdentitiesOnly=yes",
        ];
        let password_only = |method: &str| {
            [
                "-o".to_owned(),
                "PubkeyAuthentication=no".to_owned(),
                "-o".to_owned(),
                format!("PreferredAuthentications={method}"),
                "-o".to_owned(),
                "NumberOfPasswordPrompts=1".to_owned(),
            ]
        };
        let run = |user: &str, password: Option<&str>, options: &[String]| {
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            ssh(port, user, password, &options)
        };
        let with_keys = |keys: &[&str]| {
            let mut o: Vec<String> = key_only.iter().map(|s| (*s).to_owned()).collect();
            for k in keys {
                o.push("-i".to_owned());
                o.push((*k).to_owned());
            }
            o
        };
        for _ in 0..2 {
            assert!(
                run("root", None, &with_keys(&[&self.good])),
                "the good key logs in"
            );
        }
        assert!(!run("root", None, &with_keys(&[&self.bad[0]])));
        let password = password_only("password");
        assert!(!run("root", Some("wrong"), &password));
        assert!(!run("root", Some("wrong"), &password));
        assert!(!run("nosuch", Some("wrong"), &password));
        assert!(!run(
            "root",
            Some("wrong"),
            &password_only("keyboard-interactive")
        ));
        let four: Vec<&str> = self.bad.iter().map(String::as_str).collect();
        assert!(!run("root", None, &with_keys(&four)));
    }
}

#[test]
fn openssh_module_counts_a_real_sshds_logins() {
    if !sshd_testable() {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let log = d.join("auth.log");
    let exporter = Exporter::start(
        d,
        &format!(
            "version: 1\nuse:\n  - {{module: openssh, with: {{log: '{}'}}}}\n",
            path_str(&log)
        ),
    );
    let sshd = start_sshd(d, &log);
    sshd.attempts();

    let expected = [
        (
            r#"sshd_logins_total{method="publickey",result="accepted"}"#,
            2.0,
        ),
        (
            r#"sshd_logins_total{method="publickey",result="failed"}"#,
            1.0 + 3.0,
        ),
        (
            r#"sshd_logins_total{method="password",result="failed"}"#,
            3.0,
        ),
        (
            r#"sshd_logins_total{method="keyboard-interactive",result="failed"}"#,
            1.0,
        ),
        ("sshd_invalid_users_total", 1.0),
        ("sshd_max_auth_attempts_exceeded_total", 1.0),
        // Closed by the client after failing: the bad key, the three passwords, the
        // keyboard-interactive one; dropped by sshd: the fourth key.
        (r#"sshd_preauth_disconnects_total{how="closed"}"#, 5.0),
        (r#"sshd_preauth_disconnects_total{how="dropped"}"#, 1.0),
    ];
    for (series, value) in expected {
        exporter.wait_value(series, value);
    }
    let text = exporter.scrape();
    for series in [
        r#"sshd_logins_total{method="password",result="accepted"}"#,
        r#"sshd_preauth_disconnects_total{how="disconnected"}"#,
        r#"sshd_preauth_disconnects_total{how="timeout"}"#,
    ] {
        assert_eq!(value_in(&text, series), Some(0.0), "{series}");
    }
}

/// The dashboard generator gives every metric of these modules a panel (their dashboard row).
#[test]
fn the_log_modules_get_a_panel_per_metric() {
    let dir = tempdir();
    let file = dir.path().join("exporter.yaml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", out);
        String::from_utf8(out.stdout).unwrap()
    };
    for (module, declared) in [("postfix", 25), ("openssh", 4), ("postgresql", 6)] {
        std::fs::write(&file, format!("version: 1\nuse:\n  - module: {module}\n")).unwrap();
        let board = run(&["--config.file", file.to_str().unwrap(), "dashboard"]);
        let shown = run(&["catalog", module]);
        let metrics: Vec<&str> = shown
            .split("\nmetrics:\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(metrics.len(), declared, "{shown}");
        for metric in metrics {
            assert!(
                board.contains(&format!("{metric}{{job="))
                    || board.contains(&format!("{metric}_bucket{{job=")),
                "no panel reads {metric}"
            );
        }
    }
}

/// The newest PostgreSQL server programs Debian installed (`/usr/lib/postgresql/<v>/bin`).
fn postgresql_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let bin = Path::new("/usr/lib/postgresql")
        .join(versions.last()?.to_string())
        .join("bin");
    bin.join("postgres").exists().then_some(bin)
}

/// A real PostgreSQL on loopback; stopped when dropped.
pub(crate) struct Postgres {
    _server: crate::real_servers::Server,
    /// Its port.
    pub(crate) port: u16,
}

/// The newest installed PostgreSQL's programs, or `None` (saying so; required in CI).
pub(crate) fn postgresql_installed() -> Option<std::path::PathBuf> {
    let bin = postgresql_bin();
    if bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "postgresql is required in CI"
        );
        eprintln!("postgresql not installed; skipping");
    }
    bin
}

/// initdb in `d`, then the server of `bin` on a free loopback port, logging to `log` with
/// Debian's `log_line_prefix` and the settings the module's header asks for
/// (`log_connections`, `log_min_duration_statement = 100`, `log_error_verbosity = verbose`);
/// returns once a first connection (`select 1`, which the log counts) works. As root, both
/// run as the postgres user (they refuse root).
pub(crate) fn start_postgresql(bin: &Path, d: &Path, log: &Path) -> Postgres {
    use crate::real_servers::{free_port, Server};
    // SAFETY: geteuid(2) has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let command = |program: &str| {
        let path = bin.join(program);
        if as_root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    };
    if as_root {
        let ok = std::process::Command::new("chown")
            .args(["postgres", &path_str(d)])
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown postgres");
    }
    let data = d.join("data");
    let out = command("initdb")
        .args(["-A", "trust", "-U", "postgres", "-D", &path_str(&data)])
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {out:?}");
    let port = free_port();
    let stderr = std::fs::File::create(log).unwrap();
    let child = command("postgres")
        .args([
            "-D",
            &path_str(&data),
            "-p",
            &port.to_string(),
            "-k",
            &path_str(d),
        ])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "log_line_prefix=%m [%p] %q%u@%d "])
        .args([
            "-c",
            "log_connections=on",
            "-c",
            "log_min_duration_statement=100",
        ])
        .args(["-c", "log_error_verbosity=verbose"])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let server = Server(child);
    let start = Instant::now();
    // Ready when a first connection works (it counts: one more received and authorized).
    while !psql(port, "postgres", "select 1") {
        assert!(
            start.elapsed() < WAIT,
            "postgres did not start: {}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Postgres {
        _server: server,
        port,
    }
}

/// Runs `sql` on `database` as postgres through psql; whether it succeeded.
pub(crate) fn psql(port: u16, database: &str, sql: &str) -> bool {
    std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-X", "-q", "-d", database, "-c", sql])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn postgresql_module_counts_what_a_real_server_logged() {
    let Some(bin) = postgresql_installed() else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let log = d.join("postgresql.log");
    let exporter = Exporter::start(
        d,
        &format!(
            "version: 1\nuse:\n  - {{module: postgresql, with: {{log: '{}'}}}}\n",
            path_str(&log)
        ),
    );
    let server = start_postgresql(&bin, d, &log);
    let psql = |database: &str, sql: &str| psql(server.port, database, sql);
    let refused = count(
        &std::fs::read_to_string(&log).unwrap(),
        &["connection received: "],
    ) - 1.0;
    for _ in 0..2 {
        assert!(psql("postgres", "select 1"));
    }
    for _ in 0..2 {
        assert!(!psql("postgres", "select * from no_such_table"));
    }
    assert!(!psql("postgres", "select 1/0"));
    assert!(!psql("no_such_database", "select 1"));
    for _ in 0..2 {
        assert!(psql("postgres", "select pg_sleep(0.15)"));
    }
    // 9 connections, and those the server received before it was ready to take them
    // (logged as received, then refused with FATAL 57P03 "the database system is starting up").
    let connections = 9.0;
    for (series, value) in [
        (
            "postgresql_connections_received_total",
            connections + refused,
        ),
        ("postgresql_connections_authorized_total", connections),
        (
            r#"postgresql_errors_total{severity="ERROR",sqlstate_class="42"}"#,
            2.0,
        ),
        (
            r#"postgresql_errors_total{severity="ERROR",sqlstate_class="22"}"#,
            1.0,
        ),
        (
            r#"postgresql_errors_total{severity="FATAL",sqlstate_class="3D"}"#,
            1.0,
        ),
        ("postgresql_slow_statements_total", 2.0),
        ("postgresql_slow_statement_duration_seconds_count", 2.0),
        (
            r#"postgresql_slow_statement_duration_seconds_bucket{le="0.1"}"#,
            0.0,
        ),
        (r#"postgresql_log_messages_total{severity="ERROR"}"#, 3.0),
    ] {
        exporter.wait_value(series, value);
    }
    assert_eq!(
        exporter.value(r#"postgresql_log_messages_total{severity="FATAL"}"#),
        Some(1.0 + refused)
    );
}

/// A Postfix instance with its own config, queue and log directories; stopped when dropped.
pub(crate) struct Postfix {
    config: std::path::PathBuf,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
    }
}

/// One SMTP transaction on `port`: from a local sender to `recipient`.
pub(crate) fn send_mail(port: u16, recipient: &str) {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // Reads one reply (its last line has a space after the code) and checks its code.
    let mut reply = |code: &str| {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                return;
            }
        }
    };
    reply("220");
    for (command, code) in [
        ("EHLO client.quarry.test".to_owned(), "250"),
        ("MAIL FROM:<sender@quarry.test>".to_owned(), "250"),
        (format!("RCPT TO:<{recipient}>"), "250"),
        ("DATA".to_owned(), "354"),
        ("Subject: t\r\n\r\nhello\r\n.".to_owned(), "250"),
        ("QUIT".to_owned(), "221"),
    ] {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        reply(code);
    }
}

/// Whether a real Postfix can be run here: as root (its master runs as root only), with
/// postfix installed. Says why not.
pub(crate) fn postfix_runnable() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0 && Path::new("/usr/sbin/postfix").exists();
    if !ok {
        eprintln!("not root, or postfix missing: skipping the live postfix test");
    }
    ok
}

/// A Postfix instance's config in `d` (`conf/`, queue in `spool/`, `data/`): SMTP on a free
/// loopback port (returned, with the log's path), its own `maillog_file` (`mail.log`, created
/// empty); mail to quarry.test is discarded, mail to deferred.test goes to port 1, where
/// nothing listens, so it stays in the deferred queue, for showq to list. The showq socket
/// is `spool/public/showq`.
pub(crate) fn write_postfix_config(d: &Path) -> (u16, std::path::PathBuf) {
    // Postfix's unprivileged processes walk into the queue directory.
    std::fs::set_permissions(
        d,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    for sub in ["conf", "spool", "data"] {
        std::fs::create_dir(d.join(sub)).unwrap();
    }
    let ok = std::process::Command::new("chown")
        .args(["postfix", &path_str(&d.join("data"))])
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown postfix data");
    let port = crate::real_servers::free_port();
    let log = d.join("mail.log");
    std::fs::write(&log, "").unwrap();
    // Mail to quarry.test is discarded; to deferred.test it goes to port 1, where nothing
    // listens, so it stays in the deferred queue, for showq to list.
    std::fs::write(
        d.join("conf/main.cf"),
        format!(
            "compatibility_level = 3.6\nmyhostname = mx.quarry.test\nmydestination = quarry.test\nqueue_directory = {q}\ndata_directory = {data}\nmaillog_file = {log}\nmaillog_file_prefixes = {dir}\ninet_interfaces = loopback-only\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nalias_maps =\nalias_database =\nlocal_recipient_maps =\nlocal_transport = discard:\ntransport_maps = inline:{{ deferred.test=smtp:[127.0.0.1]:1 }}\nrelay_domains = deferred.test\nsmtpd_relay_restrictions = reject_unauth_destination\n",
            q = path_str(&d.join("spool")),
            data = path_str(&d.join("data")),
            log = path_str(&log),
            dir = path_str(d),
        ),
    )
    .unwrap();
    let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
    let master: String = master
        .lines()
        .map(|l| match l.strip_prefix("smtp      inet") {
            Some(rest) => format!("127.0.0.1:{port} inet{rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(d.join("conf/master.cf"), master).unwrap();
    (port, log)
}

/// Starts the Postfix configured in `d` by [`write_postfix_config`] and waits until it
/// listens on `port` (its log, `log`, shown if not).
pub(crate) fn start_postfix(d: &Path, port: u16, log: &Path) -> Postfix {
    let config = d.join("conf");
    let out = std::process::Command::new("postfix")
        .arg("-c")
        .arg(&config)
        .arg("start")
        .output()
        .unwrap();
    let postfix = Postfix { config };
    assert!(out.status.success(), "postfix start: {out:?}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < WAIT,
            "postfix did not listen: {}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    postfix
}

#[test]
fn postfix_module_reads_a_real_postfixs_log_and_showq() {
    if !postfix_runnable() || !dedicated_installed("prometheus-postfix-exporter") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let (port, log) = write_postfix_config(d);
    let showq = d.join("spool/public/showq");
    let exporter = Exporter::start(
        d,
        &format!(
            "version: 1\nuse:\n  - {{module: postfix, with: {{log: '{}', showq_path: '{}', interval: 200ms}}}}\n",
            path_str(&log),
            path_str(&showq)
        ),
    );
    let up = format!(r#"postfix_up{{path="{}"}}"#, path_str(&showq));
    exporter.wait_value(&up, 0.0);
    let dedicated = start_dedicated(
        "prometheus-postfix-exporter",
        &[
            "--web.listen-address=127.0.0.1:{port}",
            &format!("--postfix.logfile_path={}", log.display()),
            &format!("--postfix.showq_path={}", showq.display()),
        ],
        d,
    );
    // Postfix's own log file is written from its start: the warm-up lines go first.
    warm_up(&log, "maillog", dedicated.1, &exporter);
    let postfix = start_postfix(d, port, &log);
    send_mail(port, "root@quarry.test");
    send_mail(port, "someone@deferred.test");
    // Still once the deferred one is in the deferred queue and the discarded one is gone.
    exporter.wait_value(
        r#"postfix_showq_message_size_bytes_count{queue="deferred"}"#,
        1.0,
    );
    exporter.wait_value("postfix_qmgr_messages_removed_total", 1.0);
    exporter.wait_value("postfix_smtp_status_deferred", 1.0);
    // The dedicated exporter reads showq on every scrape into one histogram that is never
    // reset, so its showq series count each scrape again: the log's families are compared
    // (as often as it takes the exporter to catch up with the log) with showq left out, and
    // showq's on the first scrape of a second exporter started once the queue holds still.
    let showq_families = ["postfix_showq_", "postfix_up"];
    let without_showq: Vec<&str> = IGNORED.iter().copied().chain(showq_families).collect();
    let mut previous = Vec::new();
    let start = Instant::now();
    let mut parity = loop {
        let theirs = without_warmup(get_text(dedicated.1, "/metrics"));
        let ours = without_warmup(exporter.scrape());
        let parity = compare(&theirs, &ours, &without_showq);
        let settled = settled(&mut previous, &theirs);
        if (settled && parity.missing.is_empty()) || start.elapsed() > WAIT {
            break parity;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // A message may be between queues at that first scrape: then another fresh exporter.
    let mut attempts = 0;
    let showq_parity = loop {
        attempts += 1;
        let fresh = start_dedicated(
            "prometheus-postfix-exporter",
            &[
                "--web.listen-address=127.0.0.1:{port}",
                &format!("--postfix.logfile_path={}", log.display()),
                &format!("--postfix.showq_path={}", showq.display()),
            ],
            d,
        );
        let showq_only: String = get_text(fresh.1, "/metrics")
            .lines()
            .filter(|line| {
                let name = line
                    .strip_prefix("# HELP ")
                    .or_else(|| line.strip_prefix("# TYPE "))
                    .unwrap_or(line);
                showq_families.iter().any(|f| name.starts_with(f))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let parity = compare(&showq_only, &exporter.scrape(), IGNORED);
        let only_ages = parity
            .missing
            .iter()
            .all(|m| m.starts_with("postfix_showq_message_age_seconds"));
        if only_ages || attempts == 5 {
            break parity;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // The showq size histogram counts the queue again at every read, in the exporter and (as
    // a drop-in) in the module, which read on their own schedules; a message may also be
    // between queues. So a size series whose value differs is compared by name, type and
    // labels only (counted apart).
    let (sizes_differ, missing): (Vec<String>, Vec<String>) = showq_parity
        .missing
        .into_iter()
        .partition(|m| m.starts_with("postfix_showq_message_size_bytes") && m.contains(": value "));
    parity.reproduced.extend(showq_parity.reproduced);
    parity.missing.extend(missing);
    eprintln!(
        "postfix (live, with showq): {}/{} series reproduced exactly",
        parity.reproduced.len(),
        parity.reproduced.len() + parity.missing.len()
    );
    // What the module cannot make: each queued message's age (the clock minus its queue
    // time), 11 series for each of the 5 queues. Everything else is the exporter's.
    assert_eq!(parity.missing.len(), 55, "{:#?}", parity.missing);
    assert!(
        parity
            .missing
            .iter()
            .all(|m| m.starts_with("postfix_showq_message_age_seconds")
                && m.ends_with("family missing")),
        "{:#?}",
        parity.missing
    );
    // The rest: the log's series for this traffic, postfix_up and showq's sizes (catalog
    // README: 101 / 156).
    assert_eq!(
        parity.reproduced.len() + sizes_differ.len(),
        101,
        "{parity:?} {sizes_differ:?}"
    );
    assert!(
        parity.reproduced.iter().any(|s| s == up.as_str()),
        "{up}: {parity:?}"
    );
    // Postfix stops: showq cannot be read, both say so.
    drop(postfix);
    exporter.wait_value(&up, 0.0);
    assert_eq!(value_in(&get_text(dedicated.1, "/metrics"), &up), Some(0.0));
}
