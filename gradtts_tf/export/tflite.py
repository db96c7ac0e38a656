"""Grad-TTS to TFLite graphs made of builtin ops only (no Flex / TF Select runtime).

``python -m export.tflite --checkpoint RUN --out DIR`` exports the SavedModels of
`export.savedmodel` and converts each graph (``encoder``, ``decoder_step`` and, with
``--vocoder``, ``vocoder``) with ``target_spec.supported_ops = [TFLITE_BUILTINS]``::

    DIR/float32/  encoder.tflite  decoder_step.tflite  [vocoder.tflite]
                  model_info.json  inv_mel_basis.f32
    DIR/float16/  same, float16 weights (dequantised to float32 at load)
    DIR/int8/     same, dynamic-range int8 weights (with --int8)
    DIR/report.json  sizes, load times, conversion times [, quality vs Keras]

Each precision folder is self-contained: ship one of them in an app and run it with
``export/run_tflite.py --model-dir DIR/float32``. Conversion fails with `FlexOpsError`
if any op would need the Flex delegate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from gradtts_tf.cli.quiet import add_verbose_argument, native_logs_filtered, quiet_tensorflow
from gradtts_tf.config import Config
from gradtts_tf.export.run_tflite import (
    GRAPH_FILES,
    Graph,
    TFLiteSynthesizer,
    model_ops,
    size_dynamic_inputs,
)
from gradtts_tf.export.savedmodel import (
    INV_MEL_FILE,
    MANIFEST,
    SIGNATURE,
    export_savedmodels,
    load_checkpoint,
)
from gradtts_tf.model import GradTTS
from gradtts_tf.noise import standard_normal

VARIANTS = ("float32", "float16", "int8")
DEFAULT_VARIANTS = ("float32", "float16")
MEASURE_TEXT = "The quick brown fox jumps over the lazy dog, twice in 2024."


class FlexOpsError(RuntimeError):
    """A graph needs TensorFlow ops that are not TFLite builtins."""


def convert_savedmodel(saved_model_dir: str | os.PathLike, variant: str = "float32") -> bytes:
    """Converts one SavedModel signature to a TFLite flatbuffer with builtin ops only.

    Args:
        saved_model_dir: SavedModel folder with a ``serving_default`` signature.
        variant: ``"float32"``, ``"float16"`` (float16 weights) or ``"int8"``
            (dynamic-range quantised weights).

    Returns:
        The flatbuffer bytes.

    Raises:
        FlexOpsError: If an op is not a TFLite builtin (the converter's list of
            offending ops is in the message), or the flatbuffer holds a custom op.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model_dir), signature_keys=[SIGNATURE]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant in ("float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        with native_logs_filtered():  # the converter logs through absl's C++ logging
            flatbuffer = converter.convert()
    except Exception as err:  # ConverterError, raised from several converter phases
        message = str(err).lower()
        if "tf select" in message or "flex op" in message or "custom op" in message:
            raise FlexOpsError(
                f"{saved_model_dir}: some ops are not TFLite builtins; the exported graphs "
                f"must not need the Flex delegate. Converter said:\n{err}"
            ) from err
        raise
    custom = [op for op in model_ops(flatbuffer) if op.startswith("CUSTOM:")]
    if custom:
        raise FlexOpsError(f"{saved_model_dir}: flatbuffer holds non-builtin ops {custom}")
    return flatbuffer


def load_seconds(path: str | os.PathLike, repeats: int = 3) -> float:
    """Best-of-``repeats`` time to create an interpreter and allocate its tensors
    (dynamic axes sized by `size_dynamic_inputs` first)."""
    best = float("inf")
    with native_logs_filtered():  # LiteRT announces its XNNPACK delegate
        for _ in range(repeats):
            start = time.perf_counter()
            graph = Graph(path)
            size_dynamic_inputs(graph.interpreter)
            graph.interpreter.allocate_tensors()
            best = min(best, time.perf_counter() - start)
    return best


def export_tflite(
    checkpoint: str | os.PathLike | GradTTS,
    out_dir: str | os.PathLike,
    config: Config | None = None,
    vocoder: Any = None,
    variants: tuple[str, ...] = DEFAULT_VARIANTS,
    measure_text: str | None = None,
) -> dict[str, Any]:
    """Exports SavedModels, converts every graph in every precision, writes a report.

    Args:
        checkpoint: A run folder (``config.yaml`` + ``model.weights.h5``) or a `GradTTS`.
        out_dir: Output folder; one subfolder per precision (see module doc).
        config: The run's config (required with a `GradTTS`).
        vocoder: ``None`` (Griffin-Lim on the host) or a HiFi-GAN (see
            `export.savedmodel.resolve_vocoder`).
        variants: Precisions among ``float32``, ``float16``, ``int8``.
        measure_text: If given, synthesise it with Keras and every precision on the
            same noise and report the mel error and the speed.

    Returns:
        The report (also written to ``out_dir/report.json``): per precision and graph
        the size in bytes, load time in seconds, conversion time; optionally quality.
    """
    if isinstance(checkpoint, GradTTS):
        model, config = checkpoint, config or Config()
    else:
        model, run_config = load_checkpoint(checkpoint)
        config = config or run_config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        saved = export_savedmodels(model, tmp, config=config, vocoder=vocoder)
        report["savedmodel_seconds"] = time.perf_counter() - start
        info = json.loads((Path(tmp) / MANIFEST).read_text())
        for variant in variants:
            vdir = out_dir / variant
            vdir.mkdir(parents=True, exist_ok=True)
            entry: dict[str, Any] = {"graphs": {}}
            for name, saved_dir in saved.items():
                start = time.perf_counter()
                flatbuffer = convert_savedmodel(saved_dir, variant)
                seconds = time.perf_counter() - start
                path = vdir / GRAPH_FILES[name]
                path.write_bytes(flatbuffer)
                entry["graphs"][name] = {
                    "file": path.name, "bytes": len(flatbuffer), "convert_seconds": seconds,
                    "load_seconds": load_seconds(path), "ops": model_ops(flatbuffer),
                }
            (vdir / MANIFEST).write_text(json.dumps({**info, "precision": variant}, indent=2))
            shutil.copy(Path(tmp) / INV_MEL_FILE, vdir / INV_MEL_FILE)
            entry["total_bytes"] = sum(f.stat().st_size for f in vdir.iterdir())
            report["variants"][variant] = entry
    if measure_text:
        report["quality"] = measure(model, out_dir, variants, measure_text)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def measure(
    model: GradTTS,
    out_dir: str | os.PathLike,
    variants: tuple[str, ...],
    text: str,
    steps: int = 10,
    temperature: float = 1.5,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Mel error of each precision against the Keras model on the same noise, and speed.

    Quantised weights can move a predicted duration by a frame, and then the two mels
    are not comparable frame by frame; the precision's decoder is therefore also run
    alone on the Keras model's alignment (``decoder_mel_*``).

    Returns:
        ``{variant: {mel_max_abs, mel_mean_abs, mel_rel (max abs / max |ref|) or, when
        the durations differ, length_mismatch [frames, Keras frames]; decoder_mel_max_abs,
        decoder_mel_mean_abs, decoder_mel_rel; load_s, synth_s (text -> mel, best of 2),
        audio_s, rtf_mel}}``.
    """
    results = {}
    for variant in variants:
        tts = TFLiteSynthesizer(Path(out_dir) / variant)
        ids = tts.text_to_ids(text)
        x, x_lengths = ids[None], np.array([len(ids)], np.int32)  # [1, T_x], [1]
        aligned = {k: v.numpy() for k, v in model.align(x, x_lengths).items() if k != "attn"}
        enc = tts.encode(ids)
        frames = max(enc["mu_y"].shape[1], aligned["mu_y"].shape[1])
        noise = standard_normal(seed, (1, frames, tts.n_feats))  # covers both alignments
        ref = model.synthesise(x, x_lengths, n_timesteps=steps, temperature=temperature,
                               noise=noise)
        ref_mel = ref["model_outputs"].numpy()[0, : int(ref["mel_lengths"][0])]
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            mel = tts.decode(tts.encode(ids), steps, temperature, noise=noise)
            best = min(best, time.perf_counter() - start)
        entry: dict[str, Any] = {}
        if mel.shape == ref_mel.shape:
            entry.update(_errors("mel", mel, ref_mel))
        else:
            entry["length_mismatch"] = [mel.shape[0], ref_mel.shape[0]]
        entry.update(_errors("decoder_mel", tts.decode(aligned, steps, temperature, noise=noise),
                             ref_mel))
        audio_s = mel.shape[0] * tts.audio["hop_length"] / tts.sample_rate
        entry.update(load_s=tts.load_seconds, synth_s=best, audio_s=audio_s,
                     rtf_mel=best / audio_s)
        results[variant] = entry
    return results


def _errors(prefix: str, mel: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    err = np.abs(mel - ref)
    return {f"{prefix}_max_abs": float(err.max()), f"{prefix}_mean_abs": float(err.mean()),
            f"{prefix}_rel": float(err.max() / np.abs(ref).max())}


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # TensorFlow is loaded: its Python loggers only
    parser = argparse.ArgumentParser(
        prog="python -m export.tflite", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--checkpoint", required=True,
                        help="run folder (config.yaml + weights) or installed voice (demo)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--vocoder", default=None, help="HiFi-GAN checkpoint folder (optional)")
    parser.add_argument("--int8", action="store_true", help="also a dynamic-range int8 variant")
    parser.add_argument(
        "--measure", nargs="?", const=MEASURE_TEXT, default=None, metavar="TEXT",
        help="compare every precision with the Keras model on TEXT (same noise)",
    )
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    variants = DEFAULT_VARIANTS + (("int8",) if args.int8 else ())
    report = export_tflite(
        args.checkpoint, args.out, vocoder=args.vocoder, variants=variants,
        measure_text=args.measure,
    )
    for variant, entry in report["variants"].items():
        sizes = ", ".join(
            f"{g} {e['bytes'] / 1e6:.2f} MB (load {e['load_seconds'] * 1e3:.0f} ms)"
            for g, e in entry["graphs"].items()
        )
        print(f"{variant}: {sizes}")
    for variant, q in report.get("quality", {}).items():
        print(f"{variant} vs Keras: {q}")
    print(f"report: {Path(args.out) / 'report.json'}")


if __name__ == "__main__":
    main()
