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
   time and peak RSS with GNU time. The same for more seeded logs, each with a
   quarry_exporter config and an equivalent mtail program in bench/extraction/: JSON lines
   (`json:` rules; mtail: a regex per field), logfmt (`logfmt:` rules; mtail: a regex per key)
   a mixed log read by nine regex rules (mtail: the same nine regexes) and a second mixed log of
   other programs read by ten rules of other shapes, written apart from the first (`mixed2`);
   and both mixed logs interleaved, read by their 19 rules and five more (`many`: 24 rules,
   as a catalog module and a user's own rules add up to).
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


# --- More extraction rows: JSON lines, logfmt, two mixed logs with many rules ----------------
# Each has a quarry_exporter config and an equivalent mtail program in bench/extraction/, and a
# seeded generator below. `--only json logfmt mixed mixed2 lines` runs just these rows.

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
    records = (((kind,), record) for kind, record in _mixed_records(rng))
    counts = write_records(path, records, lines, lambda k: f"[worker-{k % 8}] progress: idle")
    return {"http_requests_total": counts.get("access", 0), "app_log_lines_total": counts.get("app", 0),
            "ssh_logins_total": counts.get("ssh", 0)}


def write_records(path, records, lines, padding):
    """Writes (tags, lines of a record) from `records` into path until `lines` lines: it ends
    at a record boundary, padded with padding(k) for k = 0, 1, .... Returns how many written
    records carried each tag."""
    counts = {}
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        for tags, record in records:
            if written + len(record) > lines:
                for k in range(lines - written):
                    f.write(padding(k) + "\n")
                break
            f.write("\n".join(record) + "\n")
            written += len(record)
            for tag in tags:
                counts[tag] = counts.get(tag, 0) + 1
    return counts


# --- mixed2: a second mixed log, other programs, other rule shapes ---------------------------
# Written apart from the first mixed row (see bench/extraction/mixed2.yaml): a host where HAProxy,
# Apache, PostgreSQL, nginx (its error log), Redis, php-fpm, the kubelet (klog through journald)
# and systemd all log to one file. Text other than English is in messages, user names and paths.

MIXED2_BACKENDS = [("be_api", "api"), ("be_api", "api"), ("be_web", "web"), ("be_static", "static"),
                   ("be_admin", "admin")]
MIXED2_FRONTENDS = ["fe_https~", "fe_https~", "fe_http", "fe_admin~"]
MIXED2_REQUESTS = ["GET /api/orders HTTP/1.1", "GET /api/orders/81234 HTTP/1.1", "POST /api/cart HTTP/1.1",
                   "GET / HTTP/2.0", "GET /static/app.3f9c1e.js HTTP/2.0", "GET /health HTTP/1.1",
                   "GET /api/search?q=m%C3%BCller HTTP/1.1", "DELETE /api/cart/7 HTTP/1.1", "PUT /api/users/42 HTTP/1.1"]
MIXED2_STATUSES = [200] * 18 + [201, 204, 301, 302, 304, 304, 400, 401, 403, 404, 404, 429, 500, 502, 503, 504]
MIXED2_VHOSTS = ["shop.example.de", "blog.example.de", "intranet.example.fr"]
MIXED2_APACHE_PATHS = ["/", "/index.php", "/wp-login.php", "/feed/", "/wp-content/uploads/2026/11/logo.png",
                       "/wiki/Hauptseite", "/xmlrpc.php", "/robots.txt", "/kontakt/?lang=fr"]
MIXED2_PG_USERS = ["shop", "shop", "shop", "reporting", "postgres", "jürgen", "дмитрий"]
MIXED2_PG_DBS = ["shop", "shop", "analytics", "postgres"]
MIXED2_SQL = [
    "SELECT o.id, o.total FROM orders o WHERE o.customer_id = $1 ORDER BY o.created_at DESC LIMIT 20",
    "SELECT * FROM kunden WHERE nachname = 'Müller' AND ort = 'Köln'",
    "select id, name from products where name ilike '%café%'",
    "INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, $3)",
    "UPDATE carts SET updated_at = now() WHERE id = $1",
    "DELETE FROM sessions WHERE expires_at < now()",
    "BEGIN",
    "COMMIT",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent",
    "SELECT * FROM commentaires WHERE texte LIKE '%déjà vu%'",
    "/* controller:orders */ SELECT id FROM orders WHERE status = 'pending'",
]
MIXED2_K8S_PODS = [("shop", "api-7d9f8c6b5-x2k4p", "api"), ("shop", "worker-6c8d7f9b4-q7z2m", "worker"),
                   ("kube-system", "coredns-5d78c9869d-8hj2k", "coredns"), ("monitoring", "quarry-0", "exporter"),
                   ("shop", "web-5f6d8b7c9-m3n8v", "nginx")]
MIXED2_USERS = ["root", "deploy", "jürgen", "zoë", "dmitrij", "山田", "www-data"]
MIXED2_UNITS = ["nginx", "php8.2-fpm", "backup-kunden", "postgresql@16-main", "redis-server", "certbot",
                "apt-daily", "kubelet", "sauvegarde-nuit"]


def _long_text(rng, parts):
    """2 to 7 KB made of `parts` joined by commas (the line around it stays under 8 KB)."""
    size, out = rng.randint(2000, 7000), []
    while sum(map(len, out)) + len(out) < size:
        out.append(rng.choice(parts))
    return ", ".join(out)


def _mixed2_records(rng):
    """Endless records of the second mixed log: (families a counting rule adds 1 to, its lines)."""
    i = 0
    while True:
        i += 1
        clock = f"10:{(i // 60) % 60:02d}:{i % 60:02d}"
        frac = (i * 7919) % 1000000
        syslog = f"Nov 28 {clock} "
        n = rng.randint(10000, 99999)
        pid = rng.randint(300, 65000)
        r = rng.random()
        if r < 0.24:  # HAProxy, option httplog, through syslog (HAProxy escapes non-ASCII bytes)
            fe = rng.choice(MIXED2_FRONTENDS)
            be, srv = rng.choice(MIXED2_BACKENDS)
            client = f"{rng.choice(['203.0.113', '198.51.100', '10.0.4'])}.{i % 256}:{rng.randint(1024, 65535)}"
            head = f"{syslog}lb-{i % 2} haproxy[{1200 + i % 3}]: {client} [28/Nov/2026:{clock}.{frac // 1000:03d}] {fe} "
            req = rng.choice(MIXED2_REQUESTS)
            if rng.random() < 0.002:
                req = "GET /api/search?" + _long_text(rng, ["q=m%C3%BCller", "tag=sale", "page=2", "sort=price",
                                                            "utm_source=newsletter"]).replace(", ", "&") + " HTTP/1.1"
            hr = rng.random()
            if hr < 0.03:  # client aborted before the server answered: -1 timers and status
                yield (), [f"{head}{be}/<NOSRV> -1/-1/-1/-1/{rng.randint(1, 30000)} -1 0 - - CR-- "
                           f"{rng.randint(1, 900)}/{rng.randint(1, 900)}/0/0/0 0/0 \"{req}\""]
            elif hr < 0.06:  # TCP mode (the database frontend): tcplog has no status
                yield (), [f"{syslog}lb-{i % 2} haproxy[{1200 + i % 3}]: {client} [28/Nov/2026:{clock}.{frac // 1000:03d}] "
                           f"fe_pg be_pg/pg-{i % 2} 1/0/{rng.randint(1, 90000)} {rng.randint(100, 900000)} -- 3/3/2/2/0 0/0"]
            else:
                tq, tw, tc, tr = rng.randint(0, 3), rng.randint(0, 2), rng.randint(0, 5), rng.randint(0, 400)
                ta = max(1, tq + tw + tc + tr + int(rng.lognormvariate(2, 1.5)))  # never 0 (see the access log)
                plus = "+" if rng.random() < 0.05 else ""
                status = rng.choice(MIXED2_STATUSES)
                term = "----" if status < 500 else rng.choice(["sH--", "SC--", "----"])
                headers = " {shop.example.de|Mozilla/5.0}" if rng.random() < 0.3 else ""
                yield ("haproxy_http_responses_total",), [
                    f"{head}{be}/{srv}-{i % 3} {tq}/{tw}/{tc}/{tr}/{plus}{ta} {status} {rng.randint(0, 80000)} - - {term} "
                    f"{rng.randint(1, 900)}/{rng.randint(1, 900)}/{rng.randint(0, 50)}/{rng.randint(0, 10)}/0 0/0{headers} \"{req}\""]
        elif r < 0.34:  # Apache, vhost_combined (Apache escapes non-ASCII bytes); %b is "-" for no body
            status = rng.choice(MIXED2_STATUSES)
            method = rng.choice(["GET"] * 8 + ["POST", "HEAD"])
            size = "-" if status in (204, 304) or method == "HEAD" or rng.random() < 0.05 else str(rng.randint(1, 90000))
            user = rng.choice(["-"] * 6 + ["admin", "j\\xc3\\xbcrgen"])
            yield ("apache_http_requests_total",), [
                f"{rng.choice(MIXED2_VHOSTS)}:{rng.choice([80, 443, 443])} 198.51.100.{i % 256} - {user} "
                f"[28/Nov/2026:{clock} +0100] \"{method} {rng.choice(MIXED2_APACHE_PATHS)} HTTP/1.1\" {status} {size} "
                f"\"-\" \"{rng.choice(['Mozilla/5.0 (Windows NT 10.0; Win64; x64)', 'WordPress/6.4; https://blog.example.de', 'curl/8.5.0'])}\""]
        elif r < 0.48:  # PostgreSQL, log_line_prefix '%m [%p] %q%u@%d '
            head = f"2026-11-28 {clock}.{frac // 1000:03d} UTC [{pid}] "
            user, db = rng.choice(MIXED2_PG_USERS[:5]), rng.choice(MIXED2_PG_DBS)
            session = f"{head}{user}@{db} "
            pr = rng.random()
            if pr < 0.60:
                ms = max(0.011, round(rng.lognormvariate(0.5, 2), 3))
                sql = rng.choice(MIXED2_SQL)
                if rng.random() < 0.003:
                    sql = "INSERT INTO events (kind, payload) VALUES " + _long_text(
                        rng, ["('view', '{\"page\": \"/produkte/käse\"}')", "('click', '{\"id\": 42}')",
                              "('search', '{\"q\": \"東京 ラーメン\"}')", "('view', '{\"page\": \"/\"}')"])
                how = rng.choice(["statement", "statement", "execute <unnamed>", "execute S_1", "bind S_1", "parse <unnamed>"])
                yield ("postgres_log_lines_total",), [f"{session}LOG:  duration: {ms:.3f} ms  {how}: {sql}"]
            elif pr < 0.70:
                yield ("postgres_log_lines_total",), [
                    f"{head}LOG:  checkpoint complete: wrote {rng.randint(1, 9000)} buffers ({rng.random() * 10:.1f}%); "
                    f"0 WAL file(s) added, 0 removed, 1 recycled; write={rng.random() * 30:.3f} s, sync=0.002 s, "
                    f"total={rng.random() * 30:.3f} s"]
            elif pr < 0.78:
                yield (), [f"{head}[unknown]@[unknown] LOG:  connection received: host=10.0.4.{i % 256} port={rng.randint(1024, 65535)}"]
            elif pr < 0.86:
                yield ("postgres_log_lines_total",), [f"{session}LOG:  connection authorized: user={user} database={db} "
                                                      f"application_name=psql"]
            elif pr < 0.94:
                err, stmt = rng.choice([
                    ('duplicate key value violates unique constraint "orders_pkey"',
                     "INSERT INTO orders (id, kunde) VALUES (81234, 'Zoë Dubois')"),
                    ("canceling statement due to statement timeout", "SELECT * FROM rapports_mensuels WHERE année = 2026"),
                    ('relation "bestellungen" does not exist', "SELECT * FROM bestellungen")])
                yield ("postgres_log_lines_total",), [f"{session}ERROR:  {err}", f"{head}{user}@{db} STATEMENT:  {stmt}"]
            else:
                bad = rng.choice(MIXED2_PG_USERS[5:] + ["guest"])
                yield ("postgres_log_lines_total",), [
                    f"{head}{bad}@{db} FATAL:  password authentication failed for user \"{bad}\"",
                    f"{head}{bad}@{db} DETAIL:  Connection matched file \"/etc/postgresql/16/main/pg_hba.conf\" line 102: "
                    f"\"host all all 10.0.0.0/8 scram-sha-256\""]
        elif r < 0.54:  # nginx error log
            head = f"2026/11/28 {clock} "
            cid = rng.randint(1, 9999999)
            tail = f'client: 203.0.113.{i % 256}, server: {rng.choice(["shop.example.de", "api.example.de", "_"])}'
            req = rng.choice(MIXED2_REQUESTS).replace("HTTP/2.0", "HTTP/1.1")
            er = rng.random()
            if er < 0.30:
                yield ("nginx_error_lines_total",), [
                    f"{head}[error] 812#812: *{cid} upstream timed out (110: Connection timed out) while reading response "
                    f"header from upstream, {tail}, request: \"{req}\", upstream: \"http://10.0.3.7:8080/api/orders\", "
                    f"host: \"shop.example.de\""]
            elif er < 0.45:
                yield ("nginx_error_lines_total",), [
                    f"{head}[error] 812#812: *{cid} connect() failed (111: Connection refused) while connecting to "
                    f"upstream, {tail}, request: \"{req}\", upstream: \"http://10.0.3.8:8080/\", host: \"api.example.de\""]
            elif er < 0.60:
                path = rng.choice(["Über uns.png", "café-crème.jpg", "写真/東京.jpg", "меню.pdf", "🎉.gif"])
                yield ("nginx_error_lines_total",), [
                    f"{head}[error] 813#813: *{cid} open() \"/var/www/shop/static/{path}\" failed (2: No such file "
                    f"or directory), {tail}, request: \"GET /static/{path} HTTP/1.1\", host: \"shop.example.de\""]
            elif er < 0.62:
                long_req = "GET /api/search?" + _long_text(rng, ["q=käse", "q=fromage+affiné", "lang=de", "ref=%E2%9C%85"]).replace(", ", "&") + " HTTP/1.1"
                yield ("nginx_error_lines_total",), [
                    f"{head}[error] 812#812: *{cid} upstream sent too big header while reading response header from "
                    f"upstream, {tail}, request: \"{long_req}\", upstream: \"http://10.0.3.7:8080/api/search\""]
            elif er < 0.72:
                yield ("nginx_error_lines_total",), [
                    f"{head}[crit] 812#812: *{cid} SSL_write() failed (32: Broken pipe) while sending to client, "
                    f"{tail}, request: \"{req}\""]
            elif er < 0.85:
                yield (), [f"{head}[warn] 812#812: *{cid} an upstream response is buffered to a temporary file "
                           f"/var/cache/nginx/proxy_temp/{n % 10}/{n % 100:02d}/00000{n} while reading upstream, {tail}, "
                           f"request: \"{req}\""]
            elif er < 0.93:
                yield (), [f"{head}[info] 812#812: *{cid} client {tail.split(',')[0][8:]} closed keepalive connection"]
            else:
                yield (), [f"{head}[notice] 811#811: signal process started"]
        elif r < 0.58:  # Redis
            head = f"{pid % 9000 + 1000}:M 28 Nov 2026 {clock}.{frac // 1000:03d} "
            yield (), [rng.choice([
                f"{head}* 100 changes in 300 seconds. Saving...",
                f"{head}* Background saving started by pid {pid}",
                f"{head}* DB saved on disk",
                f"{head}* Background saving terminated with success",
                f"{head}# Error accepting a client connection: Connection reset by peer",
                f"{head}# WARNING: 32 clients connected (99% of maxclients), approaching the limit",
                f"{head}- Accepted 10.0.4.{i % 256}:{rng.randint(1024, 65535)}",
                f"{pid % 9000 + 1000}:S 28 Nov 2026 {clock}.{frac // 1000:03d} # Timeout connecting to the MASTER...",
                f"{head}* Client id={n} addr=10.0.4.9:51234 laddr=10.0.4.2:6379 name=ワーカー closed (timeout)"])]
        elif r < 0.63:  # php-fpm: master log and slow log
            head = f"[28-Nov-2026 {clock}] "
            pool = rng.choice(["www", "www", "shop", "admin"])
            script = rng.choice(["/var/www/shop/index.php", "/var/www/shop/api/bestellung.php",
                                 "/var/www/shop/export/café.php", "/var/www/shop/cron/レポート.php", "/var/www/blog/xmlrpc.php"])
            fr = rng.random()
            if fr < 0.35:
                sec = round(rng.uniform(5, 60), 6)
                req = rng.choice(["GET /index.php", "POST /api/bestellung.php", "GET /export/café.php?format=csv"])
                yield (), [
                    f"{head}WARNING: [pool {pool}] child {pid}, script '{script}' (request: \"{req}\") executing too slow "
                    f"({sec:.6f} sec), logging"]
            elif fr < 0.55:
                yield (), [f"{head}NOTICE: [pool {pool}] child {pid} started",
                           f"{head}NOTICE: [pool {pool}] child {pid + 1} exited with code 0 after {rng.random() * 900:.6f} "
                           f"seconds from start"]
            elif fr < 0.70:
                yield (), [f"{head}WARNING: [pool {pool}] server reached pm.max_children setting (50), consider raising it"]
            else:
                yield (), ["", f"[28-Nov-2026 {clock}]  [pool {pool}] pid {pid}", f"script_filename = {script}",
                           f"[0x00007f3c9a{n:06d}] curl_exec() /var/www/shop/vendor/guzzle/src/Handler/CurlHandler.php:44",
                           f"[0x00007f3c9a{n + 1:06d}] __invoke() /var/www/shop/vendor/guzzle/src/Middleware.php:31",
                           f"[0x00007f3c9a{n + 2:06d}] bestellungAbschließen() {script}:{rng.randint(10, 900)}"]
        elif r < 0.83:  # kubelet, klog through journald
            ns, pod, container = rng.choice(MIXED2_K8S_PODS)
            uid = f"{n:08x}-{pid:04x}-4f1e-9c2a-{i:012x}"
            sev_pid = rng.randint(900, 999)

            def klog(sev, src, msg):
                return (f"{syslog}node-{i % 3} kubelet[{sev_pid}]: {sev}1128 {clock}.{frac:06d} {sev_pid:>7} {src}] {msg}")
            kr = rng.random()
            if kr < 0.35:
                event = rng.choice(["ContainerStarted", "ContainerDied", "ContainerStarted"])
                line = klog("I", "kubelet.go:2321", f'"SyncLoop (PLEG): event for pod" pod="{ns}/{pod}" '
                                                     f'event={{"ID":"{uid}","Type":"{event}","Data":"{n:x}{pid:x}"}}')
            elif kr < 0.50:
                probe = rng.choice(["Readiness", "Readiness", "Liveness", "Startup"])
                output = rng.choice([
                    f'Get \\"http://10.244.{i % 4}.{i % 200}:8080/health\\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                    f'Get \\"http://10.244.{i % 4}.{i % 200}:8080/health\\": dial tcp 10.244.{i % 4}.{i % 200}:8080: connect: connection refused',
                    "HTTP probe failed with statuscode: 503",
                    "Wartung läuft 🚧 — bitte später erneut versuchen"])
                line = klog("I", "prober.go:107", f'"Probe failed" probeType="{probe}" pod="{ns}/{pod}" podUID="{uid}" '
                                                  f'containerName="{container}" probeResult="failure" output="{output}"')
            elif kr < 0.60:
                line = klog("E", "pod_workers.go:1298", f'"Error syncing pod, skipping" err="failed to \\"StartContainer\\" '
                                                        f'for \\"{container}\\" with CrashLoopBackOff: \\"back-off 5m0s restarting '
                                                        f'failed container={container} pod={pod}_{ns}({uid})\\"" pod="{ns}/{pod}" '
                                                        f'podUID="{uid}"')
            elif kr < 0.605:
                line = klog("E", "kuberuntime_manager.go:1256", f'"Unhandled Error" err="container &Container{{Name:{container},'
                            f'Env:[]EnvVar{{' + _long_text(rng, ["EnvVar{Name:GREETING,Value:Grüß Gott,ValueFrom:nil}",
                                                                 "EnvVar{Name:TITLE,Value:Café de la Gare,ValueFrom:nil}",
                                                                 "EnvVar{Name:LANG,Value:ja_JP.UTF-8,ValueFrom:nil}",
                                                                 "EnvVar{Name:MOTD,Value:ようこそ,ValueFrom:nil}"])
                            + '},} start failed in pod: ErrImagePull: context deadline exceeded" logger="UnhandledError"')
            elif kr < 0.74:
                line = klog("W", "reflector.go:561", f'k8s.io/client-go/informers/factory.go:160: failed to list *v1.Secret: '
                                                     f'secrets "{container}-tls" is forbidden: User "system:node:node-{i % 3}" cannot '
                                                     f'list resource "secrets" in API group "" in the namespace "{ns}"')
            elif kr < 0.90:
                line = klog("I", "kubelet_volumes.go:163", f'"Cleaned up orphaned pod volumes dir" podUID="{uid}" '
                                                           f'path="/var/lib/kubelet/pods/{uid}/volumes"')
            else:
                line = klog("I", "event.go:389", f'"Event occurred" object="{ns}/{pod}" fieldPath="" kind="Pod" '
                                                 f'apiVersion="v1" type="Normal" reason="Pulled" message="'
                            + rng.choice(["Successfully pulled image \\\"registry.example.de/shop/api:2.4.1\\\" in 1.204s",
                                          "Container image \\\"registry.example.de/shop/kasse:ü-1\\\" already present on machine",
                                          "Создан контейнер " + container, "コンテナ " + container + " を起動しました"]) + '"')
            yield ("kubelet_log_lines_total",), [line]
        elif r < 0.87:  # Apache error log
            head = f"[Fri Nov 28 {clock}.{frac:06d} 2026] "
            yield (), [rng.choice([
                f"{head}[proxy_fcgi:error] [pid {pid}:tid 1402{n}] [client 198.51.100.{i % 256}:{rng.randint(1024, 65535)}] "
                f"AH01071: Got error 'PHP message: PHP Warning:  Undefined variable $benutzer in /var/www/shop/index.php "
                f"on line 42', referer: https://shop.example.de/",
                f"{head}[core:error] [pid {pid}:tid 1402{n}] [client 198.51.100.{i % 256}:{rng.randint(1024, 65535)}] "
                f"AH00037: Symbolic link not allowed or link target not accessible: /var/www/blog/files/Übersicht.pdf",
                f"{head}[proxy_fcgi:error] [pid {pid}:tid 1402{n}] [client 198.51.100.{i % 256}:{rng.randint(1024, 65535)}] "
                f"AH01071: Got error 'PHP message: Échec de la connexion à la base «\u00a0commandes\u00a0»\u00a0: délai dépassé'",
                f"{head}[proxy:error] [pid {pid}:tid 1402{n}] (111)Connection refused: AH00957: http: attempt to connect "
                f"to 127.0.0.1:8080 (localhost:8080) failed",
                f"{head}[mpm_event:notice] [pid 1:tid 1402{n}] AH00489: Apache/2.4.62 (Debian) configured -- resuming "
                f"normal operations",
                f"{head}[ssl:warn] [pid {pid}:tid 1402{n}] AH01909: intranet.example.fr:443:0 server certificate does "
                f"NOT include an ID which matches the server name"])]
        elif r < 0.95:  # systemd
            head = f"{syslog}web-{i % 2} systemd[1]: "
            unit = rng.choice(MIXED2_UNITS)
            user = rng.choice(MIXED2_USERS)
            sr = rng.random()
            if sr < 0.08:
                result = rng.choice(["exit-code", "exit-code", "timeout", "signal", "oom-kill"])
                yield ("systemd_service_failures_total",), [
                    f"{head}{unit}.service: Main process exited, code=exited, status=1/FAILURE",
                    f"{head}{unit}.service: Failed with result '{result}'."]
            else:
                yield (), [rng.choice([
                    f"{head}Started session-{n}.scope - Session {n} of User {user}.",
                    f"{head}Starting {unit}.service - {unit} ...",
                    f"{head}Finished {unit}.service.",
                    f"{head}{unit}.service: Deactivated successfully.",
                    f"{head}{unit}.service: Consumed {rng.randint(1, 59)}.{rng.randint(0, 999):03d}s CPU time.",
                    f"{head}user@{1000 + i % 5}.service: Deactivated successfully.",
                    f"{head}Stopped user-runtime-dir@{1000 + i % 5}.service - User Runtime Directory /run/user/{1000 + i % 5}.",
                    f"{head}{unit}.service: Start operation timed out. Terminating."])]
        else:  # the rest: cron, sudo, a deploy script, a Node service, in several languages
            host = f"{syslog}web-{i % 2} "
            user = rng.choice(MIXED2_USERS)
            yield (), [rng.choice([
                f"{host}CRON[{pid}]: ({user}) CMD (/usr/local/bin/sauvegarde --cible /srv/backup)",
                f"{host}sudo: {user} : TTY=pts/{i % 4} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
                f"{host}deploy[{pid}]: 🚀 Release {n} ausgerollt von {user} (Dauer 42 s)",
                f"{host}node[{pid}]: Bestellung {n} bestätigt ✅ Kunde=„Müller“",
                f"{host}node[{pid}]: 注文 {n} の処理が完了しました",
                f"{host}node[{pid}]: Заказ {n} отправлен пользователю {user}",
                f"{host}node[{pid}]: Commande {n} : paiement refusé, délai d'attente dépassé",
                f"{host}node[{pid}]: upstream request timeout after 30000ms (order {n})",
                f"{host}node[{pid}]: proxy_read_timeout reached for /api/orders/{n}"])]


def generate_mixed2_log(path, lines):
    """A second log several programs write to, written apart from the first mixed row, ~150
    bytes a line: HAProxy (httplog and tcplog), Apache access (vhost_combined) and error logs,
    PostgreSQL (durations, checkpoints, errors with their STATEMENT, failed logins), the nginx
    error log, Redis, php-fpm (master log and slow-log stacks), the kubelet's klog lines through
    journald, systemd; non-ASCII text in messages, user names and paths; a few lines of 2 to 8
    KB. Returns the counts the generator knows."""
    rng = random.Random(20261201)
    families = ["haproxy_http_responses_total", "apache_http_requests_total", "postgres_log_lines_total",
                "nginx_error_lines_total", "kubelet_log_lines_total", "systemd_service_failures_total"]
    padding = lambda k: f"Nov 28 11:00:{k % 60:02d} web-0 CRON[{4000 + k}]: (root) CMD (run-parts /etc/cron.hourly)"
    counts = write_records(path, _mixed2_records(rng), lines, padding)
    return {family: counts.get(family, 0) for family in families}


# --- many: both mixed logs in one, read by 24 rules ---------------------------------------------

def generate_many_log(path, lines):
    """The records of the two mixed logs interleaved (one of each in turn, other seeds), ~135
    bytes a line, for bench/extraction/many.yaml's 24 rules. Returns the counts the generators
    know."""
    first, second = _mixed_records(random.Random(20261202)), _mixed2_records(random.Random(20261203))
    first_families = {"access": "http_requests_total", "app": "app_log_lines_total", "ssh": "ssh_logins_total"}

    def records():
        while True:
            kind, record = next(first)
            yield ((first_families[kind],) if kind in first_families else ()), record
            yield next(second)

    padding = lambda k: f"[worker-{k % 8}] progress: idle"
    counts = write_records(path, records(), lines, padding)
    families = list(first_families.values()) + [
        "haproxy_http_responses_total", "apache_http_requests_total", "postgres_log_lines_total",
        "nginx_error_lines_total", "kubelet_log_lines_total", "systemd_service_failures_total"]
    return {family: counts.get(family, 0) for family in families}


def run_measured(cmd, cwd, wall=False):
    """Runs cmd to completion under GNU time; returns (stdout, user+sys seconds, peak RSS MiB),
    and the wall-clock seconds after them when `wall`.

    GNU time rather than wait4 from Python: a child forked from Python starts with Python's
    resident pages, which would count in its peak RSS."""
    out_path, err_path, time_path = (os.path.join(OUT, n) for n in ("child.out", "child.err", "child.time"))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        code = subprocess.run(["/usr/bin/time", "-o", time_path, "-f", "%U %S %M %e"] + cmd,
                              cwd=cwd, stdout=out, stderr=err).returncode
    if code != 0:
        sys.exit(f"{cmd[0]} failed: {open(err_path).read()}")
    user, system, max_kib, elapsed = open(time_path).read().split()[-4:]
    with open(out_path) as f:
        text = f.read()
    measured = (text, float(user) + float(system), int(max_kib) / 1024)
    return measured + (float(elapsed),) if wall else measured


_THREADS_FLAG = {}


def one_shot_cmd(binary, threads):
    """`quarry_exporter one-shot` on `threads` threads per file source; a build from before
    `--threads` (instructions.py and --binary compare older ones) reads on one thread anyway
    and is given no flag (it would refuse it)."""
    if binary not in _THREADS_FLAG:
        help_text = subprocess.run([binary, "one-shot", "--help"], capture_output=True, text=True).stdout
        _THREADS_FLAG[binary] = "--threads" in help_text
    cmd = [binary, "one-shot", "--config.file=exporter.yaml"]
    if _THREADS_FLAG[binary]:
        cmd.append(f"--threads={threads}")
    elif threads != 1:
        return None
    return cmd


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
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=" + os.environ.get("QUARRY_BENCH_LOG_LEVEL", "warn")],
        stdout=subprocess.DEVNULL,
        # QUARRY_BENCH_LOG=FILE keeps the exporter's log (e.g. with QUARRY_BENCH_LOG_LEVEL=debug).
        stderr=open(os.environ["QUARRY_BENCH_LOG"], "w") if os.environ.get("QUARRY_BENCH_LOG") else subprocess.DEVNULL)


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
        # CPU per line is measured on one thread (as a file source reads when serving); the
        # two-thread one-shot's wall time is measured beside it (wall_pair).
        log("quarry_exporter one-shot --threads=1")
        q_text, cpu, rss = run_measured(one_shot_cmd(binary, 1), workdir)
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


