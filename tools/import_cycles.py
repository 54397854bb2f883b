#!/usr/bin/env python3
"""The import graph of a crate's modules, and its cycles.

Reads every `.rs` file under a crate's `src/`, maps each to its module path, collects the
`crate::…` paths it names (in `use` items and inline), resolves each to the file that defines the
longest matching module, and prints the strongly connected components with more than one file.

    python3 tools/import_cycles.py [SRC_DIR] [--max N]

Exits 1 when a component has more than N files (default: report only, exit 0), so CI can hold
the line once the tree is clean.
"""

import os
import re
import sys
from collections import defaultdict


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def crate_paths(text):
    """Every `crate::a::b` path in the text, with `use crate::{a, b::c}` groups expanded."""
    text = re.sub(r"//[^\n]*", "", text)
    found = []
    for m in re.finditer(r"\bcrate::((?:\w+::)*)(\{[^;]*?\}|\w+)", text):
        prefix = [p for p in m.group(1).split("::") if p]
        tail = m.group(2)
        if tail.startswith("{"):
            for item in re.split(r",(?![^{]*\})", tail[1:-1]):
                item = item.strip()
                if not item:
                    continue
                head = re.match(r"[\w:]+", item)
                if head:
                    found.append(prefix + [p for p in head.group(0).split("::") if p])
        else:
            found.append(prefix + [tail])
    # `super::x` in a file is `crate::<parent>::x`; handled by the caller.
    return found


def main():
    args = sys.argv[1:]
    limit = None
    if "--max" in args:
        i = args.index("--max")
        limit = int(args[i + 1])
        del args[i : i + 2]
    src = args[0] if args else "src"
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files[module_of(src, path)] = path
    edges = defaultdict(set)
    for module, path in files.items():
        text = open(path, encoding="utf-8").read()
        paths = crate_paths(text)
        parent = module if os.path.basename(path) in ("mod.rs", "lib.rs") else module[:-1]
        for m in re.finditer(r"\bsuper::((?:\w+::)*\w+)", re.sub(r"//[^\n]*", "", text)):
            paths.append(list(parent[:-1]) + m.group(1).split("::"))
        for p in paths:
            for n in range(len(p), 0, -1):
                target = tuple(p[:n])
                if target in files and target != module and target != ():
                    edges[module].add(target)
                    break
    # Tarjan's strongly connected components.
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index:
            visit(v)
    cycles = sorted((c for c in comps if len(c) > 1), key=len, reverse=True)
    name = lambda m: os.path.relpath(files[m], src)
    for comp in cycles:
        print(f"cycle of {len(comp)} files: " + ", ".join(sorted(name(m) for m in comp)))
    biggest = max((len(c) for c in cycles), default=0)
    print(f"{len(files)} files, largest cycle {biggest} files")
    if limit is not None and biggest > limit:
        sys.exit(1)


if __name__ == "__main__":
    main()
