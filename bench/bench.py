#!/usr/bin/env python3
"""Benchmark quarry_exporter against mtail on the same machine, in the same run.

One command (see BENCHMARKS.md):  python3 bench/bench.py            # full run, rewrites BENCHMARKS.md
                                   python3 bench/bench.py --smoke    # small, correctness only (CI)
                                   python3 bench/bench.py --only mixed   # one extraction row

What it does:
1. Generates a deterministic nginx-style access log (seeded; --lines, default 1,000,000).
2. Runs `quarry_exporter one-shot` and `mtail --one_shot` on it with equivalent extraction
   (requests and bytes by method and status, a duration histogram by method with the same
   buckets), checks that both report the same numbers, and measures each child's user+sys CPU
   time and peak RSS with GNU time. The same for three more seeded logs, each with a
   quarry_exporter config and an equivalent mtail program in bench/extraction/: JSON lines
   (`json:` rules; mtail: a regex per field), logfmt (`logfmt:` rules; mtail: a regex per key)
   and a mixed log read by nine regex rules (mtail: the same nine regexes).
3. Scrape cost: both tail a log of N distinct label values (10k and 100k series); the time of a
   `/metrics` GET is measured for each, plain and gzipped.
4. Idle cost: CPU used while watching 1,000 files that do not change.
5. Latency: from a line being appended to it being visible on `/metrics`.
6. Concurrent scrapes: 200 at once of a ~224 KB exposition; p50/p99 per request, peak threads.
7. Checkpoints: lines per CPU-second while serving (scraped every second) without and with
   --storage.path, on the log of (2).
A disagreement between the two tools fails the run (exit 1). No timing is asserted.
"""

import argparse
import gzip
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
REGEX = r'"(?P<method>[A-Z]+) \S+ [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "[^"]*" (?P<seconds>[\d.]+)$'

QUARRY_CONFIG = f"""version: 1
metrics:
  - {{name: web_requests_total, type: counter, help: Requests., labels: [method, status]}}
  - {{name: web_response_bytes_total, type: counter, help: Bytes., labels: [method, status]}}
  - name: web_request_duration_seconds
    type: histogram
    help: Duration.
    labels: [method]
    buckets: [{", ".join(str(b) for b in BUCKETS)}]
sources:
  - name: access
    file: {{paths: [access.log], start_at: beginning}}
    rules:
      - regex: '{REGEX}'
        update:
          - {{metric: web_requests_total, labels: {{method: $method, status: $status}}}}
          - {{metric: web_response_bytes_total, labels: {{method: $method, status: $status}}, add: $bytes}}
          - {{metric: web_request_duration_seconds, labels: {{method: $method}}, observe: $seconds}}
"""

MTAIL_PROGRAM = f"""counter web_requests_total by method, status
counter web_response_bytes_total by method, status
histogram web_request_duration_seconds by method buckets {", ".join(str(b) for b in BUCKETS)}

/{REGEX}/ {{
  web_requests_total[$method][$status]++
  web_response_bytes_total[$method][$status] += $bytes
  web_request_duration_seconds[$method] = $seconds
}}
"""

SERIES_QUARRY_CONFIG = """version: 1
metrics:
  - {name: bench_series_total, type: counter, help: One series per key., labels: [key], max_series: 1000000}
sources:
  - name: keys
    file: {paths: [series.log], start_at: end}
    rules:
      - regex: 'key=(?P<key>\\S+)'
        update: [{metric: bench_series_total, labels: {key: $key}}]
"""

SERIES_MTAIL_PROGRAM = """counter bench_series_total by key
/key=(?P<key>\\S+)/ {
  bench_series_total[$key]++
}
"""

IDLE_QUARRY_CONFIG = """version: 1
metrics:
  - {name: idle_lines_total, type: counter, help: Lines.}
sources:
  - name: idle
    file: {paths: ["idle/*.log"]}
    rules:
      - regex: '.'
        update: [{metric: idle_lines_total}]
"""