def wall_pair(binary, workdir, repeat=1):
    """`one-shot` on one thread and on two, alternating, `repeat` times each: the least wall
    and CPU seconds of each, keyed "1" and "2" (None for a build without `--threads`). Fails
    unless both print the same exposition, byte for byte."""
    two_cmd = one_shot_cmd(binary, 2)
    if two_cmd is None:
        return None
    best = {}
    for _ in range(max(repeat, 2)):
        texts = {}
        for threads, cmd in (("1", one_shot_cmd(binary, 1)), ("2", two_cmd)):
            text, cpu, _, wall = run_measured(cmd, workdir, wall=True)
            texts[threads] = text
            old = best.get(threads, (float("inf"), float("inf")))
            best[threads] = (min(old[0], wall), min(old[1], cpu))
        if texts["1"] != texts["2"]:
            sys.exit(f"{os.path.basename(workdir)}: one-shot on one thread and on two printed different expositions")
    log(f"one-shot wall seconds, one thread {best['1'][0]:.2f} (CPU {best['1'][1]:.2f}), "
        f"two {best['2'][0]:.2f} (CPU {best['2'][1]:.2f}): {best['1'][0] / max(best['2'][0], 1e-9):.2f}x sooner")
    return best


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
    threads = wall_pair(binary, workdir, repeat)
    requests = sum(v for (n, _), v in quarry.items() if n == "web_requests_total")
    if requests != lines:
        sys.exit(f"quarry_exporter counted {requests} requests in {lines} lines")
    results["lines"] = dict(lines=lines, size_mb=size_mb, samples=len(quarry),
                            q_cpu=q_cpu, q_rss=q_rss, m_cpu=m_cpu, m_rss=m_rss, threads=threads)


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
    "mixed2": ("mixed log 2: other programs, other rule shapes, 10 regex rules (mtail: the same 10 regexes)",
               generate_mixed2_log, "mixed2.log", "mixed2",
               ["haproxy_http_responses_total", "haproxy_response_bytes_total", "haproxy_request_duration_seconds",
                "apache_http_requests_total", "apache_http_response_bytes_total", "postgres_log_lines_total",
                "postgres_statement_duration_seconds", "kubelet_log_lines_total", "kubelet_probe_failures_total",
                "nginx_error_lines_total", "php_fpm_slow_request_duration_seconds", "connection_problem_lines_total",
                "systemd_service_failures_total"]),
    "many": ("many rules: both mixed logs interleaved, 24 regex rules (mtail: the same 24 regexes)",
             generate_many_log, "many.log", "many",
             ["http_requests_total", "http_response_bytes_total", "http_request_duration_seconds",
              "http_api_server_errors_total", "app_log_lines_total", "app_operation_duration_seconds",
              "app_exceptions_total", "ssh_logins_total", "oom_kills_total", "json_problem_lines_total",
              "timeout_lines_total", "haproxy_http_responses_total", "haproxy_response_bytes_total",
              "haproxy_request_duration_seconds", "apache_http_requests_total", "apache_http_response_bytes_total",
              "postgres_log_lines_total", "postgres_statement_duration_seconds", "kubelet_log_lines_total",
              "kubelet_probe_failures_total", "nginx_error_lines_total", "php_fpm_slow_request_duration_seconds",
              "connection_problem_lines_total", "systemd_service_failures_total", "cron_jobs_total",
              "firewall_blocked_packets_total", "sessions_started_total", "worker_lines_total",
              "sudo_commands_total"]),
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
    threads = wall_pair(binary, workdir, repeat)
    for family, want in expected.items():
        got = sum(v for (n, _), v in quarry.items() if n == family)
        if got != want:
            sys.exit(f"{row}: {family} sums to {got}, the generator wrote {want}")
    for family in names:
        if not any(v > 0 for (n, _), v in quarry.items() if n in (family, family + "_count")):
            sys.exit(f"{row}: nothing counted in {family}")
    results.setdefault("extraction", []).append(
        dict(row=row, title=title, lines=lines, size_mb=os.path.getsize(log_path) / 1e6, samples=len(quarry),
             q_cpu=q_cpu, q_rss=q_rss, m_cpu=m_cpu, m_rss=m_rss, threads=threads))


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
    walls = [(r, r["threads"]) for r in [results.get("lines")] + results.get("extraction", []) if r and r.get("threads")]
    for r, t in walls:
        what = r.get("row", "access log")
        out.append(f"| one-shot wall seconds, {what}: one thread → two (`--threads`; CPU seconds {t['1'][1]:.2f} → {t['2'][1]:.2f}) | {t['1'][0]:.2f} → {t['2'][0]:.2f} | | {t['2'][0] / t['1'][0]:.2f} |")
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
