#!/usr/bin/env python3
"""Cost of rules' `examples:` on metrics with many pre-declared series (CHANGELOG, issue 20).

Writes a config whose counter pre-declares N x N series (`label_values`) and whose rule carries
E examples, then times `quarry_exporter check` on it (each example runs its rule alone through
the real pipeline). Prints one line per size; asserts nothing.

    python3 bench/examples.py [--binary target/debug/quarry_exporter] [--sizes 100x10,300x1]
"""

import argparse
import os
import subprocess
import tempfile
import time


def config(n, examples):
    values = ", ".join(f'"v{i}"' for i in range(n))
    ex = "\n".join(
        f"""          - input: "GET v{k % n} w{(k * 7) % n}"
            samples: ['grid_requests_total{{a="v{k % n}",b="w{(k * 7) % n}"}} 1']"""
        for k in range(examples)
    )
    wvalues = ", ".join(f'"w{i}"' for i in range(n))
    return f"""version: 1
metrics:
  - name: grid_requests_total
    type: counter
    help: Requests by a and b.
    labels: [a, b]
    max_series: {n * n}
    label_values: {{a: [{values}], b: [{wvalues}]}}
sources:
  - name: log
    file: {{paths: [app.log]}}
    rules:
      - name: grid
        regex: '^GET (?P<a>\\S+) (?P<b>\\S+)$'
        update: [{{metric: grid_requests_total, labels: {{a: $a, b: $b}}}}]
        examples:
{ex}
"""


def main():
    p = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--binary", default=os.path.join(here, "..", "target", "debug", "quarry_exporter"))
    p.add_argument("--sizes", default="100x10,300x1")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for size in a.sizes.split(","):
            n, e = (int(x) for x in size.split("x"))
            path = os.path.join(d, f"grid{n}.yaml")
            with open(path, "w") as f:
                f.write(config(n, e))
            start = time.monotonic()
            out = subprocess.run([a.binary, "check", f"--config.file={path}"], capture_output=True, text=True)
            took = time.monotonic() - start
            status = "OK" if out.returncode == 0 else f"exit {out.returncode}: {out.stderr.strip()[:200]}"
            print(f"{n}x{n} label_values, {e} example(s): check {took:.2f} s ({status})")


if __name__ == "__main__":
    main()
