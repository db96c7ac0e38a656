"""Grad-TTS inference split into SavedModels with explicit signatures, for edge runtimes.

``python -m export.savedmodel --checkpoint RUN --out DIR`` writes, from a run folder
holding ``config.yaml`` and ``model.weights.h5``::

    DIR/encoder/        text ids -> aligned prior mu_y, mel mask, mel length
    DIR/decoder_step/   one reverse-diffusion solver step (any solver)
    DIR/vocoder/        mel -> waveform (only when a neural vocoder is given)
    DIR/model_info.json audio/text settings, tensor specs, vocoder description
    DIR/inv_mel_basis.f32  Griffin-Lim mel -> linear matrix (raw float32)

Each SavedModel has one signature, ``serving_default``, with named inputs and outputs
and ``None`` time dimensions (batch is 1). No graph contains a random op: the caller
draws the starting noise, so every runtime gives the same result for the same noise.
The host runs the diffusion loop, so the solver and the number of steps are chosen at
run time: it feeds each step the time and coefficients of `gradtts_tf.solvers.solver_plan`
and carries the data prediction ``x0`` to the next step. The tensors are documented in
``export/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradtts_tf.audio import inverse_mel_basis
from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow
from gradtts_tf.config import Config
from gradtts_tf.model import GradTTS, load_checkpoint
from gradtts_tf.solvers import N_COEFS, SOLVERS
from gradtts_tf.text import BLANK_ID, N_VOCAB, symbols

logger = logging.getLogger(__name__)

ENCODER = "encoder"
DECODER_STEP = "decoder_step"
VOCODER = "vocoder"
GRAPHS = (ENCODER, DECODER_STEP, VOCODER)
SIGNATURE = "serving_default"
MANIFEST = "model_info.json"
INV_MEL_FILE = "inv_mel_basis.f32"
FORMAT_VERSION = 2
# The U-Net halves the time axis twice: mel lengths are padded to a multiple of this.
LENGTH_MULTIPLE = 4

# (name, shape, dtype) of every graph's inputs and outputs; strings are dynamic sizes.
Spec = tuple[str, list[int | str], str]


def graph_specs(n_feats: int, multi_speaker: bool) -> dict[str, dict[str, list[Spec]]]:
    """Inputs and outputs of the exported graphs (batch is always 1).

    Args:
        n_feats: Mel channels.
        multi_speaker: Adds the ``spk`` input (speaker id) to encoder and decoder step.

    Returns:
        ``{graph: {"inputs": [(name, shape, dtype)], "outputs": [...]}}``; a string in
        a shape is a dynamic size (``T_x`` tokens, ``T_y`` mel frames, a multiple of 4,
        ``S`` samples).
    """
    spk: list[Spec] = [("spk", [1], "int32")] if multi_speaker else []
    return {
        ENCODER: {
            "inputs": [
                ("x", [1, "T_x"], "int32"),
                ("x_lengths", [1], "int32"),
                ("length_scale", [], "float32"),
                *spk,
            ],
            "outputs": [
                ("mu_y", [1, "T_y", n_feats], "float32"),
                ("y_mask", [1, "T_y", 1], "float32"),
                ("y_lengths", [1], "int32"),
            ],
        },
        DECODER_STEP: {
            "inputs": [
                ("xt", [1, "T_y", n_feats], "float32"),
                ("mask", [1, "T_y", 1], "float32"),
                ("mu", [1, "T_y", n_feats], "float32"),
                ("t", [1], "float32"),
                ("coef", [N_COEFS], "float32"),
                ("x0_prev", [1, "T_y", n_feats], "float32"),
                ("noise", [1, "T_y", n_feats], "float32"),
                *spk,
            ],
            "outputs": [
                ("xt_next", [1, "T_y", n_feats], "float32"),
                ("x0", [1, "T_y", n_feats], "float32"),
            ],
        },
        VOCODER: {
            "inputs": [("mel", [1, "T", n_feats], "float32")],
            "outputs": [("audio", [1, "S"], "float32")],
        },
    }


def _tensor_specs(specs: list[Spec]) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec([d if isinstance(d, int) else None for d in shape], dtype, name=name)
        for name, shape, dtype in specs
    ]


def encoder_function(model: GradTTS) -> Callable[..., dict[str, tf.Tensor]]:
    """The ``encoder`` graph: `GradTTS.align` without the attention output.

    Args:
        model: The acoustic model.

    Returns:
        ``fn(x, x_lengths, length_scale[, spk]) -> {mu_y, y_mask, y_lengths}``.
    """

    def encoder(x, x_lengths, length_scale, spk=None):
        out = model.align(x, x_lengths, length_scale=length_scale, spk=spk)
        return {"mu_y": out["mu_y"], "y_mask": out["y_mask"], "y_lengths": out["y_lengths"]}

    return encoder


def decoder_step_function(model: GradTTS) -> Callable[..., dict[str, tf.Tensor]]:
    """The ``decoder_step`` graph: one `Diffusion.solver_step` (any solver's step).

    Args:
        model: The acoustic model.

    Returns:
        ``fn(xt, mask, mu, t, coef, x0_prev, noise[, spk]) -> {xt_next, x0}``.
    """

    def decoder_step(xt, mask, mu, t, coef, x0_prev, noise, spk=None):
        spk_emb = model._speaker(spk)
        x_next, x0 = model.decoder.solver_step(
            xt, mask, mu, t, coef, x0_prev, noise, spk_emb=spk_emb
        )
        return {"xt_next": x_next, "x0": x0}

    return decoder_step


def vocoder_function(vocoder: Callable) -> Callable[..., dict[str, tf.Tensor]]:
    """The ``vocoder`` graph around a Keras vocoder mapping ``[1, T, n_mels]`` to audio.

    Args:
        vocoder: Layer or model; its output is flattened to ``[1, samples]``.

    Returns:
        ``fn(mel) -> {audio}``.
    """

    def vocode(mel):
        audio = tf.cast(vocoder(mel, training=False), "float32")
        return {"audio": tf.reshape(audio, [1, -1])}  # [1, S]

    return vocode


def _archive(tracked: list, fn: Callable, specs: list[Spec]) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    for obj in tracked:
        archive.track(obj)
    # Positional wrapper: tf.function signatures cover every argument, the optional
    # speaker included, so the exported signature has exactly the listed inputs.
    archive.add_endpoint(SIGNATURE, lambda *args: fn(*args), input_signature=_tensor_specs(specs))
    return archive


def build_archives(model: GradTTS, vocoder=None) -> dict[str, keras.export.ExportArchive]:
    """One `keras.export.ExportArchive` per graph, each with a ``serving_default`` endpoint.

    Args:
        model: The acoustic model (weights loaded).
        vocoder: Optional Keras vocoder (``[1, T, n_mels]`` mel -> audio).

    Returns:
        ``{"encoder": ..., "decoder_step": ...[, "vocoder": ...]}``.
    """
    specs = graph_specs(model.n_feats, model.n_spks > 1)
    speaker = [model.spk_emb] if model.n_spks > 1 else []
    archives = {
        ENCODER: _archive(
            [model.encoder, *speaker], encoder_function(model), specs[ENCODER]["inputs"]
        ),
        DECODER_STEP: _archive(
            [model.decoder, *speaker], decoder_step_function(model),
            specs[DECODER_STEP]["inputs"],
        ),
    }
    if vocoder is not None:
        archives[VOCODER] = _archive([vocoder], vocoder_function(vocoder), specs[VOCODER]["inputs"])
    return archives


def manifest(config: Config, model: GradTTS, vocoder_kind: str) -> dict[str, Any]:
    """Everything an app needs besides the graphs: settings, tensor specs, symbols.

    Args:
        config: The run's config (audio and text settings).
        model: The acoustic model.
        vocoder_kind: ``"graph"`` (a ``vocoder`` graph exists) or ``"griffin_lim"``.

    Returns:
        A JSON-serialisable dict (written as ``model_info.json``).
    """
    a = config.audio
    specs = graph_specs(model.n_feats, model.n_spks > 1)
    graphs = [ENCODER, DECODER_STEP] + ([VOCODER] if vocoder_kind == "graph" else [])
    # Griffin-Lim is always described: an app may skip the vocoder graph to save space.
    vocoder = {
        "type": vocoder_kind,
        "griffin_lim": {
            # The voice's settings (its config's `griffin_lim`): every host port runs them.
            **dataclasses.asdict(config.griffin_lim),
            "inv_mel_basis": {
                "file": INV_MEL_FILE, "shape": [a.n_mels, a.n_fft // 2 + 1],
                "dtype": "float32", "byte_order": "little",
            },
        },
    }
    return {
        "format_version": FORMAT_VERSION,
        "graphs": {
            g: {
                "signature": SIGNATURE,
                **{
                    side: [{"name": n, "shape": s, "dtype": d} for n, s, d in specs[g][side]]
                    for side in ("inputs", "outputs")
                },
            }
            for g in graphs
        },
        "audio": {
            "sample_rate": a.sample_rate, "n_fft": a.n_fft, "hop_length": a.hop_length,
            "win_length": a.win_length, "n_mels": a.n_mels, "f_min": a.f_min, "f_max": a.f_max,
        },
        "text": {
            "add_blank": config.text.add_blank, "n_vocab": N_VOCAB, "blank_id": BLANK_ID,
            "symbols": list(symbols),
        },
        "model": {
            "n_feats": model.n_feats, "n_spks": model.n_spks, "beta_min": model.beta_min,
            "beta_max": model.beta_max, "length_multiple": LENGTH_MULTIPLE,
        },
        # What the host loop may run over decoder_step (gradtts_tf.solvers).
        "solvers": list(SOLVERS),
        # The voice's synthesis defaults (config ``inference``), used by the runners.
        "sampling": dataclasses.asdict(config.inference),
        "vocoder": vocoder,
    }


def write_assets(out_dir: str | os.PathLike, info: dict[str, Any], config: Config) -> None:
    """Writes ``model_info.json`` and Griffin-Lim's inverse mel basis."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
    a = config.audio
    inv = inverse_mel_basis(a.sample_rate, a.n_fft, a.n_mels, a.f_min, a.f_max)
    np.ascontiguousarray(inv, "<f4").tofile(out_dir / INV_MEL_FILE)  # [n_mels, bins]


def resolve_vocoder(vocoder: Any, config: Config):
    """The Keras layer to export as the ``vocoder`` graph, or ``None`` for Griffin-Lim.

    Args:
        vocoder: ``None`` or ``"griffin-lim"`` (Griffin-Lim on the host), a HiFi-GAN
            checkpoint folder (see `gradtts_tf.vocoder.load_vocoder`), a
            `gradtts_tf.vocoder.HiFiGANVocoder` or a Keras layer mapping
            ``[1, T, n_mels]`` to audio.
        config: The acoustic model's config (its audio settings are checked).

    Returns:
        A Keras layer or ``None``.
    """
    from gradtts_tf.vocoder import GriffinLimVocoder, HiFiGANVocoder, load_vocoder

    if vocoder is None:
        return None
    if isinstance(vocoder, str | os.PathLike):
        vocoder = load_vocoder(vocoder, config.audio, config.griffin_lim)
    if isinstance(vocoder, GriffinLimVocoder):
        return None
    if isinstance(vocoder, HiFiGANVocoder):
        return vocoder.generator
    if isinstance(vocoder, keras.layers.Layer):
        return vocoder
    raise TypeError(f"cannot export vocoder {vocoder!r}: expected a Keras layer or a folder")


def export_savedmodels(
    checkpoint: str | os.PathLike | GradTTS,
    out_dir: str | os.PathLike,
    config: Config | None = None,
    vocoder: Any = None,
) -> dict[str, Path]:
    """Exports the encoder, decoder-step (and vocoder) SavedModels plus the assets.

    Args:
        checkpoint: A run folder (``config.yaml`` + ``model.weights.h5``) or a `GradTTS`.
        out_dir: Output folder (created).
        config: The run's config; required with a `GradTTS`, read from the run folder
            otherwise.
        vocoder: ``None`` / ``"griffin-lim"`` (Griffin-Lim on the host, no graph), a
            HiFi-GAN checkpoint folder, or a vocoder object (see `resolve_vocoder`).

    Returns:
        ``{graph name: SavedModel folder}``.
    """
    if isinstance(checkpoint, GradTTS):
        model, config = checkpoint, config or Config()
    else:
        model, run_config = load_checkpoint(checkpoint)
        config = config or run_config
    vocoder = resolve_vocoder(vocoder, config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, archive in build_archives(model, vocoder).items():
        paths[name] = out_dir / name
        archive.write_out(os.fspath(paths[name]), verbose=False)
    write_assets(out_dir, manifest(config, model, "graph" if vocoder else "griffin_lim"), config)
    return paths


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # TensorFlow is loaded: its Python loggers only
    parser = argparse.ArgumentParser(
        prog="python -m export.savedmodel", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--checkpoint", required=True,
                        help="run folder (config.yaml + weights) or installed voice (demo)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--vocoder", default=None,
        help="HiFi-GAN checkpoint folder to export as the vocoder graph (default: none, "
        "Griffin-Lim runs on the host)",
    )
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = export_savedmodels(args.checkpoint, args.out, vocoder=args.vocoder)
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"exported in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
