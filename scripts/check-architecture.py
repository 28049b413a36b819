#!/usr/bin/env python3
"""check-architecture.py — docs/ARCHITECTURE.md's module table and module graph
against Package.swift.

    swift package dump-package | scripts/check-architecture.py          check
    swift package dump-package | scripts/check-architecture.py --write  rewrite the graph

The module table (the rows between `<!-- modules:begin -->` and
`<!-- modules:end -->`) must name every non-test target exactly once, with
its dependencies in the "depends on" column as a comma-separated list of
target names (or `—`), in any order. The graph between
`<!-- module-graph:begin -->` and `<!-- module-graph:end -->` is generated
from Package.swift by --write and must be what --write would write.
It also holds the layering rules the table states: the collector never
links the monitor runners (libcurl's loader, the exec runner), and no library
below the programs depends on a tool. Exits 1 naming every difference.
"""
import json
import re
import sys

DOC = "docs/ARCHITECTURE.md"


def targets_from(package):
    out = {}
    for t in package["targets"]:
        if t["type"] == "test":
            continue
        deps = []
        for d in t["dependencies"]:
            kind, value = next(iter(d.items()))
            deps.append(value[0])
        out[t["name"]] = {"type": t["type"], "deps": deps, "path": t.get("path")}
    return out


def layer(name, t):
    if t["type"] == "system" or (name.startswith("C") and name[1:2].isupper()):
        return "c"
    path = t["path"] or ""
    if path.startswith("Sources/Tools/"):
        return "tools"
    if t["type"] == "executable":
        return "programs"
    return "libraries"


def graph(targets):
    titles = {"c": "C shims", "libraries": "libraries", "programs": "programs", "tools": "tools (Sources/Tools)"}
    lines = ["```mermaid", "flowchart BT"]
    for key in ("programs", "libraries", "c", "tools"):
        names = sorted(n for n, t in targets.items() if layer(n, t) == key)
        if not names:
            continue
        lines.append(f"  subgraph {key}[\"{titles[key]}\"]")
        for n in names:
            lines.append(f"    {node(n)}[\"{n}\"]")
        lines.append("  end")
    for n in sorted(targets):
        for d in sorted(targets[n]["deps"]):
            lines.append(f"  {node(n)} --> {node(d)}")
    lines.append("```")
    return "\n".join(lines)


def closure(targets, name):
    seen, todo = set(), [name]
    while todo:
        for d in targets[todo.pop()]["deps"]:
            if d not in seen and d in targets:
                seen.add(d)
                todo.append(d)
    return seen


# (program, modules it must never link, why)
FORBIDDEN = [
    ("vigil-collector", {"MonitorRunners", "CCurl"}, "the collector validates monitor documents; it never runs them"),
]


def node(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def between(text, tag):
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if begin not in text or end not in text:
        sys.exit(f"{DOC}: markers {begin} … {end} not found")
    a = text.index(begin) + len(begin)
    return a, text.index(end)


def table_rows(block):
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        deps_cell = cells[2]
        deps = [] if deps_cell in ("—", "-", "") else [d.strip().strip("`") for d in deps_cell.split(",")]
        for n in names:
            rows.setdefault(n, []).append(deps)
    return rows


def main():
    package = json.load(sys.stdin)
    targets = targets_from(package)
    text = open(DOC).read()
    a, b = between(text, "module-graph")
    want = "\n" + graph(targets) + "\n"
    if "--write" in sys.argv:
        text = text[:a] + want + text[b:]
        open(DOC, "w").write(text)
        a, b = between(text, "module-graph")
    problems = []
    if text[a:b] != want:
        problems.append("the module graph differs from Package.swift (run: swift package dump-package | scripts/check-architecture.py --write)")
    ta, tb = between(text, "modules")
    rows = table_rows(text[ta:tb])
    for n in sorted(targets):
        if n not in rows:
            problems.append(f"module table: no row for `{n}`")
            continue
        if len(rows[n]) > 1:
            problems.append(f"module table: `{n}` has {len(rows[n])} rows")
        got, exp = sorted(rows[n][0]), sorted(targets[n]["deps"])
        if got != exp:
            problems.append(f"module table: `{n}` depends on {', '.join(exp) or '—'} in Package.swift, the table says {', '.join(got) or '—'}")
    for n in sorted(set(rows) - set(targets)):
        problems.append(f"module table: `{n}` is not a target in Package.swift")
    for program, banned, why in FORBIDDEN:
        if program in targets:
            for m in sorted(closure(targets, program) & banned):
                problems.append(f"`{program}` links `{m}`: {why}")
    for n, t in targets.items():
        if layer(n, t) != "tools":
            for m in sorted(d for d in t["deps"] if d in targets and layer(d, targets[d]) == "tools"):
                problems.append(f"`{n}` depends on the tool `{m}`")
    for p in problems:
        print(f"{DOC}: {p}")
    if problems:
        sys.exit(1)
    print(f"{DOC}: module table and graph match Package.swift ({len(targets)} modules)")


main()
