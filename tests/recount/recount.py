#!/usr/bin/env python3
"""Independent recount of the record formats for tests/integration/records.rs.

Reads the generated inputs with Python's own parsers (json, a small logfmt reader, CRI and
multiline joining written from their specifications, not from the exporter's code) and prints
the expected samples, one `name{labels} value` per line, sorted.
"""
import json
import re
import sys
from collections import Counter

d = sys.argv[1]
out = Counter()

# JSON lines: records by level; lines that are not JSON objects are not counted.
for line in open(f"{d}/app.jsonl", encoding="utf-8"):
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if isinstance(doc, dict) and "level" in doc:
        out[f'json_records_total{{level="{doc["level"]}"}}'] += 1

# logfmt: key=value, values may be quoted with backslash escapes.
PAIR = re.compile(r'(\S+?)=("(?:\\.|[^"\\])*"|\S*)')
for line in open(f"{d}/svc.log", encoding="utf-8"):
    if line.count('"') - line.count('\\"') & 1:
        continue  # an unterminated quote: the record is refused
    fields = {}
    for k, v in PAIR.findall(line):
        fields.setdefault(k, v)
    if "level" in fields:
        out[f'logfmt_records_total{{level="{fields["level"]}"}}'] += 1

# CRI: P parts up to the F make one line, per stream.
partial = {}
for line in open(f"{d}/pods/0.log", encoding="utf-8"):
    line = line.rstrip("\n")
    t, stream, tag, text = (line.split(" ", 3) + [""])[:4]
    partial[stream] = partial.get(stream, "") + text
    if tag == "F":
        m = re.match(r"GET \S+ (\d{3})$", partial.pop(stream))
        if m:
            out[f'cri_requests_total{{status="{m.group(1)}",stream="{stream}"}}'] += 1

# Multiline: a line starting with a date starts a record; the exception of each record.
records = []
for line in open(f"{d}/java.log", encoding="utf-8"):
    line = line.rstrip("\n")
    if re.match(r"\d{4}-\d\d-\d\d ", line) or not records:
        records.append([line])
    else:
        records[-1].append(line)
for rec in records:
    out['multiline_records_total'] += 1
    if len(rec) > 1:
        m = re.match(r"([\w.]+(?:Exception|Error))", rec[1])
        if m:
            out[f'multiline_exceptions_total{{exception="{m.group(1)}"}}'] += 1

for k in sorted(out):
    print(f"{k} {out[k]}")
