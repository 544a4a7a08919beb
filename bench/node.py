#!/usr/bin/env python3
"""Node-scale benchmark: every container's log on a node, quarry_exporter and mtail side by side.

One command (see BENCHMARKS.md, "Node scale"):
    python3 bench/node.py                      # 500 files, 20,000 lines/s, then 50 files
    python3 bench/node.py --smoke              # tiny, correctness only
    python3 bench/node.py --churn 600          # pods created and deleted for 10 minutes

What it does:
1. Lays out container logs as the kubelet does, `pods/<ns>_<pod>_<uid>/<container>/0.log`, and
   starts quarry_exporter (release build) and mtail (Debian's) on the same tree, both
   following it at once.
2. A generator process (this script with `--generate`) writes CRI lines
   (`<time> <stream> F <text>`) into every file at a steady total rate (default 20,000 lines/s),
   and rotates the files as the kubelet does while it writes: `0.log` renamed to
   `0.log.<timestamp>`, a line or two still written to the renamed file (the runtime has not
   reopened yet), a new `0.log`, the older rotated files gzip-compressed, at most five kept.
   With `--churn SECONDS`, pods are also deleted (their writer stops, their directory is
   removed 10 s later) and new pods created, for that long.
3. Over a measuring window: CPU % of a core of each tool (utime + stime from /proc/PID/stat),
   RSS every second (peak and at the end), descriptors and inotify watches.
4. Latency: a marker line is written to one of the files; /metrics of each tool is polled until
   its marker counter moves; median and p99 over many markers.
5. When the generator stops, it writes what it wrote (lines per file and stream, errors, the
   durations); the run fails unless quarry_exporter and mtail both counted exactly that, series
   by series, and agree with each other on every sample.
A disagreement fails the run (exit 1). No timing is asserted.
"""

import argparse
import gzip
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared helpers: ports, /metrics parsing, process stats)

ROOT = bench.ROOT
OUT = os.path.join(ROOT, "bench", "out", "node")
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
NAMESPACES = ["shop", "payments", "search", "auth", "kube-system", "monitoring", "batch", "web", "data", "edge"]
CONTAINERS = ["app", "sidecar"]
FAMILIES = ["node_log_records_total", "node_log_errors_total", "node_request_duration_seconds", "node_markers_total"]
PROBE_DIR = "bench_latency-probe_00000000-0000-0000-0000-000000000000"

PATH_REGEX = r"/pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_[^/]+/(?P<container>[^/]+)/"


def quarry_config(expire, file_options=""):
    exp = f", expire_after: {expire}" if expire else ""
    more = f", {file_options}" if file_options else ""
    return f"""version: 1
metrics:
  - {{name: node_log_records_total, type: counter, help: Records by pod., labels: [namespace, pod, container, stream]{exp}}}
  - {{name: node_log_errors_total, type: counter, help: Error records., labels: [namespace, container]}}
  - name: node_request_duration_seconds
    type: histogram
    help: Request durations.
    labels: [namespace]
    buckets: [{", ".join(str(b) for b in BUCKETS)}]
  - {{name: node_markers_total, type: counter, help: Latency markers.}}
sources:
  - name: pods
    file: {{paths: ["pods/*/*/*.log"], format: cri{more}}}
    rules:
      - name: records
        regex: ''
        derive: &pod
          - {{from: $__file__, regex: '{PATH_REGEX}'}}
        update:
          - {{metric: node_log_records_total, labels: {{namespace: $namespace, pod: $pod, container: $container, stream: $__stream__}}}}
      - name: errors
        regex: 'level=error '
        derive: *pod
        update:
          - {{metric: node_log_errors_total, labels: {{namespace: $namespace, container: $container}}}}
      - name: durations
        regex: ' duration=(?P<seconds>\\d+\\.\\d+)'
        derive: *pod
        update:
          - {{metric: node_request_duration_seconds, labels: {{namespace: $namespace}}, observe: $seconds}}
      - name: markers
        regex: ' msg=marker '
        update:
          - {{metric: node_markers_total}}
"""


