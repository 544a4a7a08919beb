#!/bin/sh
# Prints one line per backup job, as a cron-driven backup tool might.
[ "$1" = "--all" ] || { echo "usage: report.sh --all" >&2; exit 2; }
echo "job=db age=2h15m size=1.5GiB"
echo "job=files age=45m size=730MB"
