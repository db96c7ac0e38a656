"""Input pipeline throughput vs the training step's consumption (is tf.data a bottleneck?).

On a corpus (default ``data/demo``, the demo config ``configs/demo.yaml``), for
``data.cache_mels`` on (``cached``: mels precomputed once, read from ``.npy``) and off
(``uncached``: audio read and the mel computed in the ``map`` every epoch):

* ``pipeline``: training batches per second of ``build_dataset(..., "train")`` alone
  (shuffled, padded, prefetched, as ``model.fit`` gets them), after the first batch
  (which fills the shuffle buffer; reported as ``first_batch_s``);
* ``train``: training steps per second of the demo model (``training.build_model``,
  its ``jit_compile`` setting) on batches held in memory: the consumption rate;
* ``fed``: steps per second of the same model fed by the pipeline (tf.data's prefetch
  runs beside the step, as in ``fit``): if the pipeline keeps up, ``fed`` ~ ``train``.

Each measurement runs in its own process with the same thread settings; mel caches go
to a scratch folder (``--workdir``), never beside the corpus. Usage (full run)::

    python -m bench.pipeline --json bench/results/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    add_common_args,
    apply_framework_threads,
    configure_threads,
    format_table,
    machine_info,
    print_header,
    run_worker,
    summarize,
    write_json,
)

MODES = ("cached", "uncached")


def make_subset(data: Path, out: Path, n: int) -> Path:
    """An LJSpeech folder with the first ``n`` lines of ``data``'s metadata (wavs linked)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = (data / "metadata.csv").read_text(encoding="utf-8").splitlines()
    (out / "metadata.csv").write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    link = out / "wavs"
    if not link.exists():
        os.symlink((data / "wavs").resolve(), link)
    return out


def _config(args: argparse.Namespace, mode: str):
    from gradtts_tf.config import load_config

    cache = Path(args.workdir) / f"cache_{mode}"
    overrides = [
        f"data.cache_mels={'true' if mode == 'cached' else 'false'}",
        f"data.cache_dir={cache}",
        *args.set,
    ]
    return load_config(args.config, overrides)


def _dataset(args: argparse.Namespace, mode: str):
    """(config, manifest, prepare seconds, repeated train dataset) for ``mode``."""
    from gradtts_tf.data import build_dataset, prepare_corpus

    config = _config(args, mode)
    start = time.perf_counter()
    manifest = prepare_corpus(args.data, config, progress=False)
    prepare_s = time.perf_counter() - start
    ds = build_dataset(args.data, config, "train", manifest=manifest)
    n_train = len(manifest.split("train", config))
    return config, manifest, prepare_s, ds.repeat(), n_train


