"""Markdown tables of benchmark JSON files, for BENCHMARKS.md.

``python -m bench.report bench/results/mas.json [more.json ...]`` prints, per file, the
command, date, machine and versions it recorded, then one table row per result with
its scalar fields (times in the units the script wrote). Nothing is re-measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SKIP = {"times", "raw", "times_s", "q1", "q3"}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(path: str | Path) -> str:
    """One JSON file of a `bench` script as Markdown."""
    data = json.loads(Path(path).read_text())
    m = data.get("machine", {})
    v = m.get("versions", {})
    lines = [
        f"### `{data.get('benchmark', Path(path).stem)}` ({Path(path).name})",
        "",
        f"- command: `{m.get('command', '?')}`",
        f"- date (UTC): {m.get('date_utc', '?')}; git commit {str(m.get('git_commit'))[:10]}",
        f"- machine: {m.get('cpu_model', '?')}, {m.get('cores_usable', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, threads {m.get('threads', '?')}, load average "
        f"at start {[round(x, 2) for x in m.get('load_average_1_5_15', [])]}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
    ]
    rows = data.get("results", [])
    if isinstance(rows, dict):
        rows = [{"name": k, **val} if isinstance(val, dict) else {"name": k, "value": val}
                for k, val in rows.items()]
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in columns and key not in SKIP and not isinstance(value, list | dict):
                columns.append(key)
    if columns:
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + " --- |" * len(columns))
        for row in rows:
            lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("files", nargs="+", help="JSON files written with --json")
    args = parser.parse_args(argv)
    print("\n".join(render(f) for f in args.files))


if __name__ == "__main__":
    main()
