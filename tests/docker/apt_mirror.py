#!/usr/bin/python3
"""Prints the Debian mirror this machine's apt uses for `suite` (default
bookworm): the first enabled source whose suite matches, from
/etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line format) or
*.sources (deb822). The project never names a mirror itself. Exit 1 if none."""
from __future__ import annotations

import glob
import re
import sys

APT = "/etc/apt"


def one_line(path):
    for line in open(path, errors="replace"):
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        # deb [opt=val ...] URI SUITE COMPONENT...
        line = re.sub(r"^deb\s+\[[^\]]*\]\s*", "deb ", line)
        parts = line.split()
        if len(parts) >= 3:
            yield parts[1], [parts[2]]


def deb822(path):
    text = open(path, errors="replace").read()
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


def sources():
    files = [f"{APT}/sources.list"] + sorted(glob.glob(f"{APT}/sources.list.d/*.list"))
    for f in files:
        try:
            yield from one_line(f)
        except FileNotFoundError:
            pass
    for f in sorted(glob.glob(f"{APT}/sources.list.d/*.sources")):
        yield from deb822(f)


def main():
    suite = sys.argv[1] if len(sys.argv) > 1 else "bookworm"
    for uri, suites in sources():
        if suite in suites:
            print(uri.rstrip("/"))
            return 0
    print(f"no apt source for suite {suite} in {APT}/sources.list{{,.d/*.list,.d/*.sources}}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
