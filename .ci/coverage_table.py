#!/usr/bin/env python3
"""Per-module line coverage of impl/src from the three reports .ci/coverage.sh writes.

usage: coverage_table.py DIR   (DIR holds sim.lcov, tests.lcov and both.lcov from
`cargo llvm-cov report --lcov`); prints a Markdown table.

A module is a path under impl/src cut to two components without `.rs`: `storage/volume/sync.rs`
and `storage/volume/mod.rs` are `storage/volume`, `sector/format.rs` is `sector/format`,
`bugs.rs` is `bugs`. Unit tests are not code under test: files that hold only unit tests
(`tests.rs`, `*_tests.rs`) and the lines of top-level `#[cfg(test)]`/`#[cfg(all(test, ..))]`
modules are left out of every column, so the three columns share one denominator per module.
"""
import os
import re
import sys
from collections import defaultdict

SRC = os.sep + os.path.join("impl", "src") + os.sep
CFG_TEST = re.compile(r"^#\[cfg\((all\()?test\b")
MOD_OPEN = re.compile(r"^(pub(\(crate\))? )?mod \w+ \{$")


def module_of(path):
    rel = path.split(SRC, 1)[1]
    parts = rel[:-3].split(os.sep) if rel.endswith(".rs") else rel.split(os.sep)
    if parts[-1] == "mod" and len(parts) > 1:
        parts = parts[:-1]
    return "/".join(parts[:2])


def is_test_file(path):
    name = os.path.basename(path)
    return name == "tests.rs" or name.endswith("_tests.rs")


_test_lines = {}


def test_lines(path):
    """Line numbers (1-based) inside top-level test modules of `path` (rustfmt layout: the
    module opens at column 0 after its `#[cfg(test)]` and closes with a lone `}`)."""
    if path not in _test_lines:
        lines = set()
        try:
            with open(path) as f:
                text = f.read().split("\n")
        except OSError:
            text = []
        i = 0
        while i < len(text):
            if CFG_TEST.match(text[i]):
                j = i + 1
                # More attributes, one line or several (`#[allow(\n    ..,\n)]`).
                while j < len(text) and (
                    text[j].startswith(("#[", " ", ")]")) and not MOD_OPEN.match(text[j])
                ):
                    j += 1
                if j < len(text) and MOD_OPEN.match(text[j]):
                    k = j + 1
                    while k < len(text) and text[k] != "}":
                        k += 1
                    lines.update(range(i + 1, k + 2))
                    i = k
            i += 1
        _test_lines[path] = lines
    return _test_lines[path]


def load(path):
    """file -> {line: count} from an lcov file (max over repeated records)."""
    files = defaultdict(dict)
    current = None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("SF:"):
                current = line[3:]
            elif line.startswith("DA:") and current is not None:
                num, count = line[3:].split(",")[:2]
                d = files[current]
                d[int(num)] = max(d.get(int(num), 0), int(count))
            elif line == "end_of_record":
                current = None
    return files


def per_module(files):
    out = defaultdict(lambda: [0, 0])  # module -> [covered, count]
    for name, das in files.items():
        if SRC not in name or is_test_file(name):
            continue
        skip = test_lines(name)
        m = out[module_of(name)]
        for num, count in das.items():
            if num in skip:
                continue
            m[1] += 1
            m[0] += count > 0
    return out


def pct(covered, count):
    return 100.0 * covered / count if count else 0.0


def main():
    out = sys.argv[1]
    sets = {s: per_module(load(os.path.join(out, s + ".lcov"))) for s in ("sim", "tests", "both")}
    modules = sorted(set().union(*(d.keys() for d in sets.values())))
    print("| module | lines | simulator | tests | both |")
    print("|---|---:|---:|---:|---:|")
    totals = {s: [0, 0] for s in sets}
    for m in modules:
        count = max(sets[s][m][1] for s in sets)
        cells = []
        for s in ("sim", "tests", "both"):
            covered = sets[s][m][0]
            totals[s][0] += covered
            totals[s][1] += count
            p = pct(covered, count)
            mark = "**" if s == "sim" and p < 80.0 else ""
            cells.append(f"{mark}{p:.1f}{mark}")
        print(f"| `{m}` | {count} | " + " | ".join(cells) + " |")
    cells = " | ".join(f"{pct(*totals[s]):.1f}" for s in ("sim", "tests", "both"))
    print(f"| **all of impl/src** | {totals['both'][1]} | {cells} |")


if __name__ == "__main__":
    main()
