#!/usr/bin/env python3
"""Instructions per line of `quarry_exporter one-shot` on bench.py's logs, counted by callgrind.

Unlike CPU seconds, instruction counts repeat whatever else the machine is doing, so two builds
can be compared on a busy machine (see BENCHMARKS.md, "Instructions per line"):

    python3 bench/instructions.py BINARY [BINARY ...] [--rows lines json ...] [--lines 100000]

For each row, the log is generated with bench.py's generator (same seeds) at --lines and at
1,000 lines; each binary reads both under `valgrind --tool=callgrind`, and the difference of
the two totals over the difference of the line counts is the cost of a line, start-up (config,
regex compilation) left out. Prints one table row per log row, a column per binary.
"""

import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

SMALL = 1_000
OUT = os.path.join(bench.OUT, "instructions")


def prepare(row, lines):
    """A directory with the row's exporter.yaml and its log of `lines` lines."""
    workdir = os.path.join(OUT, f"{row}-{lines}")
    os.makedirs(workdir, exist_ok=True)
    if row == "lines":
        bench.generate_access_log(os.path.join(workdir, "access.log"), lines)
        with open(os.path.join(workdir, "exporter.yaml"), "w") as f:
            f.write(bench.QUARRY_CONFIG)
    else:
        _, generate, log_name, files, _ = bench.EXTRACTION_ROWS[row]
        generate(os.path.join(workdir, log_name), lines)
        shutil.copy(os.path.join(bench.EXTRACTION, files + ".yaml"), os.path.join(workdir, "exporter.yaml"))
    return workdir


def instructions(binary, workdir):
    """Instructions callgrind counted for one one-shot read in workdir."""
    out = os.path.join(workdir, "callgrind.out")
    # On one thread: a second one's instructions would count too (bench.one_shot_cmd leaves the
    # flag out for a build from before `--threads`, which reads on one thread anyway).
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + bench.one_shot_cmd(binary, 1),
                   cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    sys.exit(f"no total in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rows", nargs="+", default=["lines"] + list(bench.EXTRACTION_ROWS),
                    choices=["lines"] + list(bench.EXTRACTION_ROWS))
    ap.add_argument("--lines", type=int, default=100_000)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    print("| row | " + " | ".join(os.path.basename(b) for b in args.binaries) + " |")
    print("| --- |" + " --- |" * len(args.binaries))
    for row in args.rows:
        big, small = prepare(row, args.lines), prepare(row, SMALL)
        cells = []
        for binary in args.binaries:
            binary = os.path.abspath(binary)
            per_line = (instructions(binary, big) - instructions(binary, small)) / (args.lines - SMALL)
            cells.append(f"{per_line:,.0f}")
        print(f"| {row} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
