#!/bin/bash
# System calls per poll of a polling-only file source on a node-like tree (BENCHMARKS.md, "eighth
# round"): 500 CRI logs in 250 pod directories (750 directories listed a poll), a line appended
# to every file every 50 ms, `watch: false, poll_interval: 1s`; `strace -c -f` on the exporter
# for SECONDS, then each call's count divided by the polls (SECONDS: one poll a second).
#
#     bench/syscalls.sh BINARY [SECONDS]     # needs strace; default 20 s
#     WATCH=names bench/syscalls.sh BINARY   # the file source's `watch:` (default false)
set -euo pipefail
BIN=$(realpath "$1"); SECS=${2:-20}; WATCH=${WATCH:-false}
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
for p in $(seq 1 250); do for c in app side; do
  mkdir -p "$WORK/tree/ns_pod$p/$c"; echo start > "$WORK/tree/ns_pod$p/$c/0.log"
done; done
cat > "$WORK/exporter.yaml" <<EOY
version: 1
metrics:
  - {name: recs_total, type: counter, help: Records., labels: [stream]}
sources:
  - name: pods
    file: {paths: ["$WORK/tree/*/*/*.log"], format: cri, watch: $WATCH, poll_interval: 1s}
    rules:
      - regex: 'x'
        update: [{metric: recs_total, labels: {stream: \$__stream__}}]
EOY
python3 - "$WORK/tree" $((SECS + 10)) <<'EOP' &
import glob, sys, time
files = sorted(glob.glob(sys.argv[1] + '/*/*/0.log'))
end = time.time() + int(sys.argv[2])
while time.time() < end:
    for f in files:
        with open(f, 'a') as h:
            h.write('2026-12-06T10:00:00.000000000Z stdout F line x\n')
    time.sleep(0.05)
EOP
"$BIN" --config.file="$WORK/exporter.yaml" --web.listen-address=127.0.0.1:0 --log.level=warn >/dev/null 2>&1 &
sleep 5
timeout -s INT "$SECS" strace -c -f -p $! -o "$WORK/strace.txt" 2>/dev/null || true
python3 - "$WORK/strace.txt" "$SECS" <<'EOP'
import sys
calls = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 5 and p[-1].isidentifier() and p[3].isdigit():
        calls[p[-1]] = int(p[3])
# One poll a second (a full listing opens all 750 directories; since polls reuse the listings
# of unchanged directories, opens no longer count them).
polls = int(sys.argv[2])
io = {k: v for k, v in calls.items() if k in
      ('open', 'openat', 'close', 'newfstatat', 'statx', 'getdents64', 'pread64', 'read')}
print(f'polls: {polls:.1f}')
for k, v in sorted(io.items()):
    print(f'{k:12} {v / polls:8.0f} a poll')
print(f'{"all":12} {sum(io.values()) / polls:8.0f} a poll')
EOP
