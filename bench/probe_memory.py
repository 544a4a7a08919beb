#!/usr/bin/env python3
"""Memory of /probe under large documents: peak and leftover RSS of quarry_exporter.

    python3 bench/probe_memory.py                          # release build of this tree
    python3 bench/probe_memory.py --binary OTHER_BINARY    # e.g. a build of an older revision
    python3 bench/probe_memory.py --probes 32 --size 10000000 --rounds 3 -- --probe.max-body-bytes-in-flight=128MiB

A threaded HTTP server on loopback serves one JSON document of --size bytes (with its
Content-Length, as most servers send a static document); --probes clients probe it through the
exporter all at once, --rounds times. Reported per round: how the probes ended (success or
reason), the peak RSS (VmHWM, the kernel's own high-water mark: no sampling misses it) and the
RSS two seconds after the last probe answered. Arguments after `--` go to the exporter.
Nothing is asserted: it measures.
"""

import argparse
import http.client
import http.server
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[probe-memory] {msg}", file=sys.stderr, flush=True)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def document(size):
    """A JSON document of about `size` bytes: a count and many small items."""
    item = '{"name": "item-%07d", "state": "OK", "latency_ms": %d}'
    parts, total, i = [], 0, 0
    while total < size - 64:
        p = item % (i, i % 1000)
        parts.append(p)
        total += len(p) + 2
        i += 1
    return ('{"requests": %d, "items": [' % i + ", ".join(parts) + "]}").encode()


def serve(body):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def probe_all(port, target, n):
    outcomes = []
    lock = threading.Lock()

    def one():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", f"/probe?module=big&target=127.0.0.1:{target}",
                     headers={"X-Prometheus-Scrape-Timeout-Seconds": "60"})
        body = conn.getresponse().read().decode()
        if "quarry_probe_success 1" in body:
            what = "success"
        else:
            m = re.search(r'quarry_probe_failure_reason\{reason="(\w+)"\} 1', body)
            what = m.group(1) if m else "?"
        with lock:
            outcomes.append(what)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "quarry_exporter"))
    ap.add_argument("--probes", type=int, default=32)
    ap.add_argument("--size", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("exporter_args", nargs="*")
    args = ap.parse_args()
    body = document(args.size)
    server, target = serve(body)
    work = tempfile.mkdtemp(prefix="quarry-probe-memory-")
    cfg = os.path.join(work, "exporter.yaml")
    with open(cfg, "w") as f:
        f.write("""version: 1
metrics:
  - {name: app_requests, type: gauge, help: Requests the app has served., labels: []}
modules:
  - name: big
    http: {url: "http://$target/status.json", timeout: 60s}
    rules:
      - json: {fields: {requests: "$.requests"}}
        update: [{metric: app_requests, set: $requests}]
""")
    port = free_port()
    p = subprocess.Popen([args.binary, "--config.file=" + cfg, f"--web.listen-address=127.0.0.1:{port}",
                          "--log.level=warn", *args.exporter_args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.5)
        idle = status_kib(p.pid, "VmRSS")
        log(f"{args.binary}: document {len(body):,} bytes, {args.probes} probes at once; idle RSS {idle / 1024:.1f} MiB")
        print("| round | outcomes | peak RSS, MiB | RSS 2 s after, MiB |")
        print("| --- | --- | --- | --- |")
        for r in range(1, args.rounds + 1):
            counts = probe_all(port, target, args.probes)
            time.sleep(2)
            peak, after = status_kib(p.pid, "VmHWM"), status_kib(p.pid, "VmRSS")
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            print(f"| {r} | {shown} | {peak / 1024:.0f} | {after / 1024:.0f} |", flush=True)
    finally:
        p.kill()
        p.wait()
        server.shutdown()


if __name__ == "__main__":
    main()
