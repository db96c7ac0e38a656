"""Monotonic alignment search: `gradtts_tf.ops.maximum_path` vs the Glow-TTS peers.

Contenders, all on the same ``value``/``mask`` arrays and the same thread count:

* ``tf-graph``: ``tf.function(maximum_path)``;
* ``tf-xla``: ``tf.function(maximum_path, jit_compile=True)``;
* ``tf-frames``: ``maximum_path_frame_major`` on the same arrays stored frame-major
  (``[B, T_y, T_x]``, transposed before timing): what the training step calls, since
  it computes its log-likelihoods in that layout;
* ``tf-frames-in-graph``: ``tf-frames`` called ``--in-graph-calls`` times in sequence
  (control dependencies, a separate copy of the input each) inside one
  graph-mode ``tf.function``, timed per call: as the training step runs it, without
  the ~0.15 ms of Python-to-TensorFlow dispatch that every eager call pays;
* ``cython``: ``monotonic_alignment_search.maximum_path_cython`` on torch tensors, the
  wrapper Glow-TTS and Grad-TTS call in training (mask sums, float32 copy, kernel);
* ``cython-kernel``: the bare Cython kernel ``maximum_path_c`` on numpy arrays (only the
  copy it needs, because it works in place);
* ``numpy``: ``monotonic_alignment_search.maximum_path_numpy`` (Glow-TTS's numpy MAS).

TensorFlow contenders are timed until their call returns the result tensor (on CPU
the call returns once the result is computed); converting it to numpy, a copy the
training step never makes, happens outside the timing, for the check. Every path is
compared with the Cython one (the reference). Usage (full run)::

    python -m bench.mas --json bench/results/mas.json

Sizes are ``BxT_XxT_Y``; the defaults (``DEFAULT_SIZES``) are the ones BENCHMARKS.md
reports.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import (
    add_common_args,
    apply_framework_threads,
    configure_threads,
    format_table,
    machine_info,
    measure,
    print_header,
    summarize,
    write_json,
)

DEFAULT_SIZES = ("16x64x256", "16x128x512", "16x256x1024", "1x128x512")
IMPLS = (
    "tf-graph", "tf-xla", "tf-frames", "tf-frames-in-graph", "cython", "cython-kernel", "numpy"
)
# Contenders whose output is frame-major ([B, T_y, T_x]).
FRAME_MAJOR = ("tf-frames", "tf-frames-in-graph")
REFERENCE = "cython"


def parse_size(text: str) -> tuple[int, int, int]:
    """``"16x128x512"`` -> ``(16, 128, 512)`` (batch, T_x, T_y)."""
    parts = text.lower().split("x")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected BxT_XxT_Y, e.g. 16x128x512")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def make_inputs(batch: int, t_x: int, t_y: int, ragged: bool, seed: int):
    """Random log-likelihoods ``[B, T_x, T_y]`` float32 and a 0/1 mask of the same shape.

    With ``ragged``, item lengths are drawn in ``[T/2, T]`` (item 0 keeps the full
    size, and ``t_x <= t_y`` always, as for real speech); otherwise every item is full.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    value = rng.standard_normal((batch, t_x, t_y)).astype(np.float32)  # [B, T_x, T_y]
    t_xs = np.full(batch, t_x)
    t_ys = np.full(batch, t_y)
    if ragged and batch > 1:
        t_xs[1:] = rng.integers(t_x // 2, t_x + 1, batch - 1)
        t_ys[1:] = rng.integers(t_y // 2, t_y + 1, batch - 1)
        t_ys = np.maximum(t_ys, t_xs)
    x_mask = np.arange(t_x)[None, :] < t_xs[:, None]  # [B, T_x]
    y_mask = np.arange(t_y)[None, :] < t_ys[:, None]  # [B, T_y]
    mask = (x_mask[:, :, None] & y_mask[:, None, :]).astype(np.float32)  # [B, T_x, T_y]
    return value, mask


def build_impls(impls: list[str], value, mask, in_graph_calls: int = 10) -> dict[str, Any]:
    """One zero-argument callable per implementation, returning its path.

    The path is a numpy array, a torch tensor or a TensorFlow tensor (`to_numpy`
    converts it); for ``tf-frames-in-graph``, a list of ``in_graph_calls`` tensors.
    """
    import numpy as np

    fns: dict[str, Any] = {}
    if {"tf-graph", "tf-xla"} & set(impls):
        import tensorflow as tf

        from gradtts_tf.ops import maximum_path

        v_tf, m_tf = tf.constant(value), tf.constant(mask)
        graph = tf.function(maximum_path)
        xla = tf.function(maximum_path, jit_compile=True)
        fns["tf-graph"] = lambda: graph(v_tf, m_tf)
        fns["tf-xla"] = lambda: xla(v_tf, m_tf)
    if {"tf-frames", "tf-frames-in-graph"} & set(impls):
        import tensorflow as tf

        from gradtts_tf.ops import maximum_path_frame_major

        v_fm = tf.constant(np.ascontiguousarray(value.transpose(0, 2, 1)))  # [B, T_y, T_x]
        m_fm = tf.constant(np.ascontiguousarray(mask.transpose(0, 2, 1)))  # [B, T_y, T_x]
        fns["tf-frames"] = lambda: maximum_path_frame_major(v_fm, m_fm)
        # A separate input tensor per call, so that no two calls can be merged.
        v_copies = [tf.constant(v_fm.numpy()) for _ in range(in_graph_calls)]

        @tf.function
        def in_graph(v_copies, m_fm):
            paths = []
            for v in v_copies:
                with tf.control_dependencies(paths[-1:]):  # one call after the other
                    paths.append(maximum_path_frame_major(v, m_fm))
            return paths

        fns["tf-frames-in-graph"] = lambda: in_graph(v_copies, m_fm)
    if {"cython", "numpy"} & set(impls):
        import torch
        from monotonic_alignment_search import maximum_path_cython, maximum_path_numpy

        v_t, m_t = torch.from_numpy(value), torch.from_numpy(mask)
        fns["cython"] = lambda: maximum_path_cython(v_t, m_t)
        fns["numpy"] = lambda: maximum_path_numpy(v_t, m_t)
    if "cython-kernel" in impls:
        from monotonic_alignment_search.core import maximum_path_c

        t_xs = np.ascontiguousarray(mask[:, :, 0].sum(1).astype(np.int32))  # [B]
        t_ys = np.ascontiguousarray(mask[:, 0, :].sum(1).astype(np.int32))  # [B]

        def kernel():
            work = value * mask  # the kernel overwrites its input with the DP table
            path = np.zeros(value.shape, np.int32)
            maximum_path_c(path, work, t_xs, t_ys)
            return path

        fns["cython-kernel"] = kernel
    return {name: fns[name] for name in impls}


def to_numpy(path) -> Any:
    """A contender's path as a float32 numpy array (the first one of a list)."""
    import numpy as np

    if isinstance(path, list):
        path = path[0]
    return np.asarray(path.numpy() if hasattr(path, "numpy") else path, np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
        help="BxT_XxT_Y sizes (default: " + " ".join(DEFAULT_SIZES) + ")",
    )
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument(
        "--ragged", action="store_true", help="varied item lengths instead of full masks"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--in-graph-calls", type=int, default=10,
        help="calls per graph of the tf-frames-in-graph contender (default 10)",
    )
    add_common_args(parser, reps=10, warmup=2)
    args = parser.parse_args(argv)
    if args.in_graph_calls < 1:
        parser.error(f"--in-graph-calls must be >= 1, got {args.in_graph_calls}")

    configure_threads(args.threads)
    import numpy as np
    import tensorflow as tf
    import torch

    thread_settings = apply_framework_threads(args.threads, tf=tf, torch=torch)
    info = machine_info(args.threads)
    info["thread_settings"] = thread_settings
    print_header("MAS: maximum_path", info)

    impls = list(args.impls)
    if REFERENCE not in impls:
        impls.append(REFERENCE)  # needed to check the others' paths
    rows = []
    for batch, t_x, t_y in args.sizes:
        size = f"{batch}x{t_x}x{t_y}"
        print(f"size B x T_x x T_y = {size}", flush=True)
        value, mask = make_inputs(batch, t_x, t_y, args.ragged, args.seed)
        fns = build_impls(impls, value, mask, args.in_graph_calls)
        reference = to_numpy(fns[REFERENCE]())
        results = {}
        for name, fn in fns.items():
            start = time.perf_counter()
            out = fn()
            first = time.perf_counter() - start  # tracing/XLA compilation included
            outs = out if isinstance(out, list) else [out]
            differs = np.zeros(batch, bool)
            for path in outs:
                path = to_numpy(path)
                if name in FRAME_MAJOR:
                    path = path.transpose(0, 2, 1)  # [B, T_x, T_y]
                differs |= np.any(path != reference, axis=(1, 2))  # [B]
            stats = measure(fn, args.warmup, args.reps, label=name)
            if len(outs) > 1:  # several calls per run: time per call
                stats = summarize([t / len(outs) for t in stats["times_s"]])
            stats["first_s"] = first if name != REFERENCE else stats["first_s"]
            results[name] = {
                **stats,
                "identical_to_cython": bool(not differs.any()),
                "items_differing": int(differs.sum()),
            }
        for name, r in results.items():
            rows.append(
                {
                    "size": size, "impl": name, "median_ms": r["median_s"] * 1e3,
                    "q1_ms": r["q1_s"] * 1e3, "q3_ms": r["q3_s"] * 1e3,
                    "first_ms": (r["first_s"] or float("nan")) * 1e3,
                    "vs_cython": r["median_s"] / results[REFERENCE]["median_s"],
                    "vs_kernel": (r["median_s"] / results["cython-kernel"]["median_s"]
                                  if "cython-kernel" in results else float("nan")),
                    "identical": r["identical_to_cython"],
                    "items_differing": r["items_differing"],
                }
            )

    columns = (
        "size", "impl", "median_ms", "q1_ms", "q3_ms", "first_ms", "vs_cython", "vs_kernel",
        "identical", "items_differing",
    )
    print()
    print(format_table(rows, columns))
    print("vs_cython / vs_kernel: median time / median time of the Cython wrapper / the bare "
          "Cython kernel (< 1 is faster)")
    if not all(r["identical"] for r in rows):
        print("WARNING: some paths differ from the Cython reference (see items_differing)")
    write_json(
        args.json,
        {
            "benchmark": "mas",
            "machine": info,
            "settings": {
                "sizes": [list(s) for s in args.sizes], "ragged": args.ragged, "seed": args.seed,
                "in_graph_calls": args.in_graph_calls,
                "reps": args.reps, "warmup": args.warmup, "impls": impls,
                "inputs": "standard normal float32 log-likelihoods, 0/1 float32 mask",
            },
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
