"""Grad-TTS for TensorFlow.js: the exported SavedModels as TF.js graph models plus the
tables the JavaScript text front end needs.

``python -m export.tfjs --checkpoint RUN --out DIR [--quantize float16] [--vocoder HIFIGAN]``
exports the SavedModels of `export.savedmodel` and converts each graph with the
``tensorflowjs_converter`` of tensorflowjs 4.22 (``--input_format=tf_saved_model
--output_format=tfjs_graph_model``)::

    DIR/encoder/model.json + group1-shard*.bin       text ids -> mu_y, y_mask, y_lengths
    DIR/decoder_step/model.json + ...                one reverse-diffusion step
    DIR/vocoder/model.json + ...                     HiFi-GAN (only with --vocoder)
    DIR/model_info.json     settings and tensor specs (export/README.md) + a "tfjs" entry
    DIR/inv_mel_basis.f32   Griffin-Lim's mel -> linear matrix for the JS vocoder
    DIR/frontend/frontend.json   symbol table, ids and abbreviations of the Python front end
    DIR/frontend/cmudict.json    word -> first valid ARPAbet pronunciation
    DIR/frontend/unidecode.json  code point -> ASCII (Python ``unidecode``), by 256-block
    DIR/report.json         sizes and conversion time

The browser demo in ``export/web`` loads such a folder (``make web MODEL=DIR``).

tensorflowjs pins ``packaging~=23.1`` (pytest 9 needs ``>=24``) and pulls jax, flax,
tf-keras and TensorFlow Decision Forests, so it lives in its own virtual environment,
``.venv-tfjs`` (``make tfjs-deps``), and is run as a subprocess. Its Python is found
in ``$GRADTTS_TFJS_PYTHON``, then ``.venv-tfjs/bin/python``, then the current
interpreter if it has tensorflowjs; failing those, a ``tensorflowjs_converter`` on
``PATH`` is run once per graph.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow

# `make tfjs-deps` puts the converter in .venv-tfjs at the checkout's root (when the
# package runs from a checkout), else look in the working directory.
CHECKOUT = Path(__file__).resolve().parents[2]
TFJS_VENV = CHECKOUT / ".venv-tfjs" if (CHECKOUT / "Makefile").is_file() else Path(".venv-tfjs")
TFJS_VERSION = "4.22.0"
QUANTIZATIONS = ("float16", "uint8", "uint16")
FRONTEND_DIR = "frontend"
FRONTEND_FILES = ("frontend.json", "cmudict.json", "unidecode.json")
REPORT = "report.json"
# Code points that unidecode maps (Basic Multilingual Plane and the supplementary
# planes it has tables for); ASCII passes through unchanged and is not stored.
_UNIDECODE_RANGE = range(0x80, 0xF0000)

# Runs the converter's own entry point (what the tensorflowjs_converter script calls)
# for several graphs in one process, so TensorFlow is imported once, not per graph.
_CONVERT_SCRIPT = """
import json, sys
from tensorflowjs.converters.converter import convert
for argv in json.loads(sys.argv[1]):
    convert(argv)
