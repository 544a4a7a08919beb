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


def label(value):
    """A label value as the text exposition format escapes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def no_lone_surrogates(text):
    """Lone UTF-16 surrogates (Python's json keeps them) as U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


# logfmt escapes, as go-logfmt and Go's strconv.Quote write them (and JSON's surrogate pairs).
SIMPLE = {'"': '"', "\\": "\\", "/": "/", "'": "'", "n": "\n", "t": "\t", "r": "\r",
          "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a surrogate pair
    r"|([\"\\/'ntrabfv])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")


def unescape(quoted):
    """The text of a quoted logfmt value (without its quotes); a backslash that starts no
    escape stays, a lone surrogate or a byte that is not UTF-8 is U+FFFD."""
    out = bytearray()
    at = 0
    for m in ESCAPE.finditer(quoted):
        out += quoted[at:m.start()].encode()
        at = m.end()
        high, low, simple, byte, unit, wide = m.groups()
        if high:
            code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        elif simple:
            out += SIMPLE[simple].encode()
            continue
        elif byte:
            out.append(int(byte, 16))
            continue
        else:
            code = int(unit or wide, 16)
        if 0xD800 <= code < 0xE000 or code > 0x10FFFF:
            code = 0xFFFD
        out += chr(code).encode()
    out += quoted[at:].encode()
    return out.decode("utf-8", errors="replace")


# JSON lines: records by level; lines that are not JSON objects are not counted.
for line in open(f"{d}/app.jsonl", encoding="utf-8"):
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if isinstance(doc, dict) and "level" in doc:
        level = label(no_lone_surrogates(doc["level"]))
        out[f'json_records_total{{level="{level}"}}'] += 1

# logfmt: key=value, values may be quoted with backslash escapes (see unescape).
QUOTED = r'"(?:\\.|[^"\\])*"'
PAIR = re.compile(r'(\S+?)=(' + QUOTED + r'|\S*)')
for line in open(f"{d}/svc.log", encoding="utf-8"):
    if '="' in re.sub(QUOTED, "", line):
        continue  # an unterminated quote: the record is refused
    fields = {}
    for k, v in PAIR.findall(line):
        fields.setdefault(k, v)
    if "level" in fields:
        level = fields["level"]
        if level.startswith('"'):
            level = unescape(level[1:-1])
        out[f'logfmt_records_total{{level="{label(level)}"}}'] += 1

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
