#!/usr/bin/env python3
"""Benchmark /probe: quarry_exporter against blackbox_exporter (Debian's package), same run.

One command (see BENCHMARKS.md):  python3 bench/probe.py           # full run, rewrites its section
                                   python3 bench/probe.py --smoke   # small, correctness only

Both exporters serve the multi-target pattern (`/probe?module=...&target=...`). json_exporter,
the closest peer, has no Debian package and cannot be fetched here; blackbox_exporter is the Go
exporter of the same model that can run. Its `http` module fetches the same document and checks
it with a regex (it extracts no values); quarry_exporter's module parses the JSON and turns it
into a state and a gauge per component, so it does more work per probe.

1. Throughput: a real nginx serves a JSON health document (20 components) on loopback; C client
   threads probe it through each exporter, keep-alive, for N probes in all. Reported: probes per
   CPU-second of the exporter (user+sys from /proc), and wall-clock probes per second.
2. Memory per in-flight probe: a target that accepts and never answers; K probes at once
   (scrape timeout 20 s) are held while the exporter's RSS is read; (RSS with K in flight -
   RSS idle) / K.
Every probe's answer is checked (success 1, and for quarry_exporter the 20 component states);
a wrong answer fails the run. No timing is asserted.
"""

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from bench import ROOT, cpu_seconds, free_port  # the same measurements as bench.py

COMPONENTS = 20


def log(msg):
    print(f"[probe-bench] {msg}", file=sys.stderr, flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def start_nginx(work):
    doc = os.path.join(work, "www")
    os.makedirs(doc, exist_ok=True)
    parts = []
    for i in range(COMPONENTS):
        state = ["OK", "DEGRADED: slow", "MAINTENANCE", "DOWN"][i % 4]
        parts.append(f'"svc-{i:02d}": {{"status": "{state}", "response_time": "{10 + i}ms"}}')
    with open(os.path.join(doc, "status.json"), "w") as f:
        f.write('{"components": {' + ", ".join(parts) + "}}\n")
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {doc}; default_type application/json; }} }}
""")
    p = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def start_hanging():
    """A target that accepts connections and never answers."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    held = []

    def accept():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            held.append(c)

    threading.Thread(target=accept, daemon=True).start()
    return s, s.getsockname()[1]


