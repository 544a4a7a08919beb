#!/usr/bin/env python3
"""CPU seconds of `quarry_exporter one-shot --threads=1` for several binaries, alternated.

    python3 bench/ab.py DIR ROUNDS BINARY [BINARY ...]

DIR holds an exporter.yaml and the log it reads (bench.py's rows leave theirs in
bench/out/<row>/). Each round runs every binary once, in the order given, and takes the child's
user + system CPU from wait4 (microseconds, where bench.py's GNU time gives hundredths). Prints
median, least and most per binary. Give two or more copies of each binary (`cp` them to other
paths) and compare the copies of one build with each other first: on this machine a copy of a
binary can run a third slower than a byte-identical one (BENCHMARKS.md, "A trap for every
A/B"), and the spread between copies is the noise a difference must beat. No timing is
asserted; the instruction counts of bench/instructions.py belong beside these figures.
"""

import os
import statistics
import subprocess
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    workdir, rounds, binaries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if not os.path.exists(os.path.join(workdir, "exporter.yaml")):
        sys.exit(f"{workdir}: no exporter.yaml (run bench.py for the row first)")
    seconds = {b: [] for b in binaries}
    for _ in range(rounds):
        for binary in binaries:
            child = subprocess.Popen([os.path.abspath(binary), "one-shot", "--config.file=exporter.yaml",
                                      "--threads=1"],
                                     cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)
            if status != 0:
                sys.exit(f"{binary} exited with status {status} in {workdir}")
            seconds[binary].append(usage.ru_utime + usage.ru_stime)
    for binary in binaries:
        v = sorted(seconds[binary])
        print(f"{binary}: median {statistics.median(v):.4f} s, least {v[0]:.4f}, most {v[-1]:.4f}")


if __name__ == "__main__":
    main()
