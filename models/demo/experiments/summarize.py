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

from gradtts_tf.evaluation import SentenceResult, SystemReport


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
        # All seeds' sentences as one system: evaluate.py's own pooling (WER/CER over
        # total words/characters, MCD the mean over sentences).
        pooled = SystemReport(system, [
            SentenceResult(**r) for result in results for r in result["sentences"]
        ]).overall
        mcd = pooled["mcd"] if pooled["mcd"] is not None else float("nan")
        seeds = [round(r["overall"]["wer"], 3) for r in results]
        rows.append((pooled["wer"], pooled["cer"], mcd, key, system, seeds))
    rows.sort(key=lambda r: (r[0], r[2]))
    print(f"{'WER':>6} {'CER':>6} {'MCD':>6}  run / system (per-seed WER)")
    for wer, cer, mcd, key, system, seeds in rows:
        print(f"{wer:6.3f} {cer:6.3f} {mcd:6.2f}  {key} {system} {seeds}")


if __name__ == "__main__":
    main(sys.argv[1:])
