#!/usr/bin/python3
"""Every INI snippet in the README and doc/*.md loads as spamflowd's configuration.

An admin pastes the examples: each fenced ```ini block of README.md and doc/*.md is written
to a file and loaded with `spamflowd -c FILE --print-config`, which must exit 0; then the
printed configuration must show every key the snippet sets with the value it set (so a
trailing comment or a list separator cannot change a value unnoticed).

usage: doc_config.py SPAMFLOWD SOURCE_ROOT
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

BLOCK = re.compile(r"^```ini\n(.*?)^```", re.S | re.M)


def comment_free(v):
    """The value as the config rule reads it: up to a '#' at the start or after a blank."""
    m = re.search(r"(^|[ \t])#", v)
    return (v[:m.start()] if m else v).strip()


def norm(x):
    """A value's items, with sizes in bytes: lists print with ", ", sizes as numbers."""
    items = []
    for t in re.split(r"[,;\s]+", x or ""):
        m = re.fullmatch(r"(\d+)([KMG])", t)
        if m:
            t = str(int(m.group(1)) << {"K": 10, "M": 20, "G": 30}[m.group(2)])
        if t:
            items.append(t)
    return items


def printed_values(text):
    out, group = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[(group, k.strip())] = v.strip()
    return out


def main():
    spamflowd, root = sys.argv[1], sys.argv[2]
    docs = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "doc", "*.md")))
    blocks = 0
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for doc in docs:
            with open(doc) as f:
                text = f.read()
            for n, m in enumerate(BLOCK.finditer(text), 1):
                blocks += 1
                snippet = m.group(1)
                line = text.count("\n", 0, m.start()) + 2
                where = "%s:%d" % (os.path.relpath(doc, root), line)
                path = os.path.join(tmp, "s%d.conf" % blocks)
                with open(path, "w") as f:
                    f.write(snippet)
                p = subprocess.run([spamflowd, "-c", path, "--print-config"],
                                   capture_output=True, text=True, timeout=30)
                if p.returncode != 0:
                    failed += 1
                    print("FAIL  %s: does not load: %s" % (where, p.stderr.strip()))
                    continue
                printed = printed_values(p.stdout)
                group, bad = None, []
                for sl in snippet.splitlines():
                    s = sl.strip()
                    if s.startswith("[") and s.endswith("]"):
                        group = s[1:-1]
                    elif s and not s.startswith("#") and "=" in s:
                        k, v = s.split("=", 1)
                        want = comment_free(v)
                        got = printed.get((group, k.strip()))
                        if got is None or (got != want and norm(got) != norm(want)):
                            bad.append("[%s] %s: set %r, loaded %r" % (group, k.strip(),
                                                                       want, got))
                if bad:
                    failed += 1
                    print("FAIL  %s: %s" % (where, "; ".join(bad)))
                else:
                    print("ok    %s (%d lines)" % (where, snippet.count("\n")))
    print("%d ini blocks in %d documents, %d failed" % (blocks, len(docs), failed))
    if blocks == 0:
        print("FAIL: no ini block found: the test reads nothing")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