def start_quarry(binary, work, port):
    cfg = os.path.join(work, "quarry.yaml")
    with open(cfg, "w") as f:
        f.write("""version: 1
metrics:
  - {name: component_state, type: state, help: State of each component., labels: [component], states: [up, degraded, maintenance, down]}
  - {name: component_response_seconds, type: gauge, help: Response time of each component., labels: [component]}
modules:
  - name: health
    http: {url: "http://$target/status.json", timeout: 20s}
    rules:
      - json: {for_each: "$.components.*", fields: {component: "@key", status: "@.status", response: "@.response_time"}}
        update:
          - {metric: component_state, labels: {component: $component}, state: $status, map: {"OK": up, "DEGRADED*": degraded, "MAINTENANCE*": maintenance, "DOWN*": down}}
          - {metric: component_response_seconds, labels: {component: $component}, set: $response, as: duration}
""")
    p = subprocess.Popen([binary, "--config.file=" + cfg, f"--web.listen-address=127.0.0.1:{port}",
                          # The memory test holds its probes on one hanging target: all of them
                          # fetch (as blackbox_exporter's do) only above the per-target bound.
                          "--log.level=warn", "--probe.max-concurrent=1024",
                          "--probe.max-per-target=1024"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def start_blackbox(work, port):
    cfg = os.path.join(work, "blackbox.yml")
    with open(cfg, "w") as f:
        f.write("""modules:
  health:
    prober: http
    timeout: 20s
    http:
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp: ['"components"']
""")
    p = subprocess.Popen(["prometheus-blackbox-exporter", "--config.file=" + cfg,
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def check_quarry(body):
    assert "quarry_probe_success 1" in body, body[-800:]
    assert body.count('component_state_level{component="svc-') == COMPONENTS, body[:800]


def check_blackbox(body):
    assert "probe_success 1" in body, body[-800:]


def load(port, path, probes, clients, check):
    """`clients` threads with a keep-alive connection each, `probes` requests in all."""
    errors, done = [], [0]
    lock = threading.Lock()
    per = probes // clients

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(per):
            try:
                conn.request("GET", path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
                r = conn.getresponse()
                body = r.read().decode()
                if r.status != 200:
                    raise AssertionError(f"HTTP {r.status}: {body[:200]}")
                check(body)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with lock:
                    errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                done[0] += 1
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        sys.exit(f"{len(errors)} probes failed, e.g. {errors[:3]}")
    return done[0], wall


def in_flight_memory(pid, port, path, k, settle):
    """RSS per probe while `k` probes of a hanging target are in flight."""
    time.sleep(0.5)
    idle = rss_kib(pid)
    results = []

    def one():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "20"})
            results.append(conn.getresponse().read())
        except OSError as e:
            results.append(e)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(k)]
    for t in threads:
        t.start()
    time.sleep(settle)
    held = rss_kib(pid)
    return idle, held, (held - idle) / k


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--in-flight", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="small sizes, correctness only, BENCHMARKS.md untouched")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "quarry_exporter"))
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    if args.smoke:
        args.probes, args.clients, args.in_flight = 400, 4, 20
    for tool in ("nginx", "prometheus-blackbox-exporter"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: apt-get install nginx-light prometheus-blackbox-exporter)")
    if not args.smoke or not os.path.exists(args.binary):
        log("building quarry_exporter (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="quarry-probe-bench-")
    os.chmod(work, 0o755)  # nginx's workers run unprivileged
    nginx, target = start_nginx(work)
    hanging, hanging_port = start_hanging()
    rows = {}
    try:
        for who in ("quarry", "blackbox"):
            port = free_port()
            if who == "quarry":
                p = start_quarry(args.binary, work, port)
                path, hang, check = f"/probe?module=health&target=127.0.0.1:{target}", \
                    f"/probe?module=health&target=127.0.0.1:{hanging_port}", check_quarry
            else:
                p = start_blackbox(work, port)
                path, hang, check = f"/probe?module=health&target=http://127.0.0.1:{target}/status.json", \
                    f"/probe?module=health&target=http://127.0.0.1:{hanging_port}/status.json", check_blackbox
            try:
                load(port, path, args.clients * 5, args.clients, check)  # warm-up
                cpu0 = cpu_seconds(p.pid)
                n, wall = load(port, path, args.probes, args.clients, check)
                cpu = cpu_seconds(p.pid) - cpu0
                idle, held, per = in_flight_memory(p.pid, port, hang, args.in_flight, 3 if not args.smoke else 1)
                rows[who] = {"n": n, "cpu": cpu, "wall": wall, "idle": idle, "held": held, "per": per}
                log(f"{who}: {n} probes, {cpu:.2f} CPU s, {wall:.2f} s wall; {args.in_flight} in flight: {idle} → {held} KiB")
            finally:
                p.kill()
                p.wait()
    finally:
        nginx.terminate()
        nginx.wait()
        hanging.close()
    q, b = rows["quarry"], rows["blackbox"]
    qps = lambda r: r["n"] / r["cpu"] if r["cpu"] > 0 else float("nan")  # noqa: E731
    out = [
        "| /probe workload | quarry_exporter | blackbox_exporter | ratio |",
        "| --- | --- | --- | --- |",
        f"| {q['n']:,} probes of a 20-component JSON page on nginx, {args.clients} keep-alive clients: probes per CPU-second | {qps(q):,.0f} | {qps(b):,.0f} | **{qps(q) / qps(b):.2f}x** |",
        f"| same, wall-clock probes per second (2 cores shared with nginx and the clients) | {q['n'] / q['wall']:,.0f} | {b['n'] / b['wall']:,.0f} | {(q['n'] / q['wall']) / (b['n'] / b['wall']):.2f} |",
        f"| RSS idle → with {args.in_flight} probes of a hanging target in flight, MiB | {q['idle'] / 1024:.1f} → {q['held'] / 1024:.1f} | {b['idle'] / 1024:.1f} → {b['held'] / 1024:.1f} | |",
        f"| memory per in-flight probe, KiB | {q['per']:.0f} | {b['per']:.0f} | {q['per'] / b['per']:.2f} |",
    ]
    table = "\n".join(out)
    print(table)
    if args.smoke:
        print("probe bench smoke: every probe answered correctly")
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    begin, end = "<!-- probe:begin -->", "<!-- probe:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    bb = subprocess.run(["prometheus-blackbox-exporter", "--version"], capture_output=True, text=True)
    bb_version = (bb.stdout or bb.stderr).split("\n")[0]
    stamp = f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; {bb_version}.\n\n"
    with open(path, "w") as f:
        f.write(head + begin + "\n" + stamp + table + "\n" + end + tail)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
