"""Seconds per Grad-TTS training step and peak memory: this project vs PyPI ``grad-tts``.

A training step is forward, MAS, the three losses, backward, gradient clipping and the
Adam update, at the official default model (``configs/ljspeech.yaml``: batch from
``--batch-sizes``, ``out_size`` 172, lr 1e-4, clip 1.0):

* ``ours-graph``: ``GradTTSTrainer.train_step`` through ``model.train_on_batch`` (Keras
  ``make_train_function``, a ``tf.function``), ``jit_compile=False``;
* ``ours-graph-bf16``: ``ours-graph`` with float32 convolutions and matmuls computed
  from bfloat16 inputs (float32 accumulation) by oneDNN
  (``gradtts_tf.runtime.set_cpu_math("bfloat16")``, ``train.cpu_math``);
* ``ours-xla``: the same as ``ours-graph`` with ``jit_compile=True``;
* ``peer``: ``grad_tts.GradTTS.compute_loss`` + ``backward`` + ``clip_grad_norm_`` on
  encoder and decoder + ``Adam.step``, exactly the official ``train.py`` loop body.

Ours, like ``train.py`` (``callbacks.ReleaseTracingMemory``), returns the heap memory
freed after tracing to the system once the first step is done
(``runtime.release_free_memory``); the peak over the timed steps counts from there, and
the peak with the first step (tracing) is reported too.

Every contender runs in its own process (its peak resident memory is its own: the
framework, the model, optimizer state and the step), on the same inputs (written once
to an ``.npz``: random token ids, ``T_x`` ~100, random log-mels, ``T_y`` ~400) with the
same number of threads. Usage (full run; a peer step at batch 16 takes a minute or more
on 2 cores, so keep ``--reps`` small)::

    python -m bench.train_step --batch-sizes 4 16 --reps 3 --warmup 1 \\
        --json bench/results/train_step.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    add_common_args,
    apply_framework_threads,
    configure_threads,
    format_table,
    machine_info,
    measure,
    memory_kib,
    print_header,
    reset_peak_rss,
    run_worker,
    write_json,
)

CONTENDERS = ("ours-graph", "ours-graph-bf16", "ours-xla", "peer")
DEFAULT_CONFIG = ROOT / "configs" / "ljspeech.yaml"
# Official GradTTS constructor arguments (params.py names) taken from our config.
PEER_MODEL_KEYS = (
    "n_vocab", "n_spks", "spk_emb_dim", "n_enc_channels", "filter_channels",
    "filter_channels_dp", "n_heads", "n_enc_layers", "enc_kernel", "enc_dropout",
    "window_size", "dec_dim", "beta_min", "beta_max", "pe_scale",
)


def make_inputs(
    path: Path, batch: int, t_x: int, t_y: int, n_vocab: int, n_feats: int, seed: int
) -> None:
    """Writes one batch to ``path`` (.npz), channels-last ``y`` ``[B, T_y, n_feats]``.

    Item 0 has the full lengths (so the padded sizes are ``t_x``/``t_y``); the others
    are 85-100 % of them. Padding is zero, as in the data pipeline.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x_lengths = np.full(batch, t_x, np.int32)
    y_lengths = np.full(batch, t_y, np.int32)
    if batch > 1:
        x_lengths[1:] = rng.integers(int(0.85 * t_x), t_x + 1, batch - 1)
        y_lengths[1:] = rng.integers(int(0.85 * t_y), t_y + 1, batch - 1)
    x = rng.integers(1, n_vocab, (batch, t_x)).astype(np.int32)  # [B, T_x]
    x *= np.arange(t_x)[None, :] < x_lengths[:, None]
    # Log-mel-like values (natural log of magnitudes: about -11 .. 2).
    y = rng.normal(-5.0, 2.0, (batch, t_y, n_feats)).astype(np.float32)  # [B, T_y, n_feats]
    y *= (np.arange(t_y)[None, :] < y_lengths[:, None])[:, :, None]
    np.savez(path, x=x, x_lengths=x_lengths, y=y, y_lengths=y_lengths)


def _load_config(config_path: str, batch: int):
    from gradtts_tf.config import load_config

    return load_config(config_path, [f"train.batch_size={batch}"])


