#!/usr/bin/env python3
"""Benchmark quarry_exporter against mtail on the same machine, in the same run.

One command (see BENCHMARKS.md):  python3 bench/bench.py            # full run, rewrites BENCHMARKS.md
                                   python3 bench/bench.py --smoke    # small, correctness only (CI)

What it does:
1. Generates a deterministic nginx-style access log (seeded; --lines, default 1,000,000).
2. Runs `quarry_exporter one-shot` and `mtail --one_shot` on it with equivalent extraction
   (requests and bytes by method and status, a duration histogram by method with the same
   buckets), checks that both report the same numbers, and measures each child's user+sys CPU
   time and peak RSS with wait4(2).
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


def bench_lines(binary, lines, results):
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
    log("quarry_exporter one-shot")
    q_text, q_cpu, q_rss = run_measured([binary, "one-shot", "--config.file=exporter.yaml"], workdir)
    log("mtail --one_shot")
    m_text, m_cpu, m_rss = run_measured(
        ["mtail", "--one_shot", "--one_shot_format=prometheus", "--emit_prog_label=false",
         "--progs", "access.mtail", "--logs", "access.log", "--logtostderr"], workdir)
    names = ["web_requests_total", "web_response_bytes_total", "web_request_duration_seconds"]
    quarry, mtail = parse_exposition(q_text, names), parse_exposition(m_text, names)
    requests = sum(v for (n, _), v in quarry.items() if n == "web_requests_total")
    if requests != lines:
        sys.exit(f"quarry_exporter counted {requests} requests in {lines} lines")
    problems = compare(quarry, mtail)
    if problems:
        sys.exit("quarry_exporter and mtail disagree:\n" + "\n".join(problems[:40]))
    log(f"both agree on {len(quarry)} samples")
    results["lines"] = dict(lines=lines, size_mb=size_mb, samples=len(quarry),
                            q_cpu=q_cpu, q_rss=q_rss, m_cpu=m_cpu, m_rss=m_rss)


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


def report(results, binary):
    r = results["lines"]
    out = []
    out.append("| workload | quarry_exporter | mtail | ratio |")
    out.append("| --- | --- | --- | --- |")
    out.append(f"| {r['lines']:,} lines ({r['size_mb']:.0f} MB), CPU seconds (user+sys) | {r['q_cpu']:.2f} | {r['m_cpu']:.2f} | |")
    if r["q_cpu"] > 0 and r["m_cpu"] > 0:  # GNU time counts in 10 ms steps
        q_lps, m_lps = r["lines"] / r["q_cpu"], r["lines"] / r["m_cpu"]
        out.append(f"| lines per CPU-second | {q_lps:,.0f} | {m_lps:,.0f} | **{q_lps / m_lps:.1f}x** |")
    else:
        out.append("| lines per CPU-second | below the 10 ms resolution of GNU time | | |")
    out.append(f"| peak RSS, MiB | {r['q_rss']:.1f} | {r['m_rss']:.1f} | {r['q_rss'] / r['m_rss']:.2f} |")
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
    ap.add_argument("--smoke", action="store_true", help="small sizes, correctness only, BENCHMARKS.md untouched")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "quarry_exporter"))
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    if args.smoke:
        args.lines, args.series, args.idle_files, args.idle_seconds, args.latency_samples = 20_000, [1_000], 50, 2, 3
    if shutil.which("mtail") is None or not os.path.exists("/usr/bin/time"):
        sys.exit("mtail and GNU time are needed (Debian: apt-get install mtail time)")
    if not args.smoke or not os.path.exists(args.binary):
        log("building quarry_exporter (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    results = {}
    bench_lines(args.binary, args.lines, results)
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