"""


class ConverterNotFoundError(RuntimeError):
    """tensorflowjs is not installed where `export.tfjs` looks for it."""


def converter_command() -> tuple[list[str], bool]:
    """How to run the TF.js converter.

    Returns:
        ``(command prefix, batched)``: with ``batched`` the prefix is a Python that
        converts a JSON list of argument lists in one process (see `_CONVERT_SCRIPT`);
        otherwise it is the ``tensorflowjs_converter`` script, run once per graph.

    Raises:
        ConverterNotFoundError: With the command that installs the converter.
    """
    candidates = [os.environ.get("GRADTTS_TFJS_PYTHON"), os.fspath(TFJS_VENV / "bin" / "python")]
    for python in candidates:
        if python and Path(python).is_file():
            return [python, "-c", _CONVERT_SCRIPT], True
    try:
        import tensorflowjs  # noqa: F401  (only probing whether it is installed here)

        return [sys.executable, "-c", _CONVERT_SCRIPT], True
    except ImportError:
        pass
    binary = shutil.which("tensorflowjs_converter")
    if binary:
        return [binary], False
    raise ConverterNotFoundError(
        f"tensorflowjs {TFJS_VERSION} not found: run `make tfjs-deps` (creates {TFJS_VENV}), "
        "or set GRADTTS_TFJS_PYTHON to a Python that has tensorflowjs installed"
    )


def converter_args(
    saved_model_dir: str | os.PathLike, out_dir: str | os.PathLike, quantize: str | None = None
) -> list[str]:
    """``tensorflowjs_converter`` arguments for one SavedModel (``serving_default``).

    Args:
        saved_model_dir: SavedModel folder.
        out_dir: Output folder of the graph model.
        quantize: ``None`` (float32 weights), ``"float16"``, ``"uint8"`` or ``"uint16"``
            (weights stored quantised, dequantised to float32 when loaded).

    Returns:
        The argument list (without the program name).
    """
    args = [
        "--input_format=tf_saved_model",
        "--output_format=tfjs_graph_model",
        "--signature_name=serving_default",
        "--saved_model_tags=serve",
    ]
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be one of {QUANTIZATIONS} or None, got {quantize!r}")
        args.append(f"--quantize_{quantize}=*")
    return [*args, os.fspath(saved_model_dir), os.fspath(out_dir)]


def convert_graphs(
    jobs: list[tuple[Path, Path]], quantize: str | None = None, timeout: float = 900.0
) -> None:
    """Converts SavedModels to TF.js graph models.

    Args:
        jobs: ``(saved_model_dir, out_dir)`` pairs.
        quantize: Weight quantisation, see `converter_args`.
        timeout: Seconds for the whole conversion.

    Raises:
        ConverterNotFoundError: If tensorflowjs is not installed.
        RuntimeError: If the converter fails (its output is in the message).
    """
    prefix, batched = converter_command()
    argvs = [converter_args(src, dst, quantize) for src, dst in jobs]
    commands = [[*prefix, json.dumps(argvs)]] if batched else [[*prefix, *a] for a in argvs]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    for command in commands:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"tensorflowjs_converter failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
    for src, dst in jobs:
        path = dst / "model.json"
        model = json.loads(path.read_text())
        normalise_signature(model, signature_output_names(src))
        unfuse_tensor_bias(model)
        path.write_text(json.dumps(model, separators=(",", ":")))


def signature_output_names(saved_model_dir: str | os.PathLike) -> dict[str, str]:
    """The output names of a SavedModel's ``serving_default`` by graph tensor name.

    Args:
        saved_model_dir: SavedModel folder.

    Returns:
        ``{"Identity_1": "xt_next", ...}``: the tensor each output of the signature's
        function is (as the converter sees it) -> the output's name.
    """
    import tensorflow as tf

    fn = tf.saved_model.load(os.fspath(saved_model_dir)).signatures["serving_default"]
    specs = tf.nest.flatten(fn.structured_outputs)  # the order of fn.outputs
    return {t.name.split(":")[0]: spec.name for spec, t in zip(specs, fn.outputs, strict=True)}


def normalise_signature(
    model: dict[str, Any], output_names: dict[str, str] | None = None
) -> None:
    """Keys the graph model's signature by the SavedModel's input and output names.

    The converter keys some inputs by tensor name (``"xt:0"``) and others by input
    name (``"mask"``); TF.js accepts either, but apps read the keys, so all become
    input names. It names an output after the SavedModel's only when no other output
    has its dtype and shape: ``decoder_step``'s ``xt_next`` and ``x0`` come out as
    ``"Identity"`` and ``"Identity_1"``, renamed here with ``output_names``.

    Args:
        model: Parsed ``model.json`` of a converted graph (changed in place).
        output_names: `signature_output_names` of the SavedModel it was converted from.
    """
    signature = model.get("signature", {})
    for side in ("inputs", "outputs"):
        entries = signature.get(side, {})
        signature[side] = {key.split(":")[0]: value for key, value in entries.items()}
    if output_names:
        signature["outputs"] = {
            output_names.get(key, key): value for key, value in signature["outputs"].items()
        }


_FUSED_BASE_OP = {"_FusedConv2D": "Conv2D", "_FusedMatMul": "MatMul",
                  "_FusedDepthwiseConv2dNative": "DepthwiseConv2dNative"}
_FUSED_ONLY_ATTRS = ("fused_ops", "num_args", "num_host_args", "epsilon", "leakyrelu_alpha",
                     "TArgs", "filter_format")
_ACTIVATIONS = {"Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "LeakyRelu"}


def unfuse_tensor_bias(model: dict[str, Any]) -> int:
    """Splits fused convolutions whose "bias" is a whole tensor into conv + add.

    Grappler's remapper folds a residual ``conv(x) + skip`` (the U-Net's attention
    blocks) into ``_FusedConv2D`` with ``skip`` as its BiasAdd operand. TF.js' CPU and
    WebGL kernels broadcast it, but the WASM backend accepts only a rank-1 bias
    ("FusedConv2D only supports rank-1 bias"). Rewriting those nodes as the plain op
    followed by ``AddV2`` (and the fused activation, if any) computes the same thing
    on every backend.

    Args:
        model: Parsed ``model.json`` (changed in place).

    Returns:
        Number of nodes split.
    """
    weights = {
        w["name"]: w["shape"] for group in model["weightsManifest"] for w in group["weights"]
    }
    nodes = model["modelTopology"]["node"]
    out: list[dict[str, Any]] = []
    split = 0
    for node in nodes:
        base = _FUSED_BASE_OP.get(node["op"])
        attr = node.get("attr", {})
        encoded = attr.get("fused_ops", {}).get("list", {}).get("s", [])
        fused = [base64.b64decode(s).decode() for s in encoded]
        inputs = node.get("input", [])
        bias = inputs[2] if len(inputs) > 2 else None
        vector_bias = bias is not None and len(weights.get(bias.split(":")[0], [0, 0])) == 1
        if (
            base is None or not fused or fused[0] != "BiasAdd" or vector_bias
            or not set(fused[1:]) <= _ACTIVATIONS or len(fused) > 2
        ):
            out.append(node)
            continue
        name = node["name"]
        conv_name = f"{name}/unfused_{base}"
        add_name = name if len(fused) == 1 else f"{name}/unfused_add"
        dtype = attr.get("T", {"type": "DT_FLOAT"})
        out.append({
            **node, "name": conv_name, "op": base, "input": node["input"][:2],
            "attr": {k: v for k, v in attr.items() if k not in _FUSED_ONLY_ATTRS},
        })
        out.append({"name": add_name, "op": "AddV2", "input": [conv_name, bias],
                    "attr": {"T": dtype}})
        if len(fused) == 2:
            act_attr = {"T": dtype}
            if fused[1] == "LeakyRelu":
                act_attr["alpha"] = attr.get("leakyrelu_alpha", {"f": 0.2})
            out.append({"name": name, "op": fused[1], "input": [add_name], "attr": act_attr})
        split += 1
    model["modelTopology"]["node"] = out
    return split


def frontend_tables() -> dict[str, Any]:
    """The Python front end's tables that `export/web/src/frontend.js` reads.

    Returns:
        ``frontend.json`` content: ``symbols`` (id -> symbol), ``blank_id``,
        ``space_id``, ``first_letter_id`` (ids below it are not speakable),
        ``arpabet_prefix``, ``never_keep`` (symbols never emitted) and
        ``abbreviations`` (``[regex source, expansion]`` in application order).
    """
    from gradtts_tf.text import cleaners
    from gradtts_tf.text.symbols import ARPABET, ARPABET_PREFIX, BLANK_ID, PAD, SPACE_ID, symbols

    return {
        "symbols": list(symbols),
        "n_vocab": len(symbols) + 1,
        "blank_id": BLANK_ID,
        "space_id": SPACE_ID,
        "first_letter_id": symbols.index("A"),
        "arpabet_prefix": ARPABET_PREFIX,
        "arpabet": list(ARPABET),
        "never_keep": [PAD, "~"],
        "abbreviations": [[p.pattern, full] for p, full in cleaners._ABBREVIATIONS],
        "cleaners": "english_cleaners",
    }


def unidecode_table() -> dict[str, list[str]]:
    """Python ``unidecode`` per code point, as 256-entry blocks keyed by ``hex(cp >> 8)``.

    ``unidecode`` transliterates each code point on its own, so this table makes a JS
    port exact. Blocks without any mapping are left out (their characters vanish).

    Returns:
        ``{"e9": [...256 strings], ...}``; unmapped entries are ``""``.
    """
    from unidecode import unidecode

    table: dict[str, list[str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unidecode warns about surrogates
        for cp in _UNIDECODE_RANGE:
            if 0xD800 <= cp <= 0xDFFF:
                continue
            ascii_text = unidecode(chr(cp))
            if ascii_text:
                table.setdefault(format(cp >> 8, "x"), [""] * 256)[cp & 0xFF] = ascii_text
    return table


def export_frontend(out_dir: str | os.PathLike) -> dict[str, int]:
    """Writes ``frontend.json``, ``cmudict.json`` and ``unidecode.json``.

    Args:
        out_dir: Output folder (created).

    Returns:
        ``{file name: bytes}``.
    """
    from gradtts_tf.text import load_cmudict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contents = {
        "frontend.json": frontend_tables(),
        "cmudict.json": load_cmudict(),
        "unidecode.json": unidecode_table(),
    }
    sizes = {}
    for name, data in contents.items():
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
        (out / name).write_text(text)
        sizes[name] = len(text)
    return sizes


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def export_tfjs(
    checkpoint: Any,
    out_dir: str | os.PathLike,
    config: Any = None,
    vocoder: Any = None,
    quantize: str | None = None,
    savedmodel_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Exports the TF.js graph models, the front-end tables and the assets.

    Args:
        checkpoint: A run folder (``config.yaml`` + ``model.weights.h5``) or a `GradTTS`;
            ignored when ``savedmodel_dir`` is given.
        out_dir: Output folder (created; graph folders in it are replaced).
        config: The run's config (required with a `GradTTS`, see
            `export.savedmodel.export_savedmodels`).
        vocoder: ``None`` (Griffin-Lim in JS), a HiFi-GAN folder or a Keras vocoder.
        quantize: ``None`` (float32 weights) or ``"float16"`` (half the download) /
            ``"uint8"`` / ``"uint16"``; weights are dequantised when loaded.
        savedmodel_dir: Convert this existing `export.savedmodel` folder instead of
            exporting the checkpoint again.

    Returns:
        The report written to ``report.json``: bytes per graph and file, total bytes,
        conversion seconds and the quantisation.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gradtts_savedmodel_") as tmp:
        if savedmodel_dir is None:
            from gradtts_tf.export.savedmodel import export_savedmodels

            savedmodel_dir = Path(tmp)
            export_savedmodels(checkpoint, savedmodel_dir, config=config, vocoder=vocoder)
        src = Path(savedmodel_dir)
        info = json.loads((src / "model_info.json").read_text())
        graphs = list(info["graphs"])
        jobs = []
        for graph in graphs:
            if (out / graph).exists():
                shutil.rmtree(out / graph)
            jobs.append((src / graph, out / graph))
        exported = time.perf_counter()
        convert_graphs(jobs, quantize=quantize)
        converted = time.perf_counter()
        shutil.copyfile(src / "inv_mel_basis.f32", out / "inv_mel_basis.f32")
    frontend_sizes = export_frontend(out / FRONTEND_DIR)
    info["tfjs"] = {
        "version": TFJS_VERSION,
        "quantization": quantize,
        "graphs": {g: f"{g}/model.json" for g in graphs},
        "frontend": {
            name.removesuffix(".json"): f"{FRONTEND_DIR}/{name}" for name in FRONTEND_FILES
        },
    }
    (out / "model_info.json").write_text(json.dumps(info, indent=2) + "\n")
    graph_bytes = {g: _dir_bytes(out / g) for g in graphs}
    report = {
        "quantization": quantize,
        "graphs": {
            g: {"bytes": graph_bytes[g], "weights_bytes": sum(
                f.stat().st_size for f in (out / g).glob("*.bin"))}
            for g in graphs
        },
        "frontend_bytes": frontend_sizes,
        "total_bytes": _dir_bytes(out),
        "models_bytes": sum(graph_bytes.values()),
        "savedmodel_seconds": round(exported - start, 2),
        "convert_seconds": round(converted - exported, 2),
    }
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    parser = argparse.ArgumentParser(
        prog="python -m export.tfjs", description=__doc__.split("\n\n")[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="run folder (config.yaml + model.weights.h5)")
    source.add_argument("--savedmodel", help="existing `python -m export.savedmodel` folder")
    source.add_argument(
        "--frontend-only", action="store_true", help="only write the front-end tables to OUT"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--quantize", choices=QUANTIZATIONS, default=None,
        help="store weights quantised (float16 halves the download); default float32",
    )
    parser.add_argument(
        "--vocoder", default=None,
        help="HiFi-GAN checkpoint folder to export as the vocoder graph "
        "(default: Griffin-Lim in JavaScript)",
    )
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.frontend_only:
        for name, size in export_frontend(args.out).items():
            print(f"{name}: {size / 1e3:.0f} kB")
        return
    report = export_tfjs(
        args.checkpoint, args.out, vocoder=args.vocoder, quantize=args.quantize,
        savedmodel_dir=args.savedmodel,
    )
    for graph, entry in report["graphs"].items():
        print(f"{graph}: {entry['bytes'] / 1e6:.2f} MB")
    print(
        f"total {report['total_bytes'] / 1e6:.2f} MB in {args.out} "
        f"(converted in {report['convert_seconds']:.1f} s)"
    )


if __name__ == "__main__":
    main()
