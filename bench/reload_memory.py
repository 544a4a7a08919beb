#!/usr/bin/env python3
"""Memory across reloads: does the exporter's RSS keep growing with each reload, or level off?

One command:   python3 bench/reload_memory.py                      # 3,000 reloads, sample every 100
               python3 bench/reload_memory.py -n 300 -k 50          # quicker
               python3 bench/reload_memory.py --env MALLOC_ARENA_MAX=2
               python3 bench/reload_memory.py --binary target/debug/quarry_exporter

It starts the release binary on the shipped exporter.yaml with --web.enable-lifecycle, waits for
its first scrape, then sends N `POST /-/reload` one after another (each answers once the reload
is done, so they never overlap) and every K reloads reads from /proc/PID: VmRSS, VmHWM, the
thread count (task/) and the open descriptors (fd/). A scrape of /metrics goes with every sample
(what Prometheus would do meanwhile). The table goes to stdout; the last line is a summary:
RSS growth per reload over the second half of the run (a leak keeps its slope, a plateau goes
to ~0). Every reload must answer 200; anything else fails the run. Nothing is timed.
"""

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0])
    out["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def request(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(port, proc):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"the exporter exited with {proc.returncode}")
        try:
            status, _ = request(port, "GET", "/-/ready")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("the exporter did not become ready")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", "--reloads", type=int, default=3000)
    p.add_argument("-k", "--every", type=int, default=100, help="sample every K reloads")
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/quarry_exporter"))
    p.add_argument("--config", default=os.path.join(ROOT, "exporter.yaml"))
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the exporter")
    p.add_argument("--hup", action="store_true", help="reload with SIGHUP instead of HTTP")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds between reloads (over 1 s, every page source fetches in between)")
    args = p.parse_args()

    port = free_port()
    env = dict(os.environ)
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [args.binary, "--config.file", args.config, f"--web.listen-address=127.0.0.1:{port}",
         "--web.enable-lifecycle", "--log.level=warn"],
        env=env, stdout=log, stderr=log)
    try:
        wait_ready(port, proc)
        request(port, "GET", "/metrics")
        rows = []

        def sample(n):
            request(port, "GET", "/metrics")
            s = proc_status(proc.pid)
            rows.append((n, s))
            print(f"{n:>7} {s['VmRSS']:>9} {s['RssAnon']:>9} {s['VmHWM']:>9} "
                  f"{s['threads']:>7} {s['fds']:>5}", flush=True)

        print(" reload   RSS_KiB  anon_KiB   HWM_KiB threads   fds")
        sample(0)
        for i in range(1, args.reloads + 1):
            if args.hup:
                # SIGHUP gives no answer: wait until the reload counts in the metrics.
                before = reload_timestamp(port)
                proc.send_signal(1)
                while reload_timestamp(port) == before:
                    time.sleep(0.001)
            else:
                status, body = request(port, "POST", "/-/reload")
                if status != 200:
                    sys.exit(f"reload {i} answered {status}: {body!r}")
            if args.pause:
                time.sleep(args.pause)
            if i % args.every == 0:
                sample(i)
        half = [r for r in rows if r[0] >= args.reloads // 2]
        if len(half) >= 2 and half[-1][0] > half[0][0]:
            slope = (half[-1][1]["VmRSS"] - half[0][1]["VmRSS"]) * 1024 / (half[-1][0] - half[0][0])
            print(f"# RSS growth over the second half: {slope:.0f} bytes per reload "
                  f"({half[0][1]['VmRSS']} -> {half[-1][1]['VmRSS']} KiB); "
                  f"threads {rows[0][1]['threads']} -> {rows[-1][1]['threads']}, "
                  f"fds {rows[0][1]['fds']} -> {rows[-1][1]['fds']}")
    finally:
        proc.terminate()
        proc.wait()


def reload_timestamp(port):
    _, body = request(port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("quarry_config_last_reload_success_timestamp_seconds "):
            return line.split()[1]
    return None


if __name__ == "__main__":
    main()