def worker_pipeline(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Batches per second of the training pipeline alone."""
    import tensorflow as tf

    threads = apply_framework_threads(args.threads, tf=tf)
    config, manifest, prepare_s, ds, n_train = _dataset(args, mode)
    it = iter(ds)
    start = time.perf_counter()
    next(it)
    first = time.perf_counter() - start
    for _ in range(args.warmup):
        next(it)
    times = []
    for _ in range(args.batches):
        start = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - start)
    stats = summarize(times)
    return {
        "thread_settings": threads, "prepare_s": prepare_s, "first_batch_s": first,
        "batches_per_s": len(times) / sum(times), "per_batch": stats,
        "batch_size": config.train.batch_size, "n_train": n_train,
        "batches_per_epoch": n_train // config.train.batch_size,
        "padded_shapes": [manifest.max_text_len, manifest.max_mel_len],
    }


def worker_train(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Steps per second of the training step on in-memory batches, then fed by tf.data."""
    import tensorflow as tf

    threads = apply_framework_threads(args.threads, tf=tf)
    from gradtts_tf.training import build_model

    config, _, _, ds, _ = _dataset(args, mode)
    model = build_model(config)
    it = iter(ds)
    held = [next(it) for _ in range(min(args.steps, 4))]  # real batches, in memory

    start = time.perf_counter()
    model.train_on_batch(held[0], return_dict=True)
    first = time.perf_counter() - start
    for i in range(args.warmup):
        model.train_on_batch(held[i % len(held)], return_dict=True)
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(held[i % len(held)], return_dict=True)
        times.append(time.perf_counter() - start)
    in_memory = summarize(times)

    # Fed: the pipeline's prefetch threads work while the step runs, as under fit().
    fed_times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(next(it), return_dict=True)
        fed_times.append(time.perf_counter() - start)
    fed = summarize(fed_times)
    return {
        "thread_settings": threads, "first_step_s": first, "jit_compile": bool(model.jit_compile),
        "steps_per_s": len(times) / sum(times), "per_step": in_memory,
        "fed_steps_per_s": len(fed_times) / sum(fed_times), "per_fed_step": fed,
        "batch_size": config.train.batch_size,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "demo"), help="LJSpeech folder")
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batches", type=int, default=50, help="timed pipeline batches")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (each way)")
    parser.add_argument("--no-train", action="store_true", help="pipeline throughput only")
    parser.add_argument(
        "--max-utterances", type=int, default=0,
        help="use only the first N corpus lines (quick runs; 0: all)",
    )
    parser.add_argument(
        "--workdir", default=None, help="scratch folder for mel caches (default: temporary)"
    )
    add_common_args(parser, reps=None, warmup=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    configure_threads(args.threads)
    if args.worker:
        kind, mode = args.worker.split(":")
        fn = worker_pipeline if kind == "pipeline" else worker_train
        Path(args.worker_out).write_text(json.dumps(fn(args, mode)))
        return

    info = machine_info(args.threads)
    print_header("Input pipeline vs training step", info)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gradtts_bench_pipeline_")
        args.workdir = tmp.name
    try:
        data = Path(args.data)
        if args.max_utterances:
            data = make_subset(data, Path(args.workdir) / "corpus", args.max_utterances)
        common = [
            "--data", str(data), "--config", args.config, "--workdir", args.workdir,
            "--threads", str(args.threads), "--warmup", str(args.warmup),
            "--batches", str(args.batches), "--steps", str(args.steps),
        ]
        if args.set:
            common += ["--set", *args.set]
        rows, raw = [], {}
        for mode in args.modes:
            print(f"{mode}: pipeline alone", flush=True)
            pipe = run_worker("bench.pipeline", [*common, "--worker", f"pipeline:{mode}"])
            row = {
                "mode": mode, "pipeline_batches_s": pipe["batches_per_s"],
                "first_batch_s": pipe["first_batch_s"], "prepare_s": pipe["prepare_s"],
                "batch": pipe["batch_size"], "batches_epoch": pipe["batches_per_epoch"],
            }
            raw[f"pipeline:{mode}"] = pipe
            if not args.no_train:
                print(f"{mode}: training step, in memory and fed by the pipeline", flush=True)
                train = run_worker("bench.pipeline", [*common, "--worker", f"train:{mode}"])
                raw[f"train:{mode}"] = train
                row.update(
                    {
                        "train_steps_s": train["steps_per_s"],
                        "fed_steps_s": train["fed_steps_per_s"],
                        "headroom": pipe["batches_per_s"] / train["steps_per_s"],
                        "fed_vs_memory": train["fed_steps_per_s"] / train["steps_per_s"],
                    }
                )
            rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    columns = (
        "mode", "batch", "batches_epoch", "prepare_s", "first_batch_s", "pipeline_batches_s",
        "train_steps_s", "fed_steps_s", "headroom", "fed_vs_memory",
    )
    print()
    print(format_table(rows, columns))
    print(
        "headroom: pipeline batches/s / training steps/s (> 1: the pipeline outruns the "
        "step); fed_vs_memory: steps/s fed by tf.data / steps/s on in-memory batches "
        "(~1: no input stall); prepare_s: one-off corpus preparation (cache build)"
    )
    write_json(
        args.json,
        {
            "benchmark": "pipeline",
            "machine": info,
            "settings": {
                "data": args.data, "max_utterances": args.max_utterances,
                "config": args.config, "overrides": args.set, "modes": args.modes,
                "batches": args.batches, "steps": args.steps, "warmup": args.warmup,
            },
            "results": rows,
            "raw": raw,
        },
    )


if __name__ == "__main__":
    main()
