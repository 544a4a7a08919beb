#!/usr/bin/env python3
"""Instructions per poll of a node's pod logs when nothing is written, counted by callgrind.

What a poll costs apart from the lines it reads: the scan of the globs (directories listed or
kept, files decided), the read pass over every followed file (an fstat each), the status. Like
bench/instructions.py it counts instructions, which repeat whatever else the machine is doing,
so two builds compare on a busy machine:

    python3 bench/idle_poll.py BINARY [BINARY ...] [--files 500] [--seconds 15 45]

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


def lay_out(files):
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
        f.write(node.quarry_config(None, "watch: names, poll_interval: 100ms"))
    # Every directory settled (a listing is kept only a second after its last change).
    time.sleep(1.5)
    return workdir


def run(binary, workdir, seconds):
    """(instructions, read passes) of the binary serving the tree for `seconds` under callgrind."""
    out = os.path.join(workdir, "callgrind.out")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
         "--config.file=exporter.yaml", "--web.listen-address=127.0.0.1:0", "--log.level=warn"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    tree = subprocess.run(["callgrind_annotate", "--tree=caller", out],
                          capture_output=True, text=True).stdout.splitlines()
    passes = None
    for i, line in enumerate(tree):
        if re.search(r"\*\s+.*Tailer<F>::read_pass \[", line):
            m = re.search(r"\(([\d,]+)x\)", tree[i - 1])
            passes = int(m.group(1).replace(",", "")) if m else None
            break
    os.remove(out)
    if total is None or passes is None:
        sys.exit(f"{binary}: no total or no read passes in callgrind's output")
    return total, passes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--seconds", type=float, nargs=2, default=[15, 45])
    args = ap.parse_args()
    workdir = lay_out(args.files)
    print(f"| binary | instructions per idle poll ({args.files} files) | polls counted |")
    print("| --- | --- | --- |")
    for binary in args.binaries:
        (t1, p1), (t2, p2) = (run(os.path.abspath(binary), workdir, s) for s in args.seconds)
        print(f"| {binary} | {(t2 - t1) / (p2 - p1):,.0f} | {p2 - p1} |", flush=True)


if __name__ == "__main__":
    main()
