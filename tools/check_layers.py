#!/usr/bin/python3
"""check_layers.py - the include rules of broker/ (DESIGN.md "Layout").

Reads every `#include "..."` line of the C sources and headers under a
broker tree and fails (exit 1) when
  - modules include each other in a cycle (a module is a .c with its .h), or
  - a layer includes one it may not:
        shared/  -> shared/                      (log, util, xmalloc)
        core/    -> core/, shared/
        net/     -> net/, shared/
        ingress/ -> ingress/, core/, net/, shared/
        cluster/ -> cluster/, core/, shared/
        app/     -> everything; so do the files at the top (main.c)
A file in a folder that is no layer is a violation too: every file has a
place. Each offending edge is printed as `from -> to (rule)`.

Usage: check_layers.py [BROKER_DIR]
           (default: broker/ next to tools/)
       check_layers.py --self-test    (proves it catches a cycle and a
                                       forbidden edge on a tiny tree)
Python 3 standard library only.
"""
import os
import re
import sys
import tempfile

LAYERS = {
    "shared": {"shared"},
    "core": {"core", "shared"},
    "net": {"net", "shared"},
    "ingress": {"ingress", "core", "net", "shared"},
    "cluster": {"cluster", "core", "shared"},
    "app": None,  # everything
    "": None,  # the top: main.c
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")


def resolve(root, src, target):
    """The tree path `#include "target"` in `src` names, or None (outside)."""
    here = os.path.dirname(src)
    for cand in (os.path.join(here, target), target):
        cand = os.path.normpath(cand).replace(os.sep, "/")
        if not cand.startswith("../") and os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def layer_of(path):
    return path.split("/")[0] if "/" in path else ""


def module_of(path):
    return os.path.splitext(path)[0]


def graph(root):
    """Module edges {(from, to): (from_file, to_file)} and the file edges."""
    edges = {}
    file_edges = []
    for src in sources(root):
        with open(os.path.join(root, src), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for target in INCLUDE.findall(text):
            dst = resolve(root, src, target)
            if dst is None:
                continue  # protocol/include, system or generated headers
            file_edges.append((src, dst))
            a, b = module_of(src), module_of(dst)
            if a != b:
                edges.setdefault((a, b), (src, dst))
    return edges, file_edges


def rule_violations(file_edges):
    out = []
    for src, dst in file_edges:
        a, b = layer_of(src), layer_of(dst)
        if a not in LAYERS:
            out.append(f"{src} -> {dst} (no layer: {a}/ is not one of DESIGN.md's folders)")
            continue
        allowed = LAYERS[a]
        if allowed is None or b in allowed:
            continue
        name = a if a else "the top"
        out.append(f"{src} -> {dst} ({name}/ may include only {', '.join(sorted(allowed))})")
    return sorted(set(out))


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    succ = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        succ.setdefault(b, [])
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(succ[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(succ[w]))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return sorted(comps)


def report(root):
    """The problems, one line each: a cycle's members, then each of its
    edges, then each forbidden include."""
    edges, file_edges = graph(root)
    lines = []
    for comp in cycles(edges):
        members = set(comp)
        lines.append(f"cycle of {len(comp)} modules: {' '.join(comp)}")
        for (a, b), (src, dst) in sorted(edges.items()):
            if a in members and b in members:
                lines.append(f"  {src} -> {dst} (cycle)")
    lines.extend(rule_violations(file_edges))
    return lines


def check(root, out=sys.stdout):
    """Prints the problems and returns how many there are."""
    lines = report(root)
    for line in lines:
        out.write(line + "\n")
    return sum(1 for line in lines if not line.startswith("  "))


def self_test():
    def tree(files):
        d = tempfile.mkdtemp(prefix="layers-")
        for path, text in files.items():
            full = os.path.join(d, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(text)
        return d

    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

    good = tree({
        "main.c": '#include "app/worker.h"\n',
        "app/worker.h": '#include "core/pubsub.h"\n#include "net/conn.h"\n',
        "core/pubsub.h": '#include "shared/util.h"\n#include "wsb/common.h"\n#include <stdio.h>\n',
        "core/pubsub.c": '#include "pubsub.h"\n',
        "net/conn.h": '#include "../shared/util.h"\n',
        "ingress/ws.c": '#include "core/pubsub.h"\n#include "net/conn.h"\n',
        "shared/util.h": "",
    })
    sink = Sink()
    assert check(good, sink) == 0, sink.text
    cyc = tree({
        "core/a.h": '#include "b.h"\n',
        "core/b.c": '#include "core/c.h"\n',
        "core/b.h": "",
        "core/c.h": '#include "a.h"\n',
    })
    sink = Sink()
    assert check(cyc, sink) == 1, sink.text
    assert "cycle of 3 modules: core/a core/b core/c" in sink.text, sink.text
    assert "core/c.h -> core/a.h (cycle)" in sink.text, sink.text
    bad = tree({
        "core/pubsub.c": '#include "ingress/ws.h"\n',
        "ingress/ws.h": "",
        "net/conn.c": '#include "core/pubsub.h"\n',
        "core/pubsub.h": "",
        "misc/x.c": "",
        "misc/y.c": '#include "../core/pubsub.h"\n',
    })
    sink = Sink()
    assert check(bad, sink) == 3, sink.text
    assert "core/pubsub.c -> ingress/ws.h (core/ may include only core, shared)" in sink.text
    assert "net/conn.c -> core/pubsub.h (net/ may include only net, shared)" in sink.text
    assert "misc/y.c -> core/pubsub.h (no layer" in sink.text
    print("check_layers self-test: ok")
    return 0


def main(argv):
    args = argv[1:]
    if args == ["--self-test"]:
        return self_test()
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "broker")
    problems = check(root)
    if problems:
        sys.stdout.write(f"{problems} layering problem(s) in {os.path.normpath(root)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
