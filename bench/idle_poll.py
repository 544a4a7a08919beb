#!/usr/bin/env python3
"""Instructions per poll of a node's pod logs when nothing is written, counted by callgrind.

What a poll costs apart from the lines it reads: the scan of the globs (directories listed or
kept, files decided), the read pass over every followed file (an fstat each), the status. Like
bench/instructions.py it counts instructions, which repeat whatever else the machine is doing,
so two builds compare on a busy machine:

    python3 bench/idle_poll.py BINARY [BINARY ...] [--files 500] [--seconds 15 45]
    python3 bench/idle_poll.py BINARY [BINARY ...] --grow 500 --poll 1s [--keep DIR]

With `--grow RATE`, a writer appends RATE CRI lines a second over all the files, one file after
another (at 500 a second and a 1 s poll, about one line per file per poll): the cost of a poll
of files that grew, lines included, and the cost per line (instructions over the records the
pipeline ran), the per-file costs of a read (fstat, `pread`s, head checks, the checkpoint
record) shared over the lines read with them. Same rate and poll for every binary, so they
compare; the figure moves a little with how the writer's rounds fall on the polls.

The tree is bench/node.py's layout (`pods/<ns>_<pod>_<uid>/<container>/0.log`, two containers
a pod, three CRI lines each) with node.py's config, `watch: names` and a 100 ms poll. Each
binary serves it under `valgrind --tool=callgrind` for each of the two durations; the
difference of the totals over the difference of the read passes (each poll makes one) is the
cost of a poll, start-up and the first scan left out. Prints one row per binary.
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import node  # noqa: E402

OUT = os.path.join(bench.OUT, "idle_poll")


def lay_out(files, poll="100ms"):
    """The tree and exporter.yaml of `files` container logs; returns the directory."""
    workdir = os.path.join(OUT, f"files{files}")
    shutil.rmtree(workdir, ignore_errors=True)
    rng = random.Random(7)
    t = 1765000000.0
    for p in range(files // len(node.CONTAINERS)):
        ns = node.NAMESPACES[p % len(node.NAMESPACES)]
        for c in node.CONTAINERS:
            d = os.path.join(workdir, "pods", f"{ns}_pod{p:04d}_uid-{p:04d}", c)
            os.makedirs(d)
            with open(os.path.join(d, "0.log"), "w") as f:
                for _ in range(3):
                    stream, _, _, text = node.make_line(rng, t)
                    t += 0.001
                    f.write(f"{node.cri_time(t)} {stream} F {text}\n")
    with open(os.path.join(workdir, "exporter.yaml"), "w") as f:
        f.write(node.quarry_config(None, f"watch: names, poll_interval: {poll}"))
    # Every directory settled (a listing is kept only a second after its last change).
    time.sleep(1.5)
    return workdir


def log_paths(workdir):
    """The container logs of the tree, in a fixed order."""
    found = []
    for dirpath, _, names in os.walk(os.path.join(workdir, "pods")):
        found += [os.path.join(dirpath, n) for n in names if n.endswith(".log")]
    return sorted(found)


def writer(workdir, rate):
    """Appends `rate` CRI lines a second over the tree's logs, round-robin, until killed."""
    rng = random.Random(11)
    files = [open(p, "a") for p in log_paths(workdir)]
    start, written = time.monotonic(), 0
    while True:
        f = files[written % len(files)]
        stream, _, _, text = node.make_line(rng, time.time())
        f.write(f"{node.cri_time(time.time())} {stream} F {text}\n")
        f.flush()
        written += 1
        ahead = written / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def calls(tree, function):
    """How often callgrind's caller tree says `function` was called (None: not found)."""
    for i, line in enumerate(tree):
        if re.search(r"\*\s+.*" + re.escape(function) + r" \[", line):
            m = re.search(r"\(([\d,]+)x\)", tree[i - 1])
            return int(m.group(1).replace(",", "")) if m else None
    return None


def run(binary, workdir, seconds, grow=0, keep=None):
    """(instructions, read passes, records) of the binary serving the tree for `seconds` under
    callgrind, with `grow` lines a second written meanwhile; callgrind's output is moved to
    `keep` when given (for callgrind_annotate), else removed."""
    out = os.path.join(workdir, "callgrind.out")
    port = bench.free_port()
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
         "--config.file=exporter.yaml", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writing = None
    if grow:
        writing = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--write", workdir,
                                    "--grow", str(grow)])
    time.sleep(seconds)
    records = 0
    if writing:
        writing.kill()
        writing.wait()
        # Every line is a record of the `records` rule: their sum is the records counted.
        exposition = bench.get(port).decode()
        records = sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
                      if line.startswith("node_log_records_total{"))
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    tree = subprocess.run(["callgrind_annotate", "--tree=caller", out],
                          capture_output=True, text=True).stdout.splitlines()
    passes = calls(tree, "Tailer<F>::read_pass")
    if keep:
        shutil.move(out, keep)
    else:
        os.remove(out)
    if total is None or passes is None:
        sys.exit(f"{binary}: no total or no read passes in callgrind's output")
    return total, passes, records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="*")
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--seconds", type=float, nargs=2, default=[15, 45])
    ap.add_argument("--grow", type=int, default=0, help="lines a second written meanwhile")
    ap.add_argument("--poll", default="100ms", help="the source's poll_interval")
    ap.add_argument("--keep", help="a directory to keep callgrind's outputs in, "
                    "<binary name>.<seconds>s.callgrind.out")
    ap.add_argument("--write", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        writer(args.write, args.grow)
        return
    if not args.binaries:
        ap.error("give at least one binary")
    workdir = lay_out(args.files, args.poll)
    if not args.grow:
        print(f"| binary | instructions per idle poll ({args.files} files) | polls counted |")
        print("| --- | --- | --- |")
    else:
        print(f"| binary | instructions per poll ({args.files} files, {args.grow} lines/s, "
              f"poll {args.poll}) | per record | records | polls counted |")
        print("| --- | --- | --- | --- | --- |")
    for binary in args.binaries:
        def kept(s):
            if not args.keep:
                return None
            os.makedirs(args.keep, exist_ok=True)
            return os.path.join(args.keep, f"{os.path.basename(binary)}.{s:g}s.callgrind.out")
        (t1, p1, r1), (t2, p2, r2) = (run(os.path.abspath(binary), workdir, s, args.grow, kept(s))
                                      for s in args.seconds)
        if not args.grow:
            print(f"| {binary} | {(t2 - t1) / (p2 - p1):,.0f} | {p2 - p1} |", flush=True)
        else:
            per_record = (t2 - t1) / (r2 - r1) if r2 > r1 else float("nan")
            print(f"| {binary} | {(t2 - t1) / (p2 - p1):,.0f} | {per_record:,.0f} | {r2 - r1} "
                  f"| {p2 - p1} |", flush=True)


if __name__ == "__main__":
    main()
