"""Pools evaluate.py reports that differ only in their seed: one row per setting.

    python summarize.py 'runs/name_dev_t*_seed*.json' [...]

Each row pools the sentences of all seeds (WER and CER as total errors over total
words/characters, MCD as the mean over sentences), lists the per-seed WERs, and rows are
sorted by WER, then MCD.
"""

import glob
import json
import re
import sys
from collections import defaultdict


def main(patterns: list[str]) -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            report = json.load(open(path, encoding="utf-8"))
            key = re.sub(r"_seed\d+\.json$", "", path)
            for system, result in report["systems"].items():
                groups[(key, system)].append(result)
    rows = []
    for (key, system), results in groups.items():
        s = [r for result in results for r in result["sentences"]]
        mcds = [r["mcd"] for r in s if r.get("mcd") is not None]
        rows.append((
            sum(r["word_errors"] for r in s) / max(sum(r["n_words"] for r in s), 1),
            sum(r["char_errors"] for r in s) / max(sum(r["n_chars"] for r in s), 1),
            sum(mcds) / len(mcds) if mcds else float("nan"),
            key, system, [round(r["overall"]["wer"], 3) for r in results],
        ))
    rows.sort(key=lambda r: (r[0], r[2]))
    print(f"{'WER':>6} {'CER':>6} {'MCD':>6}  run / system (per-seed WER)")
    for wer, cer, mcd, key, system, seeds in rows:
        print(f"{wer:6.3f} {cer:6.3f} {mcd:6.2f}  {key} {system} {seeds}")


if __name__ == "__main__":
    main(sys.argv[1:])