IDLE_MTAIL_PROGRAM = """counter idle_lines_total
/./ {
  idle_lines_total++
}
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def generate_access_log(path, lines):
    rng = random.Random(20261126)
    methods = ["GET"] * 8 + ["POST"] * 2 + ["PUT", "DELETE", "HEAD"]
    paths = ["/", "/api/orders", "/api/orders/42", "/static/app.js", "/login", "/health", "/api/users?page=2"]
    statuses = [200] * 20 + [201, 204, 301, 304, 400, 401, 404, 404, 500, 502, 503]
    with open(path, "w") as f:
        for i in range(lines):
            m = rng.choice(methods)
            p = rng.choice(paths)
            s = rng.choice(statuses)
            b = rng.randint(0, 50000)
            # At least 1 ms: mtail 3.0.0-rc50 counts an observation of 0 in `_count` but in no
            # bucket, not even +Inf, so histograms with zeros cannot be compared.
            t = max(0.001, round(rng.lognormvariate(-3, 1.2), 3))
            f.write(
                f'10.0.{i % 256}.{(i * 7) % 256} - - [26/Nov/2026:09:{(i // 60) % 60:02d}:{i % 60:02d} +0000] '
                f'"{m} {p} HTTP/1.1" {s} {b} "https://example.com/ref" '
                f'"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36" {t}\n'
            )


# --- More extraction rows: JSON lines, logfmt, a mixed log with many rules -------------------
# Each has a quarry_exporter config and an equivalent mtail program in bench/extraction/, and a
# seeded generator below. `--only json logfmt mixed lines` runs just these rows.

EXTRACTION = os.path.join(ROOT, "bench", "extraction")


def _iso_ts(i):
    return f"2026-11-28T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{(i * 37) % 1000:03d}Z"


JSON_USERS = ["alice", "bob", "Zoë", "José Müller", "李雷", "o'brien", 'bob "the builder"', "Ærøskøbing",
              "svc-batch", "Дмитрий"]
JSON_OTHER = [  # (level, msg) of lines that are not "request done"
    ("debug", 'cache miss for key "user:42"'),
    ("debug", "loaded 3 feature flags"),
    ("info", "résumé uploaded"),
    ("info", "user logged in"),
    ("warn", "slow query: SELECT * FROM orders WHERE note = 'a\\b'"),
    ("warn", "Überweisung für Zoë verzögert"),
    ("error", 'payment provider said: "card declined"\n(retry 2)'),
    ("error", "注文の処理に失敗しました"),
    ("info", "request done, but client went away"),
]
JSON_ROUTES = ["/api/orders", "/api/orders/42", "/api/users?page=2", "/api/cart", "/api/search?q=café", "/health",
               "/api/payments"]
REQUEST_METHODS = ["GET"] * 8 + ["POST"] * 3 + ["PUT", "DELETE", "PATCH"]
REQUEST_STATUSES = [200] * 20 + [201, 204, 304, 400, 401, 403, 404, 404, 409, 500, 502, 503]


def _json_text(obj, writer):
    """One of four JSON writers: compact with non-ASCII as \\u escapes; compact UTF-8; compact
    UTF-8 with `/` escaped (PHP's json_encode); Python's default separators (`": "`, `", "`)."""
    if writer == 0:
        return json.dumps(obj, separators=(",", ":"))
    if writer == 1:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if writer == 2:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")
    return json.dumps(obj, ensure_ascii=False)


def generate_json_log(path, lines):
    """JSON application log, ~200 bytes a line: 75% "request done" lines in five key orders
    (two with an `upstream` object that has its own `status` and `latency_ms`, once before and
    once after `http`), the rest other messages, some with nested objects; escapes (`\\"`,
    `\\n`, `\\/`, `\\u00e9`) and raw UTF-8. Returns the expected counts."""
    rng = random.Random(20261128)
    requests = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            ts = _iso_ts(i)
            user = rng.choice(JSON_USERS)
            if rng.random() < 0.75:
                requests += 1
                m, s = rng.choice(REQUEST_METHODS), rng.choice(REQUEST_STATUSES)
                level = "info" if s < 400 else ("warn" if s < 500 else "error")
                ms = rng.lognormvariate(3, 1.3)
                # Never 0: mtail counts an observation of 0 in no bucket (see the access log).
                ms = max(1, round(ms)) if rng.random() < 0.3 else max(0.1, round(ms, rng.choice([1, 2, 3])))
                route = rng.choice(JSON_ROUTES)
                shape = i % 5
                if shape == 0:
                    obj = {"ts": ts, "level": level, "msg": "request done",
                           "http": {"method": m, "route": route, "status": s, "latency_ms": ms}, "user": user}
                elif shape == 1:
                    obj = {"level": level, "ts": ts, "msg": "request done", "user": user,
                           "http": {"status": s, "method": m, "route": route, "latency_ms": ms}}
                elif shape == 2:
                    obj = {"msg": "request done", "http": {"route": route, "latency_ms": ms, "method": m, "status": s},
                           "level": level, "ts": ts,
                           "client": {"ip": f"10.1.{i % 256}.{i * 7 % 256}", "ua": "curl/8.5.0"}}
                elif shape == 3:
                    obj = {"ts": ts, "level": level, "logger": "api.access", "msg": "request done",
                           "trace": {"id": f"{rng.getrandbits(64):016x}", "sampled": True},
                           "http": {"method": m, "status": s, "latency_ms": ms, "route": route},
                           "upstream": {"addr": "10.0.3.7:8080", "status": rng.choice([200, 502]),
                                        "latency_ms": round(ms / 2, 1)},
                           "user": user}
                else:
                    obj = {"ts": ts, "upstream": {"status": rng.choice([200, 503]), "latency_ms": round(ms * 0.9, 2),
                                                  "addr": "10.0.3.8:8080"},
                           "level": level, "msg": "request done",
                           "http": {"latency_ms": ms, "status": s, "method": m, "route": route}, "user": user}
            else:
                level, msg = rng.choice(JSON_OTHER)
                obj = {"ts": ts, "level": level, "msg": msg, "user": user}
                if level == "error":
                    obj["error"] = {"type": "ProviderError", "status": "UNAVAILABLE", "attempt": rng.randint(1, 3)}
                elif rng.random() < 0.5:
                    obj = {"level": level, "ts": ts, "details": {"duration_ms": rng.randint(1, 999), "tags": ["a", "ü"]},
                           "msg": msg}
            f.write(_json_text(obj, rng.randrange(4)) + "\n")
    return {"app_log_lines_total": lines, "app_requests_total": requests}


def _go_duration(ns):
    """Go's time.Duration.String() for 1µs <= ns < 1m: 850µs, 12.5ms, 1.204s."""
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns >= size or unit == "µs":
            whole, frac = divmod(ns, size)
            text = str(whole)
            if frac:
                text += "." + f"{frac:0{len(str(size)) - 1}d}".rstrip("0")
            return text + unit


def _logfmt_value(v):
    if v and all(c not in ' ="\\' and c.isprintable() for c in v):
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


LOGFMT_OTHER = [  # (level, pairs) of lines that are not "request done"
    ("debug", [("msg", "cache miss"), ("key", "user:42")]),
    ("info", [("msg", "config reloaded"), ("file", "/etc/svc/config.yaml"), ("changed", "3")]),
    ("warn", [("msg", 'disk "almost" full: a=b'), ("component", "storage"), ("free", "2%")]),
    ("warn", [("msg", "Überweisung für Zoë verzögert"), ("retry", "2")]),
    ("error", [("msg", "query failed"), ("query", "SELECT * FROM orders WHERE a=1 AND name='Zoë'"),
               ("err", "pq: canceling statement due to user request")]),
    ("error", [("msg", "dial failed"), ("err", "dial tcp 10.0.0.7:5432: connect: connection refused")]),
    ("info", [("msg", "注文を受け付けました"), ("order", "81234")]),
    ("info", [("msg", "request done, client went away"), ("path", "/api/cart")]),
]
LOGFMT_USERS = ["alice", "bob", "Zoë", "José Müller", "李雷", "o'brien", 'bob "the builder"', "svc-batch"]
LOGFMT_PATHS = ["/api/orders", "/api/orders/42", "/api/users?page=2", "/api/cart", "/static/app.js", "/health",
                "/api/search?q=café"]


def generate_logfmt_log(path, lines):
    """logfmt service log, ~145 bytes a line: 75% "request done" lines in four key orders
    (quoted values with spaces, `=` and escaped quotes, a bare key, a `loglevel=` key after
    `level=`), durations as Go's time.Duration prints them; the rest other messages, some
    in German and Japanese. Returns the expected counts."""
    rng = random.Random(20261129)
    requests = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            ts = _iso_ts(i)
            if rng.random() < 0.75:
                requests += 1
                m, s = rng.choice(REQUEST_METHODS), rng.choice(REQUEST_STATUSES)
                level = "info" if s < 400 else ("warn" if s < 500 else "error")
                ns = int(rng.lognormvariate(16.8, 1.4)) // 1000 * 1000  # median 20 ms, in 1 µs steps
                dur = _go_duration(min(max(ns, 1000), 59 * 10**9))
                user, p = rng.choice(LOGFMT_USERS), rng.choice(LOGFMT_PATHS)
                shape = i % 4
                if shape == 0:
                    pairs = [("ts", ts), ("level", level), ("msg", "request done"), ("method", m), ("path", p),
                             ("status", str(s)), ("duration", dur), ("user", user)]
                elif shape == 1:
                    pairs = [("level", level), ("ts", ts), ("caller", "server.go:118"), ("method", m), ("path", p),
                             ("status", str(s)), ("duration", dur), ("msg", "request done"), ("user", user)]
                elif shape == 2:
                    pairs = [("ts", ts), ("msg", "request done"), ("status", str(s)), ("method", m),
                             ("duration", dur), ("path", p), ("remote", f"10.0.{i % 256}.{i * 7 % 256}:51234"),
                             ("cached", None), ("level", level)]
                else:
                    pairs = [("ts", ts), ("loglevel", "verbose"), ("level", level), ("component", "http"),
                             ("msg", "request done"), ("trace_id", f"{rng.getrandbits(64):016x}"), ("method", m),
                             ("status", str(s)), ("err", 'upstream "orders" said: code=7 a=b' if s >= 500 else ""),
                             ("duration", dur)]
            else:
                level, extra = rng.choice(LOGFMT_OTHER)
                if i % 2:
                    pairs = [("ts", ts), ("level", level)] + extra
                else:
                    pairs = extra[:1] + [("level", level), ("ts", ts)] + extra[1:]
            f.write(" ".join(k if v is None else f"{k}={_logfmt_value(v)}" for k, v in pairs) + "\n")
    return {"svc_log_lines_total": lines, "svc_requests_total": requests}


MIXED_LOGGERS = ["c.e.shop.OrderService", "c.e.shop.CartController", "c.e.pay.PaymentClient", "c.e.auth.TokenFilter",
                 "o.h.engine.jdbc.spi.SqlExceptionHelper", "c.e.search.Indexer"]
MIXED_THREADS = ["main", "http-nio-8080-exec-3", "http-nio-8080-exec-17", "scheduling-1", "kafka-consumer-2",
                 "ForkJoinPool.commonPool-worker-5"]
MIXED_INFO = [
    "Order {n} created for customer {c} in {ms} ms",
    "Cart {n} checked out in {ms}ms",
    "Indexed {c} documents in {ms} ms",
    "Token refreshed for client app-{c}",
    "Kunde „Müller“ angelegt, Bestellung {n} in {ms} ms bestätigt",
    "注文 {n} を処理しました in {ms} ms",
    "Commande {n} expédiée à Zoë — délai {ms} ms",
    "Scheduled job cleanup finished, removed {c} sessions",
    "✅ health check ok",
]
MIXED_WARN = [
    "Slow query on orders: {ms} ms (threshold 500 ms)",
    "Retrying payment for order {n} after timeout (attempt 2)",
    "Connection pool 80% used (40/50)",
    "Überlauf im Puffer für Auftrag {n}",
    "HTTP call to inventory timed out after 5000 ms, using cached stock",
]
MIXED_ERRORS = [  # (message, exception, detail)
    ("Payment failed for order {n}", "java.net.SocketTimeoutException", "Read timed out"),
    ("Could not commit transaction", "org.hibernate.exception.LockAcquisitionException", "could not execute statement"),
    ("Unhandled exception in request /api/cart", "java.lang.IllegalStateException", "Cart {n} is closed"),
    ("Indexing aborted", "java.lang.OutOfMemoryError", "Java heap space"),
    ("Zahlung für Bestellung {n} fehlgeschlagen", "c.e.pay.ProviderException", "Karte abgelehnt"),
]
MIXED_METHODS = ["GET"] * 8 + ["POST"] * 2 + ["PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]
MIXED_PATHS = ["/", "/api/orders", "/api/orders/42", "/static/app.js", "/login", "/health", "/api/users?page=2",
               "/api/cart", "/api/search?q=caf%C3%A9", "/favicon.ico"]
MIXED_STATUSES = [200] * 20 + [201, 204, 301, 304, 400, 401, 404, 404, 499, 500, 502, 503, 504]
MIXED_AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "curl/8.5.0",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15",
                "Prometheus/2.48.0", "Go-http-client/1.1"]
MIXED_USERS = ["root", "admin", "deploy", "jürgen", "oracle", "git", "ubuntu"]


def _mixed_records(rng):
    """Endless records of the mixed log: (kind, its lines)."""
    i = 0
    while True:
        i += 1
        r = rng.random()
        clock = f"{(i // 60) % 60:02d}:{i % 60:02d}"
        n, c = rng.randint(10000, 99999), rng.randint(1, 5000)
        if r < 0.40:  # nginx access line; nginx escapes non-ASCII bytes, so these are ASCII
            m, p, s = rng.choice(MIXED_METHODS), rng.choice(MIXED_PATHS), rng.choice(MIXED_STATUSES)
            t = max(0.001, round(rng.lognormvariate(-3, 1.2), 3))
            yield "access", [f'10.0.{i % 256}.{(i * 7) % 256} - - [28/Nov/2026:10:{clock} +0000] "{m} {p} HTTP/1.1" {s} '
                   f'{rng.randint(0, 50000)} "https://shop.example.com/" "{rng.choice(MIXED_AGENTS)}" {t}']
        elif r < 0.70:  # application line, Logback's default layout; errors with a stack trace
            ms = max(1, int(rng.lognormvariate(3.5, 1.3)))
            head = f"2026-11-28 10:{clock}.{(i * 37) % 1000:03d} {{}} [{rng.choice(MIXED_THREADS)}] {rng.choice(MIXED_LOGGERS)} - "
            lr = rng.random()
            if lr < 0.70:
                yield "app", [head.format("INFO ") + rng.choice(MIXED_INFO).format(n=n, c=c, ms=ms)]
            elif lr < 0.82:
                yield "app", [head.format("DEBUG") + f"Cache lookup key=order:{n} hit={rng.random() < 0.7} in {ms} ms"]
            elif lr < 0.94:
                yield "app", [head.format("WARN ") + rng.choice(MIXED_WARN).format(n=n, ms=ms)]
            else:
                msg, exc, detail = rng.choice(MIXED_ERRORS)
                detail = detail.format(n=n)
                trace = [head.format("ERROR") + msg.format(n=n) + f": {exc}: {detail}", f"{exc}: {detail}",
                         "\tat c.e.pay.PaymentClient.charge(PaymentClient.java:88)",
                         "\tat c.e.shop.OrderService.checkout(OrderService.java:141)"]
                if rng.random() < 0.5:
                    trace.append("Caused by: java.net.SocketTimeoutException: Read timed out")
                yield "app", trace + ["\t... 42 more"]
        elif r < 0.85:  # syslog: sshd, cron, systemd, kernel
            prefix = f"Nov 28 10:{clock} web-{i % 4} "
            pid = rng.randint(300, 65000)
            sr = rng.random()
            if sr < 0.40:
                ok = rng.random() < 0.4
                auth = "publickey" if ok and rng.random() < 0.8 else "password"
                invalid = "" if ok or rng.random() < 0.5 else "invalid user "
                yield "ssh", [f"{prefix}sshd[{pid}]: {'Accepted' if ok else 'Failed'} {auth} for {invalid}{rng.choice(MIXED_USERS)} "
                       f"from 203.0.113.{i % 256} port {rng.randint(1024, 65535)} ssh2"]
            elif sr < 0.70:
                yield "other", [f"{prefix}CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)"]
            elif sr < 0.90:
                yield "other", [f"{prefix}systemd[1]: Started Session {c} of User {rng.choice(MIXED_USERS)}."]
            elif sr < 0.99:
                yield "other", [f"{prefix}kernel: [{i / 100:.6f}] [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.{i % 256} "
                       f"DST=10.0.0.{i % 16} PROTO=TCP SPT={rng.randint(1024, 65535)} DPT=22"]
            else:
                yield "other", [f"{prefix}kernel: [{i / 100:.6f}] Out of memory: Killed process {pid} "
                       f"({rng.choice(['java', 'node', 'postgres'])}) total-vm:{rng.randint(10**6, 10**7)}kB, "
                       f"anon-rss:{rng.randint(10**5, 10**6)}kB"]
        elif r < 0.95:  # JSON line from a sidecar proxy
            jr = rng.random()
            level = "info" if jr < 0.8 else ("warn" if jr < 0.92 else "error")
            status = 200 if level == "info" else rng.choice([429, 500, 502, 503, 504])
            msg = {"info": "proxied", "warn": "upstream slow", "error": "upstream request timeout"}[level]
            obj = {"ts": f"2026-11-28T10:{clock}.{(i * 37) % 1000:03d}Z", "level": level, "msg": msg,
                   "http": {"method": rng.choice(MIXED_METHODS), "path": rng.choice(MIXED_PATHS), "status": status,
                            "latency_ms": round(rng.lognormvariate(3, 1), 1)},
                   "peer": rng.choice(["Zoë", "李雷", "svc-a"])}
            yield "other", [json.dumps(obj, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)]
        else:  # a batch worker's progress, in several languages
            yield "other", [rng.choice([f"[worker-{i % 8}] 処理中: バッチ {n} ({c} 件)",
                               f"[worker-{i % 8}] Fortschritt: {c} von 5000 Einträgen übertragen",
                               f"[worker-{i % 8}] progress: {c}/5000 rows copied, eta 12s",
                               f"[worker-{i % 8}] 🚀 deploy {n} started by Zoë"])]


def generate_mixed_log(path, lines):
    """A log several programs write to, ~120 bytes a line: 40% nginx access lines, 30% records
    of a Java application (INFO/DEBUG/WARN lines, many ending "in N ms", and ERROR lines
    followed by a stack trace), 15% syslog (sshd, cron, systemd, kernel), 10% JSON, 5% a
    worker's progress; about 15% of the lines have non-ASCII text. Returns expected counts."""
    rng = random.Random(20261130)
    counts = {"access": 0, "app": 0, "ssh": 0, "other": 0}
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        for kind, record in _mixed_records(rng):
            if written + len(record) > lines:  # ends at a record boundary, padded to `lines`
                for k in range(lines - written):
                    f.write(f"[worker-{k % 8}] progress: idle\n")
                break
            f.write("\n".join(record) + "\n")
            written += len(record)
            counts[kind] += 1
    return {"http_requests_total": counts["access"], "app_log_lines_total": counts["app"],
            "ssh_logins_total": counts["ssh"]}


def run_measured(cmd, cwd):
    """Runs cmd to completion under GNU time; returns (stdout, user+sys seconds, peak RSS MiB).

    GNU time rather than wait4 from Python: a child forked from Python starts with Python's
    resident pages, which would count in its peak RSS."""
    out_path, err_path, time_path = (os.path.join(OUT, n) for n in ("child.out", "child.err", "child.time"))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        code = subprocess.run(["/usr/bin/time", "-o", time_path, "-f", "%U %S %M"] + cmd,
                              cwd=cwd, stdout=out, stderr=err).returncode
    if code != 0:
        sys.exit(f"{cmd[0]} failed: {open(err_path).read()}")
    user, system, max_kib = open(time_path).read().split()[-3:]
    with open(out_path) as f:
        text = f.read()
    return text, float(user) + float(system), int(max_kib) / 1024


def parse_exposition(text, names):
    """{(name, sorted label pairs): value} for samples of the given metric families."""
    samples = {}
    pattern = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = pattern.match(line)
        if not m:
            continue
        name = m.group(1)
        if not any(name == n or name.startswith(n + "_") for n in names):
            continue
        labels = tuple(sorted(label.findall(m.group(2) or "")))
        labels = tuple((k, normalize_le(v) if k == "le" else v) for k, v in labels)
        samples[(name, labels)] = float(m.group(3))
    return samples


def normalize_le(v):
    return "+Inf" if v in ("+Inf", "Inf") else repr(float(v))


def compare(quarry, mtail):
    problems = []
    for key in sorted(set(quarry) | set(mtail)):
        q, t = quarry.get(key), mtail.get(key)
        if q is None or t is None or abs(q - t) > 1e-9 * max(1.0, abs(q), abs(t)):
            problems.append(f"  {key[0]}{dict(key[1])}: quarry={q} mtail={t}")
    return problems


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/metrics", gz=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if gz:
        req.add_header("Accept-Encoding", "gzip")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def wait_for(what, check, timeout=300):
    start = time.time()
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.time() - start > timeout:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def metric_value(port, series):
    body = get(port).decode()
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def start_quarry(binary, config_dir, port):
    return subprocess.Popen(
        [binary, "--config.file=" + os.path.join(config_dir, "exporter.yaml"),
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_mtail(program, logs_glob, port):
    return subprocess.Popen(
        ["mtail", "--progs", program, "--logs", logs_glob, "--port", str(port), "--address", "127.0.0.1",
         "--emit_prog_label=false", "--logtostderr"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure_pair(binary, workdir, log_name, program, names, repeat=1):
    """`quarry_exporter one-shot` (exporter.yaml in workdir) and `mtail --one_shot` (program)
    each read log_name once, `repeat` times alternating; fails the run unless both print the
    same value for every sample of the families `names`. Returns (quarry samples, least CPU
    seconds of each, largest peak RSS of each)."""
    q_cpu, m_cpu, q_rss, m_rss = [], [], [], []
    for _ in range(repeat):
        log("quarry_exporter one-shot")
        q_text, cpu, rss = run_measured([binary, "one-shot", "--config.file=exporter.yaml"], workdir)
        q_cpu.append(cpu)
        q_rss.append(rss)
        log("mtail --one_shot")
        m_text, cpu, rss = run_measured(
            ["mtail", "--one_shot", "--one_shot_format=prometheus", "--emit_prog_label=false",
             "--progs", program, "--logs", log_name, "--logtostderr"], workdir)
        m_cpu.append(cpu)
        m_rss.append(rss)
        if repeat > 1:
            log(f"  CPU seconds: quarry_exporter {q_cpu[-1]:.2f}, mtail {m_cpu[-1]:.2f}")
        quarry, mtail = parse_exposition(q_text, names), parse_exposition(m_text, names)
        problems = compare(quarry, mtail)
        if problems:
            sys.exit(f"{os.path.basename(workdir)}: quarry_exporter and mtail disagree:\n" + "\n".join(problems[:40]))
    log(f"both agree on {len(quarry)} samples")
    return quarry, min(q_cpu), min(m_cpu), max(q_rss), max(m_rss)


def bench_lines(binary, lines, results, repeat=1):
    workdir = os.path.join(OUT, "lines")
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, "access.log")
    log(f"generating {lines:,} access log lines")
    generate_access_log(log_path, lines)
    size_mb = os.path.getsize(log_path) / 1e6
    with open(os.path.join(workdir, "exporter.yaml"), "w") as f:
        f.write(QUARRY_CONFIG)
    with open(os.path.join(workdir, "access.mtail"), "w") as f:
        f.write(MTAIL_PROGRAM)
    names = ["web_requests_total", "web_response_bytes_total", "web_request_duration_seconds"]
    quarry, q_cpu, m_cpu, q_rss, m_rss = measure_pair(binary, workdir, "access.log", "access.mtail", names, repeat)
    requests = sum(v for (n, _), v in quarry.items() if n == "web_requests_total")
    if requests != lines:
        sys.exit(f"quarry_exporter counted {requests} requests in {lines} lines")
    results["lines"] = dict(lines=lines, size_mb=size_mb, samples=len(quarry),
                            q_cpu=q_cpu, q_rss=q_rss, m_cpu=m_cpu, m_rss=m_rss)


# The rows beyond the access log: (title, generator, log file, files in bench/extraction/, families).
EXTRACTION_ROWS = {
    "json": ("JSON lines (`json:` rules; mtail: a regex per field)", generate_json_log, "app.jsonl",
             "json", ["app_log_lines_total", "app_requests_total", "app_request_duration_seconds"]),
    "logfmt": ("logfmt (`logfmt:` rules; mtail: a regex per key)", generate_logfmt_log, "svc.log",
               "logfmt", ["svc_log_lines_total", "svc_requests_total", "svc_request_duration_seconds"]),
    "mixed": ("mixed log, 9 regex rules (mtail: the same 9 regexes)", generate_mixed_log, "mixed.log",
              "mixed", ["http_requests_total", "http_response_bytes_total", "http_request_duration_seconds",
                        "http_api_server_errors_total", "app_log_lines_total", "app_operation_duration_seconds",
                        "app_exceptions_total", "ssh_logins_total", "oom_kills_total", "json_problem_lines_total",
                        "timeout_lines_total"]),
}


def bench_extraction(binary, row, lines, results, repeat=1):
    """One of EXTRACTION_ROWS: the seeded log (generated again only when bench.py or the line
    count changed), read once by each tool with bench/extraction/ROW.yaml and ROW.mtail. Fails
    unless both agree on every sample, the counts the generator knows match and every family
    has a non-zero sample (a rule that matches nothing in both tools would agree too)."""
    title, generate, log_name, files, names = EXTRACTION_ROWS[row]
    workdir = os.path.join(OUT, row)
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, log_name)
    stamp_path = os.path.join(workdir, "generated")
    with open(os.path.abspath(__file__), "rb") as f:
        stamp = f"{lines} {hashlib.sha256(f.read()).hexdigest()}"
    expected = None
    if os.path.exists(log_path) and os.path.exists(stamp_path):
        with open(stamp_path) as f:
            old = f.read().split("\n", 1)
        if old[0] == stamp:
            expected = json.loads(old[1])
    if expected is None:
        log(f"generating {lines:,} lines for {row}")
        if os.path.exists(stamp_path):
            os.remove(stamp_path)
        expected = generate(log_path, lines)
        with open(stamp_path, "w") as f:
            f.write(stamp + "\n" + json.dumps(expected))
    shutil.copy(os.path.join(EXTRACTION, files + ".yaml"), os.path.join(workdir, "exporter.yaml"))
    shutil.copy(os.path.join(EXTRACTION, files + ".mtail"), os.path.join(workdir, files + ".mtail"))
    log(f"{row}: {title}")
    quarry, q_cpu, m_cpu, q_rss, m_rss = measure_pair(binary, workdir, log_name, files + ".mtail", names, repeat)
    for family, want in expected.items():
        got = sum(v for (n, _), v in quarry.items() if n == family)
        if got != want:
            sys.exit(f"{row}: {family} sums to {got}, the generator wrote {want}")
    for family in names:
        if not any(v > 0 for (n, _), v in quarry.items() if n in (family, family + "_count")):
            sys.exit(f"{row}: nothing counted in {family}")
    results.setdefault("extraction", []).append(
        dict(row=row, title=title, lines=lines, size_mb=os.path.getsize(log_path) / 1e6, samples=len(quarry),
             q_cpu=q_cpu, q_rss=q_rss, m_cpu=m_cpu, m_rss=m_rss))


def start_series_pair(binary, name):
    """Both tools tailing the same empty `series.log` in a fresh directory, ready to read.
    Returns (log path, quarry port, mtail port, quarry process, mtail process)."""
    workdir = os.path.join(OUT, name)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    log_path = os.path.join(workdir, "series.log")
    open(log_path, "w").close()
    with open(os.path.join(workdir, "exporter.yaml"), "w") as f:
        f.write(SERIES_QUARRY_CONFIG)
    program = os.path.join(workdir, "series.mtail")
    with open(program, "w") as f:
        f.write(SERIES_MTAIL_PROGRAM)
    qp, mp = free_port(), free_port()
    quarry = start_quarry(binary, workdir, qp)
    mtail = start_mtail(program, log_path, mp)
    try:
        wait_for("quarry_exporter to serve", lambda: get(qp, "/-/ready"))
        wait_for("mtail to serve", lambda: get(mp))
        time.sleep(1)  # both have opened the (empty) log
    except BaseException:
        stop(quarry)
        stop(mtail)
        raise
    return log_path, qp, mp, quarry, mtail


def bench_scrape(binary, series, repeats, results):
    log_path, qp, mp, quarry, mtail = start_series_pair(binary, f"scrape{series}")
    try:
        with open(log_path, "a") as f:
            for i in range(series):
                f.write(f"key=k{i:07d}\n")
        log(f"waiting for {series:,} series in both")
        wait_for("quarry_exporter series", lambda: metric_value(qp, 'quarry_series{metric="bench_series_total"}') == series)
        wait_for("mtail series", lambda: get(mp).count(b"\nbench_series_total{") == series)
        row = {"series": series}
        for who, port, proc in (("q", qp, quarry), ("m", mp, mtail)):
            for gz in (False, True):
                times = []
                size = 0
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    body = get(port, gz=gz)
                    times.append(time.perf_counter() - t0)
                    size = len(body)
                if not gz:
                    lines = body.count(b"\nbench_series_total{")
                    if lines != series:
                        sys.exit(f"{who}: {lines} series in the scrape, want {series}")
                row[f"{who}_{'gz' if gz else 'plain'}_ms"] = statistics.median(times) * 1000
                row[f"{who}_{'gz' if gz else 'plain'}_bytes"] = size
            row[f"{who}_rss"] = rss_mib(proc.pid)
        results.setdefault("scrape", []).append(row)
    finally:
        stop(quarry)
        stop(mtail)


def bench_concurrent(binary, series, clients, results):
    """`clients` scrapes at once (threads, each its own connection) of an exposition of
    `series` series, three rounds; per-request latency p50/p99 and the exporter's peak thread
    count while they run."""
    import threading
    log_path, qp, mp, quarry, mtail = start_series_pair(binary, "concurrent")
    try:
        with open(log_path, "a") as f:
            for i in range(series):
                f.write(f"key=k{i:07d}\n")
        wait_for("quarry_exporter series", lambda: metric_value(qp, 'quarry_series{metric="bench_series_total"}') == series)
        wait_for("mtail series", lambda: get(mp).count(b"\nbench_series_total{") == series)
        row = {"series": series, "clients": clients, "q_bytes": len(get(qp))}
        for who, port, proc in (("q", qp, quarry), ("m", mp, mtail)):
            latencies, threads, failures = [], [0], []
            stop_sampling = threading.Event()

            def sample_threads():
                while not stop_sampling.is_set():
                    try:
                        with open(f"/proc/{proc.pid}/status") as f:
                            for line in f:
                                if line.startswith("Threads:"):
                                    threads[0] = max(threads[0], int(line.split()[1]))
                    except OSError:
                        pass
                    time.sleep(0.005)

            def scrape():
                t0 = time.perf_counter()
                try:
                    body = get(port, gz=True)
                    if not body:
                        failures.append("empty")
                except OSError as e:
                    failures.append(str(e))
                latencies.append(time.perf_counter() - t0)

            sampler = threading.Thread(target=sample_threads)
            sampler.start()
            for _ in range(3):
                burst = [threading.Thread(target=scrape) for _ in range(clients)]
                for t in burst:
                    t.start()
                for t in burst:
                    t.join()
            stop_sampling.set()
            sampler.join()
            if failures:
                sys.exit(f"{who}: {len(failures)} concurrent scrapes failed: {failures[:3]}")
            latencies.sort()
            row[f"{who}_p50"] = latencies[len(latencies) // 2] * 1000
            row[f"{who}_p99"] = latencies[int(len(latencies) * 0.99) - 1] * 1000
            row[f"{who}_threads"] = threads[0]
        results["concurrent"] = row
    finally:
        stop(quarry)
        stop(mtail)


def bench_checkpoint(binary, lines, results, rounds=3):
    """The checkpoint's cost: the exporter serves (not one-shot), reads the access log of the
    first measurement from its beginning while `/metrics` is scraped every second, without and
    with --storage.path (a checkpoint before every scrape, every second and before each new
    file), alternating, `rounds` times each. CPU seconds until every line is read (the least of
    the rounds: the run least disturbed by this noisy machine); lines per CPU-second, ratio."""
    workdir = os.path.join(OUT, "lines")
    row = {"lines": lines, "rounds": rounds}
    variants = (("plain", []), ("stored", ["--storage.path=" + os.path.join(OUT, "checkpoint-store"), "--storage.interval=1s"]))
    for _ in range(rounds):
        for label, extra in variants:
            shutil.rmtree(os.path.join(OUT, "checkpoint-store"), ignore_errors=True)
            port = free_port()
            p = subprocess.Popen(
                [binary, "--config.file=" + os.path.join(workdir, "exporter.yaml"),
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"] + extra,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for("quarry_exporter to serve", lambda: get(port, "/-/ready"))
                path = os.path.join(workdir, "access.log")
                series = f'quarry_file_lines_total{{path="{path}",source="access"}}'
                while True:
                    v = metric_value(port, series)  # a scrape: with storage, a checkpoint
                    if v is not None and v >= lines:
                        break
                    time.sleep(1)
                cpu = cpu_seconds(p.pid)
                key = f"{label}_cpu"
                row[key] = min(row.get(key, cpu), cpu)
                if label == "stored":
                    text = get(port).decode()
                    for line in text.splitlines():
                        if line.startswith("quarry_checkpoint_duration_seconds "):
                            row["write_ms"] = float(line.split()[1]) * 1000
                        if line.startswith("quarry_checkpoint_bytes "):
                            row["bytes"] = float(line.split()[1])
                        if line.startswith("quarry_checkpoint_writes_total "):
                            row["writes"] = float(line.split()[1])
            finally:
                stop(p)
    results["checkpoint"] = row


def bench_idle(binary, files, seconds, results):
    workdir = os.path.join(OUT, "idle")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(os.path.join(workdir, "idle"))
    for i in range(files):
        with open(os.path.join(workdir, "idle", f"f{i:04d}.log"), "w") as f:
            f.write("one line\n")
    with open(os.path.join(workdir, "exporter.yaml"), "w") as f:
        f.write(IDLE_QUARRY_CONFIG)
    program = os.path.join(workdir, "idle.mtail")
    with open(program, "w") as f:
        f.write(IDLE_MTAIL_PROGRAM)
    qp, mp = free_port(), free_port()
    quarry = start_quarry(binary, workdir, qp)
    mtail = start_mtail(program, os.path.join(workdir, "idle", "*.log"), mp)
    try:
        wait_for("quarry_exporter files", lambda: metric_value(qp, 'quarry_source_files{source="idle"}') == files)
        wait_for("mtail to serve", lambda: get(mp))
        time.sleep(2)
        q0, m0 = cpu_seconds(quarry.pid), cpu_seconds(mtail.pid)
        log(f"idle for {seconds}s with {files} files")
        time.sleep(seconds)
        q1, m1 = cpu_seconds(quarry.pid), cpu_seconds(mtail.pid)
        results["idle"] = dict(files=files, seconds=seconds,
                               q_pct=100 * (q1 - q0) / seconds, m_pct=100 * (m1 - m0) / seconds,
                               q_rss=rss_mib(quarry.pid), m_rss=rss_mib(mtail.pid))
    finally:
        stop(quarry)
        stop(mtail)


def bench_latency(binary, samples, results):
    log_path, qp, mp, quarry, mtail = start_series_pair(binary, "latency")
    try:
        delays = {"q": [], "m": []}
        with open(log_path, "a") as f:
            for i in range(samples):
                f.write("key=latency\n")
                f.flush()
                t0 = time.perf_counter()
                seen = {"q": False, "m": False}
                while not all(seen.values()):
                    for who, port in (("q", qp), ("m", mp)):
                        if not seen[who] and metric_value(port, 'bench_series_total{key="latency"}') == i + 1:
                            seen[who] = True
                            delays[who].append(time.perf_counter() - t0)
                    if time.perf_counter() - t0 > 30:
                        sys.exit(f"line {i} not visible after 30s: {seen}")
                    time.sleep(0.001)
                time.sleep(0.05)
        results["latency"] = {who: dict(median=statistics.median(d) * 1000,
                                        p90=sorted(d)[int(0.9 * (len(d) - 1))] * 1000,
                                        max=max(d) * 1000) for who, d in delays.items()}
        results["latency"]["samples"] = samples
    finally:
        stop(quarry)
        stop(mtail)


def lines_per_cpu_second_row(r, label="lines per CPU-second"):
    if r["q_cpu"] > 0 and r["m_cpu"] > 0:  # GNU time counts in 10 ms steps
        q_lps, m_lps = r["lines"] / r["q_cpu"], r["lines"] / r["m_cpu"]
        return f"| {label} | {q_lps:,.0f} | {m_lps:,.0f} | **{q_lps / m_lps:.1f}x** |"
    return f"| {label} | below the 10 ms resolution of GNU time | | |"


def report(results, binary):
    out = []
    out.append("| workload | quarry_exporter | mtail | ratio |")
    out.append("| --- | --- | --- | --- |")
    if "lines" in results:
        r = results["lines"]
        out.append(f"| {r['lines']:,} lines ({r['size_mb']:.0f} MB), CPU seconds (user+sys) | {r['q_cpu']:.2f} | {r['m_cpu']:.2f} | |")
        out.append(lines_per_cpu_second_row(r))
        out.append(f"| peak RSS, MiB | {r['q_rss']:.1f} | {r['m_rss']:.1f} | {r['q_rss'] / r['m_rss']:.2f} |")
    for r in results.get("extraction", []):
        out.append(f"| {r['title']}: {r['lines']:,} lines ({r['size_mb']:.0f} MB), CPU seconds | {r['q_cpu']:.2f} | {r['m_cpu']:.2f} | |")
        out.append(lines_per_cpu_second_row(r, "same, lines per CPU-second"))
    for s in results.get("scrape", []):
        out.append(f"| `/metrics` with {s['series']:,} series, ms (median) | {s['q_plain_ms']:.1f} | {s['m_plain_ms']:.1f} | {s['q_plain_ms'] / s['m_plain_ms']:.2f} |")
        out.append(f"| same, gzip, ms (median) | {s['q_gz_ms']:.1f} | {s['m_gz_ms']:.1f} | {s['q_gz_ms'] / s['m_gz_ms']:.2f} |")
        out.append(f"| RSS while holding {s['series']:,} series, MiB | {s['q_rss']:.1f} | {s['m_rss']:.1f} | {s['q_rss'] / s['m_rss']:.2f} |")
    if "checkpoint" in results:
        c = results["checkpoint"]
        if c["plain_cpu"] > 0 and c["stored_cpu"] > 0:
            plain, stored = c["lines"] / c["plain_cpu"], c["lines"] / c["stored_cpu"]
            out.append(f"| serving, scraped every second: lines per CPU-second without → with `--storage.path` (best of {c['rounds']}) | {plain:,.0f} → {stored:,.0f} | | {stored / plain:.2f} |")
            out.append(f"| checkpoint: writes during that read, size, last write with fsync | {c.get('writes', 0):.0f}, {c.get('bytes', 0) / 1024:.1f} KiB, {c.get('write_ms', 0):.2f} ms | | |")
    if "concurrent" in results:
        c = results["concurrent"]
        out.append(f"| {c['clients']} concurrent scrapes (gzip) of {c['series']:,} series ({c['q_bytes'] / 1024:.0f} KB), ms, p50 / p99 | {c['q_p50']:.1f} / {c['q_p99']:.1f} | {c['m_p50']:.1f} / {c['m_p99']:.1f} | {c['q_p50'] / c['m_p50']:.2f} / {c['q_p99'] / c['m_p99']:.2f} |")
        out.append(f"| peak threads during those scrapes | {c['q_threads']} | {c['m_threads']} | |")
    if "idle" in results:
        i = results["idle"]
        out.append(f"| idle CPU watching {i['files']:,} unchanged files, % of a core ({i['seconds']} s) | {i['q_pct']:.2f} | {i['m_pct']:.2f} | |")
    if "latency" in results:
        lq, lm = results["latency"]["q"], results["latency"]["m"]
        n = results["latency"]["samples"]
        out.append(f"| write → visible on `/metrics`, ms, median / p90 / max of {n} | {lq['median']:.1f} / {lq['p90']:.1f} / {lq['max']:.1f} | {lm['median']:.1f} / {lm['p90']:.1f} / {lm['max']:.1f} | |")
    return "\n".join(out)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mtail_version = subprocess.run(["mtail", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; {mtail_version}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--series", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--idle-files", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument("--latency-samples", type=int, default=50)
    ap.add_argument("--only", nargs="+", choices=["lines"] + list(EXTRACTION_ROWS),
                    help="run only these log-extraction rows and print their table (BENCHMARKS.md untouched)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="with --only: read each log this many times per tool, alternating; the least CPU counts")
    ap.add_argument("--smoke", action="store_true", help="small sizes, correctness only, BENCHMARKS.md untouched")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "quarry_exporter"))
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    if args.smoke:
        args.lines, args.series, args.idle_files, args.idle_seconds, args.latency_samples = 20_000, [1_000], 50, 2, 3
    if args.repeat != 1 and not args.only:
        sys.exit("--repeat goes with --only")
    if shutil.which("mtail") is None or not os.path.exists("/usr/bin/time"):
        sys.exit("mtail and GNU time are needed (Debian: apt-get install mtail time)")
    if not args.smoke or not os.path.exists(args.binary):
        log("building quarry_exporter (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    results = {}
    if args.only:
        if "lines" in args.only:
            bench_lines(args.binary, args.lines, results, args.repeat)
        for row in EXTRACTION_ROWS:
            if row in args.only:
                bench_extraction(args.binary, row, args.lines, results, args.repeat)
        print(report(results, args.binary))
        single = results.get("lines")
        if single and single["q_cpu"] > 0 and results.get("extraction"):
            base = single["m_cpu"] / single["q_cpu"]
            print(f"each ratio over the access log's ({base:.1f}x): " + ", ".join(
                f"{r['row']} {r['m_cpu'] / r['q_cpu'] / base:.2f}" for r in results["extraction"] if r["q_cpu"] > 0))
        return
    bench_lines(args.binary, args.lines, results)
    for row in EXTRACTION_ROWS:
        bench_extraction(args.binary, row, args.lines, results)
    bench_checkpoint(args.binary, args.lines, results, rounds=1 if args.smoke else 3)
    for n in args.series:
        bench_scrape(args.binary, n, 3 if args.smoke else 10, results)
    bench_concurrent(args.binary, 500 if args.smoke else 6_000, 20 if args.smoke else 200, results)
    bench_idle(args.binary, args.idle_files, args.idle_seconds, results)
    bench_latency(args.binary, args.latency_samples, results)
    table = report(results, args.binary)
    print(table)
    if args.smoke:
        print("bench smoke: quarry_exporter and mtail agree")
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    stamp = f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.\n\n"
    with open(path, "w") as f:
        f.write(head + begin + "\n" + stamp + table + "\n" + end + tail)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