MTAIL_PROGRAM = f"""counter node_log_records_total by namespace, pod, container, stream
counter node_log_errors_total by namespace, container
histogram node_request_duration_seconds by namespace buckets {", ".join(str(b) for b in BUCKETS)}
counter node_markers_total

getfilename() =~ /{PATH_REGEX.replace("/", chr(92) + "/")}/ {{
  /^\\S+ (?P<stream>stdout|stderr) F / {{
    node_log_records_total[$namespace][$pod][$container][$stream]++
  }}
  /level=error / {{
    node_log_errors_total[$namespace][$container]++
  }}
  / duration=(?P<seconds>\\d+\\.\\d+)/ {{
    node_request_duration_seconds[$namespace] = $seconds
  }}
}}
/ msg=marker / {{
  node_markers_total++
}}
"""


# --- The generator (a process of its own: `node.py --generate ...`) ---------------------------

class Pod:
    def __init__(self, root, ns, name, uid):
        self.dir = os.path.join(root, "pods", f"{ns}_{name}_{uid}")
        self.ns, self.name = ns, name
        self.files = {}  # container -> open file of 0.log
        self.rotated = {c: [] for c in CONTAINERS}
        for c in CONTAINERS:
            os.makedirs(os.path.join(self.dir, c), exist_ok=True)
            self.files[c] = open(os.path.join(self.dir, c, "0.log"), "a", buffering=1 << 20)

    def path(self, c):
        return os.path.join(self.dir, c, "0.log")


