"""Summarize ``results.json`` files of repeated runs: mean ± std of every test metric and of the wall time.

Usage: ``python benchmarks/summarize.py runs/<experiment> [runs/<experiment> ...]``
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def summarize(folder: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*/results.json"))]
    if not runs:
        return f"{folder}: no results.json found"
    keys = sorted({k for r in runs for k in r["metrics"] if k.startswith("test/") or k.endswith("wall_time_s")})
    parts = []
    for key in keys:
        values = [r["metrics"][key] for r in runs if key in r["metrics"]]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        scale = 100.0 if key.endswith(("_acc", "_miou")) else 1.0
        parts.append(f"{key} {scale * statistics.mean(values):.2f} ± {scale * std:.2f}")
    return f"{folder.name} (n={len(runs)}): " + "; ".join(parts)


if __name__ == "__main__":
    sys.stdout.write("\n".join(summarize(Path(a)) for a in sys.argv[1:]) + "\n")