def worker_ours(args: argparse.Namespace, xla: bool) -> dict[str, Any]:
    """Times ``model.train_on_batch`` of this project's `GradTTS`."""
    import keras
    import numpy as np
    import tensorflow as tf

    threads = apply_framework_threads(args.threads, tf=tf)
    from gradtts_tf.runtime import release_free_memory
    from gradtts_tf.training import build_model

    config = _load_config(args.config, args.batch)
    keras.utils.set_random_seed(args.seed)
    # As train.py builds it: FusedAdam with its slots created before the first step
    # (created inside the traced step instead, they make TensorFlow trace it twice and
    # keep an initialiser function per slot: ~300 MiB more resident memory).
    model = build_model(config, jit_compile=xla)
    with np.load(args.inputs) as data:
        batch = {k: tf.constant(data[k]) for k in data.files}
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    mem_setup = memory_kib()

    def step():
        return model.train_on_batch(batch, return_dict=True)  # host floats: a sync point

    warm: dict[str, int] = {}

    def after_warmup():
        release_free_memory()  # what train.py does after its first step
        warm.update(reset_peak_rss())  # the peak so far; the RSS after the release

    stats = measure(step, args.warmup, args.reps, label=args.worker, after_warmup=after_warmup)
    losses = {k: float(v) for k, v in step().items()}
    return {
        "stats": stats, "losses": losses, "n_params": n_params, "thread_settings": threads,
        "memory_after_setup_kib": mem_setup, "memory_after_warmup_kib": warm,
        "memory_kib": memory_kib(),
        "out_size": model.out_size, "grad_clip": model.grad_clip,
        "learning_rate": config.train.learning_rate,
    }


def worker_peer(args: argparse.Namespace) -> dict[str, Any]:
    """Times the official ``train.py`` loop body on the ``grad-tts`` package's model."""
    import random

    import numpy as np
    import torch

    threads = apply_framework_threads(args.threads, torch=torch)
    from grad_tts.model.tts import GradTTS

    config = _load_config(args.config, args.batch)
    if config.model.spk_cond_encoder:
        raise SystemExit("the peer has no speaker-conditioned encoder: spk_cond_encoder=false")
    params = {k: getattr(config.model, k) for k in PEER_MODEL_KEYS}
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    model = GradTTS(n_feats=config.audio.n_mels, **params)
    model.train()
    optimizer = torch.optim.Adam(params=model.parameters(), lr=config.train.learning_rate)
    with np.load(args.inputs) as data:
        x = torch.from_numpy(data["x"]).long()
        x_lengths = torch.from_numpy(data["x_lengths"]).long()
        y = torch.from_numpy(data["y"]).transpose(1, 2).contiguous()  # [B, n_feats, T_y]
        y_lengths = torch.from_numpy(data["y_lengths"]).long()
    out_size = config.train.out_size
    clip = config.train.grad_clip
    mem_setup = memory_kib()

    def step():
        model.zero_grad()
        dur_loss, prior_loss, diff_loss = model.compute_loss(
            x, x_lengths, y, y_lengths, out_size=out_size
        )
        loss = sum([dur_loss, prior_loss, diff_loss])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), max_norm=clip)
        torch.nn.utils.clip_grad_norm_(model.decoder.parameters(), max_norm=clip)
        optimizer.step()
        # The official loop reads the losses back for logging.
        return {
            "loss": loss.item(), "dur_loss": dur_loss.item(), "prior_loss": prior_loss.item(),
            "diff_loss": diff_loss.item(),
        }

    warm: dict[str, int] = {}
    stats = measure(step, args.warmup, args.reps, label=args.worker,
                    after_warmup=lambda: warm.update(reset_peak_rss()))
    losses = step()
    return {
        "stats": stats, "losses": losses, "n_params": int(model.nparams),
        "thread_settings": threads, "memory_after_setup_kib": mem_setup,
        "memory_after_warmup_kib": warm, "memory_kib": memory_kib(), "out_size": out_size,
        "grad_clip": clip,
        "learning_rate": config.train.learning_rate,
    }