def cri_time(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def make_line(rng, now):
    r = rng.random()
    if r < 0.70:
        status = rng.choice([200] * 18 + [201, 204, 304, 404, 500])
        d = max(0.000001, round(rng.lognormvariate(-3.5, 1.3), 6))
        return "stdout", False, d, (f'level=info msg="request done" method={rng.choice(["GET", "GET", "POST", "PUT"])} '
                                    f'path=/api/v1/items/{rng.randint(1, 9999)} status={status} duration={d:.6f}')
    if r < 0.82:
        return "stdout", False, None, f'level=debug msg="cache miss" key=user:{rng.randint(1, 99999)} ttl=300'
    if r < 0.95:
        return "stderr", False, None, f'level=warn msg="slow upstream, retrying" attempt={rng.randint(1, 3)} upstream=10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}:8080'
    d = round(rng.uniform(1.0, 6.0), 6)
    return "stderr", True, d, f'level=error msg="upstream failed" err="connection reset by peer" duration={d:.6f}'


def generate(args):
    """Writes lines at a steady rate until SIGTERM, then writes what it wrote to args.counts."""
    rng = random.Random(args.seed)
    root = args.root
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    with open(os.path.join(root, "pods.json")) as f:
        initial = json.load(f)
    pods = [Pod(root, ns, name, uid) for ns, name, uid in initial]
    # Counts: records per (file path, stream), errors per (ns, container), durations per ns.
    records, errors, durations = {}, {}, {}
    weights = {}

    def weight(pod):
        if pod.dir not in weights:
            weights[pod.dir] = rng.choice([0.2, 0.5, 1, 1, 1, 2, 4])
        return weights[pod.dir]

    def write(pod, c, n, now):
        f = pod.files[c]
        key = pod.path(c)
        ts = cri_time(now)
        parts = []
        for _ in range(n):
            stream, is_error, d, text = make_line(rng, now)
            parts.append(f"{ts} {stream} F {text}\n")
            records[(key, stream)] = records.get((key, stream), 0) + 1
            if is_error:
                errors[(pod.ns, c)] = errors.get((pod.ns, c), 0) + 1
            if d is not None:
                durations.setdefault(pod.ns, []).append(d)
        f.write("".join(parts))
        f.flush()

    def rotate(pod, c, now):
        live = pod.path(c)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"{int((now % 1) * 1e6):06d}"
        rotated = f"{live}.{stamp}"
        os.rename(live, rotated)
        write(pod, c, 1, now)  # the runtime has not reopened yet: this line goes to the renamed file
        pod.files[c].close()
        pod.files[c] = open(live, "a", buffering=1 << 20)
        # The kubelet compresses every rotated file but the newest and keeps five files in all.
        for old in pod.rotated[c]:
            if not old.endswith(".gz"):
                with open(old, "rb") as src, gzip.open(old + ".gz", "wb", compresslevel=1) as dst:
                    shutil.copyfileobj(src, dst)
                os.unlink(old)
        pod.rotated[c] = [o if o.endswith(".gz") else o + ".gz" for o in pod.rotated[c]] + [rotated]
        while len(pod.rotated[c]) > 4:
            os.unlink(pod.rotated[c].pop(0))

    tick = 0.05
    start = time.time()
    written = 0
    rot_per_tick = args.rotations_per_second * tick
    rot_owed = 0.0
    rot_cursor = 0
    churn_until = start + args.churn
    churn_owed = 0.0
    dying = []  # (time to remove its directory, pod)
    serial = 0
    owed = {}
    rotations = churned = 0
    k = 0
    while not stop["now"]:
        k += 1
        target = start + k * tick
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        due = int(args.rate * (now - start)) - written
        if due > 0:
            total_w = sum(weight(p) * len(CONTAINERS) for p in pods)
            for p in pods:
                for c in CONTAINERS:
                    owed[(p.dir, c)] = owed.get((p.dir, c), 0.0) + due * weight(p) / total_w
                    n = int(owed[(p.dir, c)])
                    if n:
                        owed[(p.dir, c)] -= n
                        write(p, c, n, now)
                        written += n
        rot_owed += rot_per_tick
        while rot_owed >= 1 and pods:
            rot_owed -= 1
            p = pods[rot_cursor % len(pods)]
            c = CONTAINERS[(rot_cursor // len(pods)) % len(CONTAINERS)]
            rot_cursor += 1
            rotate(p, c, now)
            rotations += 1
        if now < churn_until and args.churn_per_second > 0:
            churn_owed += args.churn_per_second * tick
            while churn_owed >= 1:
                churn_owed -= 1
                # Delete a pod (never the latency probe's): its writer stops now, its directory
                # goes 10 s later, when the exporters have read it to its end.
                victim = pods.pop(rng.randrange(len(pods)))
                for f in victim.files.values():
                    f.close()
                dying.append((now + 10, victim))
                serial += 1
                ns = rng.choice(NAMESPACES)
                uid = f"{rng.getrandbits(32):08x}-{serial:04x}-4000-8000-{rng.getrandbits(48):012x}"
                pods.append(Pod(root, ns, f"{ns}-churn-{serial}", uid))
                churned += 1
        while dying and dying[0][0] <= now:
            shutil.rmtree(dying.pop(0)[1].dir, ignore_errors=True)
    for p in pods:
        for f in p.files.values():
            f.close()
    elapsed = time.time() - start
    out = dict(
        written=sum(records.values()), elapsed=elapsed, rotations=rotations, churned=churned,
        records=[[k[0], k[1], v] for k, v in records.items()],
        errors=[[k[0], k[1], v] for k, v in errors.items()],
        durations={ns: [len(v), sum(v), [sum(1 for d in v if d <= b) for b in BUCKETS]] for ns, v in durations.items()},
        live=[p.dir for p in pods], deleted_pending=[p.dir for _, p in dying])
    with open(args.counts + ".tmp", "w") as f:
        json.dump(out, f)
    os.rename(args.counts + ".tmp", args.counts)


# --- The driver ---------------------------------------------------------------------------

def layout(root, files):
    """`files` container logs: `files / 2` pods of two containers, spread over the namespaces,
    plus the latency probe's pod (one file, written by the driver only)."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "pods"))
    rng = random.Random(20261205)
    pods = []
    for i in range((files - 1 + 1) // 2):
        ns = NAMESPACES[i % len(NAMESPACES)]
        name = f"{ns}-{rng.choice(['api', 'worker', 'web', 'db'])}-{i:04d}"
        uid = f"{rng.getrandbits(32):08x}-{i:04x}-4000-8000-{rng.getrandbits(48):012x}"
        pods.append([ns, name, uid])
        for c in CONTAINERS:
            d = os.path.join(root, "pods", f"{ns}_{name}_{uid}", c)
            os.makedirs(d)
            open(os.path.join(d, "0.log"), "w").close()
    probe = os.path.join(root, "pods", PROBE_DIR, "probe")
    os.makedirs(probe)
    open(os.path.join(probe, "0.log"), "w").close()
    with open(os.path.join(root, "pods.json"), "w") as f:
        json.dump(pods, f)
    return len(pods) * len(CONTAINERS) + 1, os.path.join(probe, "0.log")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def fds_and_watches(pid):
    fds = watches = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            fds += 1
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    watches += sum(1 for line in f if line.startswith("inotify wd:"))
            except OSError:
                pass
    except OSError:
        pass
    return fds, watches


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def scrape(port):
    return bench.parse_exposition(bench.get(port).decode(), FAMILIES)


def expected_samples(counts, root, include_records=True):
    """The samples both tools must show, from what the generator wrote (plus markers)."""
    exp = {}
    if include_records:
        for path, stream, n in counts["records"]:
            rel = "/" + os.path.relpath(path, root)
            parts = rel.split("/")  # ['', 'pods', 'ns_pod_uid', container, '0.log']
            ns, pod = parts[2].split("_")[:2]
            key = ("node_log_records_total", tuple(sorted(
                [("container", parts[3]), ("namespace", ns), ("pod", pod), ("stream", stream)])))
            exp[key] = exp.get(key, 0) + n
    for ns, c, n in counts["errors"]:
        exp[("node_log_errors_total", (("container", c), ("namespace", ns)))] = n
    for ns, (count, total, cum) in counts["durations"].items():
        exp[("node_request_duration_seconds_count", (("namespace", ns),))] = count
        exp[("node_request_duration_seconds_sum", (("namespace", ns),))] = total
        for b, n in zip(BUCKETS, cum):
            exp[("node_request_duration_seconds_bucket", (("le", bench.normalize_le(str(b))), ("namespace", ns)))] = n
        exp[("node_request_duration_seconds_bucket", (("le", "+Inf"), ("namespace", ns)))] = count
    return exp


def check_against(name, got, exp, families_exact):
    """Problems where `got` differs from `exp` (sums with a relative tolerance: the tools add
    the same floats in another order)."""
    problems = []
    for key, want in sorted(exp.items()):
        have = got.get(key)
        tol = 1e-9 * max(1.0, abs(want)) if key[0].endswith("_sum") else 0
        if have is None or abs(have - want) > tol:
            problems.append(f"  {name} {key[0]}{dict(key[1])}: counted {have}, written {want}")
    for key in sorted(got):
        if key[0] in families_exact and key not in exp and got[key] != 0:
            problems.append(f"  {name} {key[0]}{dict(key[1])}: counted {got[key]}, written nothing")
    return problems


def run(args, files, churn, label):
    root = os.path.join(OUT, f"{label}")
    nfiles, probe = layout(root, files)
    with open(os.path.join(root, "exporter.yaml"), "w") as f:
        f.write(quarry_config(args.expire if churn and args.expire != "none" else None, args.file_options))
    program = os.path.join(root, "node.mtail")
    with open(program, "w") as f:
        f.write(MTAIL_PROGRAM)
    qp, mp = bench.free_port(), bench.free_port()
    quarry = bench.start_quarry(args.binary, root, qp)
    mtail = bench.start_mtail(program, os.path.join(root, "pods", "*", "*", "*.log"), mp)
    gen = None
    result = dict(label=label, files=nfiles, rate=args.rate, churn=churn)
    try:
        bench.wait_for("quarry_exporter to follow every file",
                       lambda: bench.metric_value(qp, 'quarry_source_files{source="pods"}') == nfiles)
        bench.wait_for("mtail to serve", lambda: bench.get(mp))
        time.sleep(3)  # mtail finds the files by polling its globs
        result["idle_rss"] = {"q": bench.rss_mib(quarry.pid), "m": bench.rss_mib(mtail.pid)}
        counts_path = os.path.join(root, "counts.json")
        gen = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--generate", "--root", root,
                                "--counts", counts_path, "--rate", str(args.rate),
                                "--rotations-per-second", str(args.rotations_per_second),
                                "--churn", str(churn), "--churn-per-second", str(args.churn_per_second)])
        bench.log(f"{label}: {nfiles} files, {args.rate} lines/s, warming up {args.warmup}s (load {loadavg()})")
        time.sleep(args.warmup)
        window = churn if churn else args.window
        procs = {"q": quarry.pid, "m": mtail.pid, "g": gen.pid}
        cpu0 = {k: bench.cpu_seconds(p) for k, p in procs.items()}
        t0 = time.time()
        rss_series = []
        peak = {"q": 0.0, "m": 0.0}
        loads = [loadavg()]
        next_print = t0
        while time.time() - t0 < window:
            time.sleep(1)
            now = time.time() - t0
            r = {"q": bench.rss_mib(quarry.pid), "m": bench.rss_mib(mtail.pid)}
            for k in r:
                peak[k] = max(peak[k], r[k])
            if time.time() >= next_print:
                rss_series.append((round(now), r["q"], r["m"]))
                bench.log(f"  t={now:5.0f}s RSS quarry {r['q']:.1f} MiB, mtail {r['m']:.1f} MiB, load {loadavg()}")
                next_print += args.sample_every
                loads.append(loadavg())
        cpu1 = {k: bench.cpu_seconds(p) for k, p in procs.items()}
        elapsed = time.time() - t0
        result["cpu_pct"] = {k: 100 * (cpu1[k] - cpu0[k]) / elapsed for k in procs}
        result["window"] = elapsed
        result["loads"] = loads
        result["rss_series"] = rss_series
        result["fds_watches"] = {"q": fds_and_watches(quarry.pid), "m": fds_and_watches(mtail.pid)}
        result["threads"] = {"q": status_kib(quarry.pid, "Threads"), "m": status_kib(mtail.pid, "Threads")}
        # Latency: a marker line into the probe's file, /metrics of both polled until it shows.
        delays = {"q": [], "m": []}
        with open(probe, "a") as f:
            for i in range(args.markers):
                f.write(f"{cri_time(time.time())} stdout F level=info msg=marker n={i} \n")
                f.flush()
                t = time.perf_counter()
                seen = {"q": False, "m": False}
                while not all(seen.values()):
                    for who, port in (("q", qp), ("m", mp)):
                        if not seen[who] and bench.metric_value(port, "node_markers_total") == i + 1:
                            seen[who] = True
                            delays[who].append(time.perf_counter() - t)
                    if time.perf_counter() - t > 60:
                        sys.exit(f"marker {i} not visible after 60s: {seen}")
                    time.sleep(0.002)
                time.sleep(0.02)
                if (i + 1) % 50 == 0:
                    bench.log(f"  {i + 1} markers, load {loadavg()}")
        result["latency"] = {who: dict(median=statistics.median(d) * 1000,
                                       p99=sorted(d)[min(len(d) - 1, int(0.99 * len(d)))] * 1000,
                                       max=max(d) * 1000) for who, d in delays.items()}
        gen.send_signal(signal.SIGTERM)
        gen.wait(timeout=120)
        gen = None
        with open(counts_path) as f:
            counts = json.load(f)
        result["written"] = counts["written"]
        result["gen_elapsed"] = counts["elapsed"]
        result["rotations"] = counts["rotations"]
        result["churned"] = counts["churned"]
        exp = expected_samples(counts, root)
        exp[("node_markers_total", ())] = args.markers
        # The probe's marker lines are records of the probe pod too.
        probe_key = ("node_log_records_total", (("container", "probe"), ("namespace", "bench"),
                                                ("pod", "latency-probe"), ("stream", "stdout")))
        exp[probe_key] = args.markers
        live = {"/" + os.path.relpath(d, root) for d in counts["live"]}

        def problems_of(who, samples):
            if who == "mtail" or not churn:
                return check_against(who, samples, exp, {"node_log_records_total"})
            # Records of deleted pods expire from quarry_exporter (expire_after), not from
            # mtail: every record series it still has, and every live pod's, must be exact.
            def kept(k):
                if k[0] != "node_log_records_total" or k in samples:
                    return True
                lab = dict(k[1])
                return lab["namespace"] == "bench" or any(f"/{lab['namespace']}_{lab['pod']}_" in d for d in live)
            return check_against(who, samples, {k: v for k, v in exp.items() if kept(k)}, set())

        # Each tool is waited for until its counts are exact, at most 180 s: then its counts
        # are compared as they are, and the difference fails the run.
        deadline = time.time() + 180
        pending = {"quarry_exporter": qp, "mtail": mp}
        texts = {}
        while pending and time.time() < deadline:
            for who, port in list(pending.items()):
                try:
                    texts[who] = bench.get(port).decode()
                except OSError:
                    continue
                if not problems_of(who, bench.parse_exposition(texts[who], FAMILIES)):
                    del pending[who]
            time.sleep(0.5)
        result["not_caught_up"] = sorted(pending)
        # Each tool is judged on its exposition when it was found exact (or at the deadline):
        # quarry_exporter's series of idle pods expire while mtail is waited for.
        problems = []
        for who in ("quarry_exporter", "mtail"):
            text = texts.get(who, "")
            with open(os.path.join(root, f"{who}.prom"), "w") as f:
                f.write(text)
            problems += problems_of(who, bench.parse_exposition(text, FAMILIES))
        result["samples_checked"] = len(exp)
        result["end_rss"] = {"q": bench.rss_mib(quarry.pid), "m": bench.rss_mib(mtail.pid)}
        result["hwm"] = {"q": status_kib(quarry.pid, "VmHWM") / 1024, "m": status_kib(mtail.pid, "VmHWM") / 1024}
        result["peak_rss"] = peak
        result["problems"] = problems
        with open(os.path.join(root, "problems.txt"), "w") as f:
            f.write("\n".join(problems) + "\n")
        return result
    finally:
        if gen is not None:
            gen.kill()
            gen.wait()
        bench.stop(quarry)
        bench.stop(mtail)


def print_result(r):
    print(f"\n## {r['label']}: {r['files']} files, {r['rate']:,} lines/s target, "
          f"{r['written']:,} lines written in {r['gen_elapsed']:.0f}s ({r['written'] / r['gen_elapsed']:,.0f}/s), "
          f"{r['rotations']} rotations" + (f", {r['churned']} pods replaced" if r["churn"] else ""))
    print(f"load average during the window: {', '.join(r['loads'][:1] + r['loads'][-1:])}")
    q, m = r["cpu_pct"]["q"], r["cpu_pct"]["m"]
    print("| | quarry_exporter | mtail | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| CPU, % of a core over {r['window']:.0f}s | {q:.1f} | {m:.1f} | {q / m if m else 0:.3f} (1/{m / q if q else 0:.1f}) |")
    print(f"| RSS idle (files open, before the generator), MiB | {r['idle_rss']['q']:.1f} | {r['idle_rss']['m']:.1f} | |")
    print(f"| RSS peak during the window (1 s samples) / VmHWM, MiB | {r['peak_rss']['q']:.1f} / {r['hwm']['q']:.1f} | "
          f"{r['peak_rss']['m']:.1f} / {r['hwm']['m']:.1f} | |")
    print(f"| RSS at the end, MiB | {r['end_rss']['q']:.1f} | {r['end_rss']['m']:.1f} | |")
    print(f"| descriptors / inotify watches | {r['fds_watches']['q'][0]} / {r['fds_watches']['q'][1]} | "
          f"{r['fds_watches']['m'][0]} / {r['fds_watches']['m'][1]} | |")
    print(f"| threads | {r['threads']['q']} | {r['threads']['m']} | |")
    lq, lm = r["latency"]["q"], r["latency"]["m"]
    print(f"| write → counter served, ms, median / p99 / max | {lq['median']:.1f} / {lq['p99']:.1f} / {lq['max']:.1f} | "
          f"{lm['median']:.1f} / {lm['p99']:.1f} / {lm['max']:.1f} | |")
    print(f"generator CPU {r['cpu_pct']['g']:.1f}% of a core; {r['samples_checked']} samples checked against what was written")
    if r["rss_series"]:
        print("RSS over time (s, quarry_exporter MiB, mtail MiB): " +
              ", ".join(f"{t}: {a:.1f}/{b:.1f}" for t, a, b in r["rss_series"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--counts", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=20261205, help=argparse.SUPPRESS)
    ap.add_argument("--files", type=int, default=500, help="container log files (default 500)")
    ap.add_argument("--compare-files", type=int, default=50,
                    help="a second run with this many files, for memory per file (0: none)")
    ap.add_argument("--rate", type=int, default=20_000, help="lines per second in total")
    ap.add_argument("--rotations-per-second", type=float, default=5.0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--window", type=int, default=60, help="measuring window, seconds")
    ap.add_argument("--markers", type=int, default=200)
    ap.add_argument("--churn", type=int, default=0,
                    help="seconds of churn (pods deleted and created) instead of the window")
    ap.add_argument("--churn-per-second", type=float, default=1.0)
    ap.add_argument("--expire", default="5m",
                    help="expire_after of the per-pod series in a churn run ('none': never); longer "
                         "than the 180 s wait for the counts, so that live pods' series are judged")
    ap.add_argument("--sample-every", type=int, default=10, help="seconds between printed RSS samples")
    ap.add_argument("--file-options", default="",
                    help="more keys for quarry_exporter's file source, e.g. 'watch: false, poll_interval: 1s'")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the main size")
    ap.add_argument("--smoke", action="store_true", help="tiny, correctness only")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "quarry_exporter"))
    args = ap.parse_args()
    if args.generate:
        generate(args)
        return
    args.binary = os.path.abspath(args.binary)
    if args.smoke:
        args.files, args.compare_files, args.rate, args.warmup, args.window, args.markers = 20, 0, 500, 1, 3, 5
        # No rotations: mtail loses a few lines at some rotations (BENCHMARKS.md, "Node
        # scale"), which would make scripts/test fail at random; the full runs rotate.
        args.rotations_per_second = 0
        if args.churn:
            args.churn = min(args.churn, 5)
    if shutil.which("mtail") is None:
        sys.exit("mtail is needed (Debian: apt-get install mtail)")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} missing: cargo build --release")
    os.makedirs(OUT, exist_ok=True)
    results = []
    failed = False
    sizes = [("churn", args.files, args.churn)] if args.churn else \
        [(f"files{args.files}-{i + 1}", args.files, 0) for i in range(args.repeat)] + \
        ([(f"files{args.compare_files}", args.compare_files, 0)] if args.compare_files else [])
    for label, files, churn in sizes:
        r = run(args, files, churn, label)
        results.append(r)
        print_result(r)
        if r.get("not_caught_up"):
            print(f"not caught up after 180 s: {', '.join(r['not_caught_up'])}")
        if r["problems"]:
            failed = True
            # Whose counts are off, in the line a loop of runs keeps (the samples follow).
            whose = ", ".join(f"{who} {sum(p.split()[0] == who for p in r['problems'])}"
                              for who in ("quarry_exporter", "mtail"))
            print(f"FAILED: the counts disagree ({len(r['problems'])} samples: {whose}):\n"
                  + "\n".join(r["problems"][:40]))
        sys.stdout.flush()
    big = [r for r in results if r["label"].startswith(f"files{args.files}-")]
    small = [r for r in results if r["label"] == f"files{args.compare_files}"]
    if big and small:
        b, s = big[-1], small[-1]
        for key, what in (("end_rss", "at the end"), ("idle_rss", "idle, before the generator"),
                          ("peak_rss", "peak of the window")):
            per = {k: (b[key][k] - s[key][k]) * 1024 / (b["files"] - s["files"]) for k in ("q", "m")}
            print(f"memory per followed file ({what}, RSS at {b['files']} files minus at {s['files']}, divided): "
                  f"quarry_exporter {per['q']:.1f} KiB, mtail {per['m']:.1f} KiB")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    if failed:
        sys.exit(1)
    print("node bench: quarry_exporter, mtail and the generator agree")


if __name__ == "__main__":
    main()
