#!/usr/bin/env python3
"""Turns criterion's estimates for `cargo bench -p cellar-benches --bench sector` into the
markdown tables of docs/benchmarks-sector.md.

Usage: python3 benches/scripts/sector_report.py [CARGO_TARGET_DIR]   (default: target)

Ratios are throughput ratios (other's median time / engine's median time): above 1 means the
engine is faster. "engine / raw" is the figure the targets are stated in.
"""
import json
import os
import sys

CONTENDERS = ["raw", "engine", "redb", "fjall"]


def fmt(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def median(root, group, who):
    path = os.path.join(root, group, who, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except OSError:
        return None


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "target"
    root = os.path.join(target, "criterion")
    groups = sorted(g for g in os.listdir(root) if os.path.isdir(os.path.join(root, g, "engine")))
    print("| workload | raw | engine | redb | fjall | engine / raw | engine vs redb | engine vs fjall |")
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    for g in groups:
        m = {c: median(root, g, c) for c in CONTENDERS}
        e = m["engine"]

        def ratio(c):
            return f"{m[c] / e:.2f}×" if m[c] and e else "–"

        cells = [fmt(m[c]) if m[c] else "–" for c in CONTENDERS]
        print(f"| {g} | " + " | ".join(cells) + f" | {ratio('raw')} | {ratio('redb')} | {ratio('fjall')} |")
        crash = median(root, g, "engine_crash")
        if crash:
            m["engine"] = e = crash
            cells = [fmt(m[c]) if m[c] else "–" for c in CONTENDERS]
            print(f"| {g} (engine after a crash: scan) | " + " | ".join(cells)
                  + f" | {ratio('raw')} | {ratio('redb')} | {ratio('fjall')} |")
            device = median(root, g, "device_read")
            if device:
                notes.append(f"Crash recovery {fmt(crash)} against a raw sequential read of the "
                             f"engine's whole device file {fmt(device)} (same cold cache): "
                             f"{device / crash:.2f}× (issue 13's target: ≥ 0.8×).")
    for n in notes:
        print(f"\n{n}")


if __name__ == "__main__":
    main()
