#!/usr/bin/env python3
"""Can hanging targets starve a healthy one? Success rate of a healthy target's probes while
others hang.

    python3 bench/probe_starvation.py                         # release build of this tree
    python3 bench/probe_starvation.py --binary OTHER_BINARY   # e.g. a build of an older revision
    python3 bench/probe_starvation.py --held 70 --hanging-targets 70 -- --probe.max-concurrent=512

--held probes are kept in flight on --hanging-targets targets that accept connections and never
answer (each probe, once it fails, is sent again at once, as Prometheus scrapes again; their
scrape timeout is 10 s). Meanwhile a healthy target (a small JSON document) is probed one probe
after another for --seconds with a 2 s scrape timeout. Reported: how the healthy probes ended
(success, or each failure reason), and the success rate. Arguments after `--` go to the
exporter. Nothing is asserted: it measures.
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


def hanging_target():
    """Accepts connections and never answers."""
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


def healthy_target():
    body = b'{"requests": 7}'

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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


def outcome(port, target, scrape_timeout):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", f"/probe?module=app&target=127.0.0.1:{target}",
                     headers={"X-Prometheus-Scrape-Timeout-Seconds": scrape_timeout})
        body = conn.getresponse().read().decode()
        conn.close()
    except OSError as e:
        return f"error {e}"
    if "quarry_probe_success 1" in body:
        return "success"
    m = re.search(r'quarry_probe_failure_reason\{reason="(\w+)"\} 1', body)
    return m.group(1) if m else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "quarry_exporter"))
    ap.add_argument("--held", type=int, default=70)
    ap.add_argument("--hanging-targets", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("exporter_args", nargs="*")
    args = ap.parse_args()
    hanging = [hanging_target() for _ in range(args.hanging_targets)]
    server, healthy = healthy_target()
    work = tempfile.mkdtemp(prefix="quarry-probe-starvation-")
    cfg = os.path.join(work, "exporter.yaml")
    with open(cfg, "w") as f:
        f.write("""version: 1
metrics:
  - {name: app_requests, type: gauge, help: Requests the app has served., labels: []}
modules:
  - name: app
    http: {url: "http://$target/status.json", timeout: 30s}
    rules:
      - json: {fields: {requests: "$.requests"}}
        update: [{metric: app_requests, set: $requests}]
""")
    port = free_port()
    p = subprocess.Popen([args.binary, "--config.file=" + cfg, f"--web.listen-address=127.0.0.1:{port}",
                          "--log.level=warn", *args.exporter_args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        wait_port(port)

        def hold(i):
            target = hanging[i % len(hanging)][1]
            while not stop.is_set():
                outcome(port, target, "10")

        threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(args.held)]
        for t in threads:
            t.start()
        time.sleep(1)
        counts = {}
        end = time.time() + args.seconds
        while time.time() < end:
            o = outcome(port, healthy, "2")
            counts[o] = counts.get(o, 0) + 1
        total = sum(counts.values())
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{os.path.basename(args.binary)} {' '.join(args.exporter_args)}: {args.held} probes held on "
              f"{args.hanging_targets} hanging target(s); healthy target: {shown}; "
              f"success rate {100 * counts.get('success', 0) / total:.0f}%", flush=True)
    finally:
        stop.set()
        p.kill()
        p.wait()
        server.shutdown()
        for s, _ in hanging:
            s.close()


if __name__ == "__main__":
    main()