def run_worker_mode(args: argparse.Namespace) -> None:
    import json

    configure_threads(args.threads)
    if args.worker == "ours-graph-bf16":
        from gradtts_tf.runtime import set_cpu_math

        set_cpu_math("bfloat16")  # before TensorFlow runs an op in this worker
    if args.worker == "peer":
        result = worker_peer(args)
    else:
        result = worker_ours(args, xla=args.worker == "ours-xla")
    Path(args.worker_out).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[4, 16])
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="model/training config")
    parser.add_argument("--text-len", type=int, default=100, help="padded token ids per item")
    parser.add_argument("--mel-len", type=int, default=400, help="padded mel frames per item")
    parser.add_argument("--seed", type=int, default=37)
    add_common_args(parser, reps=3, warmup=1)
    # Internal: run one contender in this process.
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker_mode(args)
        return

    configure_threads(args.threads)
    info = machine_info(args.threads)
    print_header("Training step: ours vs grad-tts (PyTorch)", info)
    config = _load_config(args.config, 1)
    print(
        f"config {args.config}: out_size {config.train.out_size}, lr "
        f"{config.train.learning_rate}, text {args.text_len} ids, mel {args.mel_len} frames"
    )
    rows, raw = [], []
    with tempfile.TemporaryDirectory(prefix="gradtts_bench_train_") as tmp:
        for batch in args.batch_sizes:
            inputs = Path(tmp) / f"batch{batch}.npz"
            make_inputs(
                inputs, batch, args.text_len, args.mel_len, config.model.n_vocab,
                config.audio.n_mels, args.seed,
            )
            results = {}
            for contender in args.contenders:
                print(f"batch {batch}: {contender}", flush=True)
                worker_args = [
                    "--worker", contender, "--inputs", str(inputs), "--batch", str(batch),
                    "--config", args.config, "--threads", str(args.threads),
                    "--reps", str(args.reps), "--warmup", str(args.warmup),
                    "--seed", str(args.seed),
                ]
                try:
                    results[contender] = run_worker("bench.train_step", worker_args)
                except RuntimeError as err:
                    print(f"  skipped: {err}")
                    continue
                raw.append({"batch": batch, "contender": contender, **results[contender]})
            peer = results.get("peer")

            def peaks(r: dict[str, Any]) -> tuple[float, float]:
                """(peak RSS over the timed steps, peak including the warm-up) in MiB."""
                steady = r["memory_kib"]["peak_rss_kib"] / 1024
                warm = r["memory_after_warmup_kib"].get("peak_rss_kib", 0) / 1024
                return steady, max(steady, warm)

            for contender, r in results.items():
                mem, mem_first = peaks(r)
                rows.append(
                    {
                        "batch": batch, "contender": contender,
                        "median_s": r["stats"]["median_s"], "min_s": r["stats"]["min_s"],
                        "max_s": r["stats"]["max_s"], "first_s": r["stats"]["first_s"],
                        "vs_peer": r["stats"]["median_s"] / peer["stats"]["median_s"]
                        if peer else None,
                        "peak_rss_mib": mem, "peak_first_mib": mem_first,
                        "rss_setup_mib": r["memory_after_setup_kib"]["rss_kib"] / 1024,
                        "mem_vs_peer": mem / peaks(peer)[0] if peer else None,
                        "mem_first_vs_peer": mem_first / peaks(peer)[1] if peer else None,
                        "n_params": r["n_params"], "loss": r["losses"]["loss"],
                    }
                )
    columns = (
        "batch", "contender", "median_s", "min_s", "max_s", "first_s", "vs_peer",
        "peak_rss_mib", "peak_first_mib", "rss_setup_mib", "mem_vs_peer", "mem_first_vs_peer",
        "n_params", "loss",
    )
    print()
    print(format_table(rows, columns))
    print(
        "seconds per step (median); vs_peer: median / peer's median (< 1 is faster); "
        "peak_rss_mib: process peak (VmHWM) over the timed steps (the count restarts after "
        "the warm-up); peak_first_mib: the same including the warm-up (first step: tracing, "
        "compilation); first_s: first step incl. tracing/compile"
    )
    write_json(
        args.json,
        {
            "benchmark": "train_step",
            "machine": info,
            "settings": {
                "config": args.config, "batch_sizes": args.batch_sizes,
                "contenders": args.contenders, "text_len": args.text_len,
                "mel_len": args.mel_len, "out_size": config.train.out_size, "seed": args.seed,
                "reps": args.reps, "warmup": args.warmup,
                "inputs": "random ids in [1, n_vocab), N(-5, 2) log-mels; item 0 full length, "
                "others 85-100 %, zero padding",
            },
            "results": rows,
            "raw": raw,
        },
    )


if __name__ == "__main__":
    main()
