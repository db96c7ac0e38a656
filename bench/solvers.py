"""Reverse-diffusion solvers on a trained voice: quality against the number of steps.

For each solver of `gradtts_tf.solvers` and each number of steps, on sentences the
voice never trained on (default: the demo voice and the first sentences of its dev set,
``data/dev`` from ``python -m gradtts_tf.demo_data --out data/dev --corpus dev``: the
set its synthesis settings are chosen on, so that its out-of-domain evaluation set stays
unseen by the choice):

* ``distance`` (ODE solvers only): RMS difference, over mel frames and bins, between the
  mel and the converged solution of the same probability-flow ODE from the same start
  (``--reference-steps`` Euler steps, 1000 by default), averaged over sentences and
  seeds. The stochastic solvers follow another path by design: no distance.
* ``wer``, ``cer``, ``mcd``: `gradtts_tf.evaluation.evaluate` (pocketsphinx; MCD
  against the recordings), per seed, then averaged over ``--seeds``.

Every configuration is written to the JSON file as soon as it is measured, and a rerun
skips those already there (the measurement is long on a small CPU: stop and resume at
will). ``--plot`` draws quality against steps, one line per solver.

Usage::

    python -m bench.solvers --sentences 24 --distance-sentences 6 \
        --json bench/results/solvers.json --plot bench/results/solvers.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from bench.common import (
    apply_framework_threads,
    configure_threads,
    format_table,
    machine_info,
    print_header,
    write_json,
)

STEPS = (2, 3, 4, 6, 10)
METRICS = ("distance", "wer", "cer", "mcd")


def _key(solver: str, steps: int, seed: int) -> str:
    return f"{solver}/{steps}/{seed}"


def _mels(synth, sentences: list[str], steps: int, solver: str, seed: int) -> list:
    utts, _ = synth.synthesize(sentences, steps=steps, solver=solver, seed=seed)
    return [u.mel for u in utts]


def _distance(mels: list, refs: list) -> float:
    import numpy as np

    sq = sum(float(np.sum((m - r) ** 2)) for m, r in zip(mels, refs, strict=True))
    n = sum(m.size for m in mels)
    return (sq / n) ** 0.5


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per solver and steps: each metric averaged over the measured seeds."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for entry in results["runs"].values():
        groups.setdefault((entry["solver"], entry["steps"]), []).append(entry)
    rows = []
    for (solver, steps), entries in sorted(groups.items()):
        row: dict[str, Any] = {"solver": solver, "steps": steps, "seeds": len(entries)}
        for metric in METRICS:
            values = [e[metric] for e in entries if e.get(metric) is not None]
            row[metric] = sum(values) / len(values) if values else None
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], ceilings: dict[str, Any], path: str) -> None:
    """Quality against steps, one line per solver, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    solvers = sorted({r["solver"] for r in rows})
    colors = {s: f"C{i}" for i, s in enumerate(solvers)}
    for ax, metric in zip(axes, METRICS, strict=True):
        for solver in solvers:
            points = [(r["steps"], r[metric]) for r in rows
                      if r["solver"] == solver and r[metric] is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=solver,
                        color=colors[solver])
        ceiling = ceilings.get(metric)
        if ceiling:  # the recordings' MCD against themselves is 0: no line
            ax.axhline(ceiling, color="grey", linestyle=":", label="recordings")
        ax.set_xlabel("steps (estimator calls)")
        ax.set_title(metric + (" (to converged ODE)" if metric == "distance" else ""))
        ax.set_xticks(STEPS)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)  # the quality panels have every solver
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voice", default="demo", help="run folder or installed voice")
    parser.add_argument("--references", default="data/dev",
                        help="recordings of sentences the voice never trained on")
    parser.add_argument("--sentences", type=int, default=24, help="first N of them")
    parser.add_argument("--distance-sentences", type=int, default=6,
                        help="first N of them for the distance to the converged ODE")
    parser.add_argument("--solvers", nargs="+", default=None, help="default: all")
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", required=True, help="results (read first: resumes)")
    parser.add_argument("--plot", default=None, help="PNG of quality against steps")
    args = parser.parse_args(argv)

    configure_threads(args.threads)
    import tensorflow as tf

    from gradtts_tf.evaluation import Recognizer, evaluate, load_references
    from gradtts_tf.solvers import SOLVERS, STOCHASTIC_SOLVERS
    from gradtts_tf.synthesizer import Synthesizer

    apply_framework_threads(args.threads, tf=tf)
    solvers = args.solvers or list(SOLVERS)
    path = Path(args.json)
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("runs", {})
    results["machine"] = machine_info(args.threads)
    print_header("reverse-diffusion solvers", results["machine"])

    synth = Synthesizer.from_pretrained(args.voice)
    references = load_references(args.references)[: args.sentences]
    sentences = [r.text for r in references]
    results["settings"] = {
        "voice": args.voice, "references": args.references, "sentences": len(sentences),
        "distance_sentences": args.distance_sentences, "seeds": args.seeds,
        "reference_steps": args.reference_steps,
        **{k: v for k, v in dataclasses.asdict(synth.synthesis_settings()).items()
           if k in ("temperature", "length_scale")},
    }
    recognizer = Recognizer()
    if "ceilings" not in results:
        report = evaluate(None, sentences, references, vocoders=["griffin-lim"],
                          recognizer=recognizer, audio_config=synth.config.audio)
        results["ceilings"] = {
            name: {m: report[name].overall[m] for m in ("wer", "cer", "mcd")}
            for name in report.systems
        }
        write_json(path, results)
    print("ceilings:", results["ceilings"])

    ode_refs: dict[int, list] = {}
    for seed in args.seeds:
        for solver in solvers:
            for steps in args.steps:
                key = _key(solver, steps, seed)
                if key in results["runs"]:
                    continue
                start = time.perf_counter()
                entry: dict[str, Any] = {"solver": solver, "steps": steps, "seed": seed}
                if solver not in STOCHASTIC_SOLVERS:
                    few = sentences[: args.distance_sentences]
                    if seed not in ode_refs:
                        ode_refs[seed] = _mels(synth, few, args.reference_steps, "euler", seed)
                    entry["distance"] = _distance(
                        _mels(synth, few, steps, solver, seed), ode_refs[seed]
                    )
                report = evaluate(synth, sentences, references, recordings=False,
                                  recognizer=recognizer, steps=steps, solver=solver,
                                  seed=seed)
                entry.update({m: report["model"].overall[m] for m in ("wer", "cer", "mcd")})
                entry["seconds"] = time.perf_counter() - start
                results["runs"][key] = entry
                write_json(path, results)
                print(f"{key}: " + ", ".join(
                    f"{m} {entry[m]:.4f}" for m in METRICS if entry.get(m) is not None
                ), flush=True)

    rows = summarise(results)
    results["summary"] = rows
    write_json(path, results)
    print(format_table(rows, ["solver", "steps", "seeds", *METRICS]))
    if args.plot:
        plot(rows, results["ceilings"].get("recordings", {}), args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
