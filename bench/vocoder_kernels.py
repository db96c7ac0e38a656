"""HiFi-GAN V1 on CPU: TensorFlow (oneDNN) vs LiteRT (XNNPACK), whole graph and per layer.

The profile behind BENCHMARKS.md's TFLite vocoder figures. One random HiFi-GAN V1
generator (`VocoderConfig` defaults, plain kernels as after ``fold_weight_norm``) and one
random mel of ``--frames`` frames:

* whole graph: the Keras generator frozen as `gradtts_tf.vocoder.HiFiGANVocoder` runs
  it, against the ``vocoder`` graph of ``python -m export.tflite`` in float32 and in
  dynamic-range int8 (int8 weights; LiteRT's XNNPACK then quantises activations per
  call and multiplies in int8), run by ``export/run_tflite.py``'s `Graph`; the
  differences of the outputs (float32 TFLite vs Keras; int8 vs float32 as an SNR);
* per layer: every distinct convolution of the generator (input length, channels,
  kernel, dilation, stride) alone, as the generator calls it (``[1, 1, T, C]``
  input), in TensorFlow with its weights frozen in and in LiteRT float32 / int8; the
  ``count`` column says how often the shape occurs, the sums weight by it;
* LiteRT's CPU options (its `CompiledModel` API) on the largest resblock layer:
  XNNPACK's "force FP16" flag and YNNPACK, whether this build has them and how fast.

Usage::

    python -m bench.vocoder_kernels --json bench/results/vocoder_kernels.json
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    add_common_args,
    apply_framework_threads,
    configure_threads,
    format_table,
    machine_info,
    measure,
    print_header,
    write_json,
)

XNNPACK_FLAG_FORCE_FP16 = 0x4  # TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16


def conv_shapes(gen: Any, frames: int) -> list[tuple[Any, int]]:
    """Every convolution of ``gen`` with the length of the input it is called on."""
    layers = [(gen.conv_pre, frames)]
    length = frames
    for i, up in enumerate(gen.ups):
        layers.append((up, length))
        length *= gen.upsample_rates[i]
        for block in gen.resblocks[i * gen.num_kernels : (i + 1) * gen.num_kernels]:
            layers += [(conv, length) for conv in block.conv_layers()]
    return [*layers, (gen.conv_post, length)]


def layer_key(layer: Any, length: int) -> tuple:
    kind = "up" if hasattr(layer, "strides") and layer.strides > 1 else "conv"
    return (kind, length, layer.in_channels, layer.filters, layer.kernel_size,
            getattr(layer, "dilation_rate", 1), getattr(layer, "strides", 1))


def _flatbuffer(fn: Any, spec: Any, int8: bool) -> bytes:
    """A frozen function of one input as a TFLite flatbuffer (builtin ops)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(spec))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def _invoker(flatbuffer: bytes, x: Any, threads: int):
    """A LiteRT interpreter holding ``x`` as its input; returns its ``invoke``."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flatbuffer, num_threads=threads)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    return it.invoke


def snr_db(reference, other) -> float:
    """10 log10(power of ``reference`` / power of the difference)."""
    import numpy as np

    noise = float(np.mean((np.asarray(other) - reference) ** 2))
    return float(10 * math.log10(float(np.mean(np.square(reference))) / max(noise, 1e-30)))


def whole_graph(gen: Any, mel: Any, args: argparse.Namespace) -> tuple[list, dict]:
    import keras
    import numpy as np
    import tensorflow as tf

    from gradtts_tf.config import AudioConfig
    from gradtts_tf.export.run_tflite import Graph
    from gradtts_tf.export.savedmodel import SIGNATURE, vocoder_function
    from gradtts_tf.export.tflite import convert_savedmodel
    from gradtts_tf.vocoder import HiFiGANVocoder

    rows, outputs = [], {}
    keras_voc = HiFiGANVocoder(gen, sample_rate=AudioConfig().sample_rate, n_mels=mel.shape[-1])
    outputs["keras"] = keras_voc(mel)[0]
    stats = measure(lambda: keras_voc(mel), args.warmup, args.reps, "keras (frozen)")
    rows.append({"graph": "vocoder", "runtime": "keras", **_ms(stats)})
    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(gen)
        archive.add_endpoint(
            SIGNATURE, vocoder_function(gen),
            input_signature=[tf.TensorSpec([1, None, mel.shape[-1]], tf.float32)],
        )
        archive.write_out(tmp, verbose=False)
        for variant in ("float32", "int8"):
            path = Path(tmp) / f"vocoder_{variant}.tflite"
            path.write_bytes(convert_savedmodel(tmp, variant))
            graph = Graph(path, args.threads)
            name = next(iter(graph.inputs))
            outputs[variant] = graph(**{name: mel})["audio"][0]
            stats = measure(lambda g=graph, n=name: g(**{n: mel}), args.warmup, args.reps,
                            f"tflite {variant}")
            rows.append({"graph": "vocoder", "runtime": f"tflite-{variant}", **_ms(stats)})
    keras_ms = rows[0]["median_ms"]
    for r in rows:
        r["vs_keras"] = r["median_ms"] / keras_ms
    quality = {
        "tflite_float32_vs_keras_max_abs": float(
            np.abs(outputs["float32"] - outputs["keras"]).max()
        ),
        "tflite_int8_vs_float32_snr_db": snr_db(outputs["float32"], outputs["int8"]),
        "audio_rms": float(np.sqrt(np.mean(np.square(outputs["float32"])))),
    }
    return rows, quality


def per_layer(gen: Any, frames: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import tensorflow as tf

    from gradtts_tf.runtime import freeze

    groups: dict[tuple, list] = {}
    for layer, length in conv_shapes(gen, frames):
        groups.setdefault(layer_key(layer, length), []).append(layer)
    rng = np.random.default_rng(args.seed)
    rows = []
    for key, layers in groups.items():
        kind, length, c_in, c_out, k, d, s = key
        layer = layers[0]
        spec = tf.TensorSpec([1, 1, length, c_in], tf.float32)
        x = rng.standard_normal((1, 1, length, c_in)).astype(np.float32)
        label = f"{kind} T={length} {c_in}->{c_out} k={k} d={d} s={s}"
        row = {"layer": label, "count": len(layers)}
        # The layer's own time, as inside the graph: the input already in the runtime,
        # the output left there (a [1, 1, 69888, 32] copy alone costs milliseconds).
        run_tf, x_tf = freeze(lambda t, lay=layer: lay(t), [spec]), tf.constant(x)
        stats = measure(lambda f=run_tf, t=x_tf: f(t), args.warmup, args.reps, f"{label} tf")
        row["tf_ms"] = stats["median_s"] * 1e3
        for variant in ("float32", "int8"):
            flatbuffer = _flatbuffer(lambda t, lay=layer: lay(t), spec, variant == "int8")
            stats = measure(_invoker(flatbuffer, x, args.threads), args.warmup, args.reps,
                            f"{label} {variant}")
            row[f"tflite_{variant}_ms"] = stats["median_s"] * 1e3
        out_len = length * s
        gflop = 2.0 * out_len * c_in * c_out * k / s / 1e9  # polyphase: k / s taps per phase
        row["gflop"] = gflop
        row["tf_gflops"] = gflop / row["tf_ms"] * 1e3
        row["tflite_float32_gflops"] = gflop / row["tflite_float32_ms"] * 1e3
        row["float32_vs_tf"] = row["tflite_float32_ms"] / row["tf_ms"]
        row["int8_vs_tf"] = row["tflite_int8_ms"] / row["tf_ms"]
        rows.append(row)
    return rows


def litert_options(gen: Any, frames: int, args: argparse.Namespace) -> dict[str, Any]:
    """XNNPACK force-FP16 and YNNPACK through `CompiledModel` on the costliest layer."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.options import CpuOptions, Options

    layer, length = max(
        conv_shapes(gen, frames),
        key=lambda p: p[1] * p[0].in_channels * p[0].filters * p[0].kernel_size,
    )
    spec = tf.TensorSpec([1, 1, length, layer.in_channels], tf.float32)
    flatbuffer = _flatbuffer(lambda t: layer(t), spec, int8=False)
    x = np.random.default_rng(args.seed).standard_normal(spec.shape).astype(np.float32)
    reference = None
    out: dict[str, Any] = {"layer": "x".join(map(str, spec.shape)) + f" k={layer.kernel_size}"}
    for name, cpu in (
        ("xnnpack-float32", CpuOptions(num_threads=args.threads)),
        ("xnnpack-force-fp16", CpuOptions(num_threads=args.threads,
                                          xnnpack_flags=XNNPACK_FLAG_FORCE_FP16)),
        ("ynnpack", CpuOptions(num_threads=args.threads, enable_ynnpack=True)),
    ):
        try:
            model = CompiledModel.from_buffer(flatbuffer, options=Options(cpu_options=cpu))
        except RuntimeError as err:  # e.g. "YNNPACK support was not compiled into this build"
            out[name] = {"available": False, "error": str(err).splitlines()[0]}
            print(f"  {name}: not available ({out[name]['error']})", flush=True)
            continue
        inputs, outputs = model.create_input_buffers(0), model.create_output_buffers(0)
        inputs[0].write(x)
        stats = measure(lambda m=model, i=inputs, o=outputs: m.run_by_index(0, i, o),
                        args.warmup, args.reps, name)
        y = outputs[0].read(int(np.prod(spec.shape[:-1])) * layer.filters, np.float32)
        reference = y if reference is None else reference
        out[name] = {
            "available": True, "median_ms": stats["median_s"] * 1e3,
            "max_abs_vs_float32": float(np.abs(y - reference).max()),
            "max_abs_output": float(np.abs(reference).max()),
        }
    return out


def _ms(stats: dict[str, Any]) -> dict[str, float]:
    return {"median_ms": stats["median_s"] * 1e3, "q1_ms": stats["q1_s"] * 1e3,
            "q3_ms": stats["q3_s"] * 1e3}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=273,
                        help="mel frames (default 273: the synthesis benchmark's sentence)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-layers", action="store_true", help="whole graph only")
    add_common_args(parser, reps=7, warmup=2)
    args = parser.parse_args(argv)
    if args.frames < 1 or args.reps < 1:
        parser.error("--frames and --reps must be >= 1")
    configure_threads(args.threads)
    import keras
    import numpy as np
    import tensorflow as tf

    apply_framework_threads(args.threads, tf=tf)
    info = machine_info(args.threads)
    print_header("HiFi-GAN V1: TensorFlow (oneDNN) vs LiteRT (XNNPACK)", info)

    from gradtts_tf.config import VocoderConfig
    from gradtts_tf.layers.hifigan import HiFiGANGenerator

    keras.utils.set_random_seed(args.seed)
    gen = HiFiGANGenerator.from_vocoder_config(VocoderConfig(), weight_norm=False)
    # A log-mel-like input (values around -5), as a vocoder sees.
    mel = (np.random.default_rng(args.seed).standard_normal((1, args.frames, 80)) - 5.0)
    mel = mel.astype(np.float32)

    start = time.perf_counter()
    graph_rows, quality = whole_graph(gen, mel, args)
    print()
    print(format_table(graph_rows, ("graph", "runtime", "median_ms", "q1_ms", "q3_ms",
                                    "vs_keras")))
    print(f"outputs: {quality}")
    layer_rows, options = [], {}
    if not args.skip_layers:
        layer_rows = per_layer(gen, args.frames, args)
        totals = {
            "layer": "sum (x count)", "count": sum(r["count"] for r in layer_rows),
            "gflop": sum(r["gflop"] * r["count"] for r in layer_rows),
        }
        for col in ("tf_ms", "tflite_float32_ms", "tflite_int8_ms"):
            totals[col] = sum(r[col] * r["count"] for r in layer_rows)
        totals["float32_vs_tf"] = totals["tflite_float32_ms"] / totals["tf_ms"]
        totals["int8_vs_tf"] = totals["tflite_int8_ms"] / totals["tf_ms"]
        layer_rows.append(totals)
        print()
        print(format_table(layer_rows, (
            "layer", "count", "gflop", "tf_ms", "tflite_float32_ms", "tflite_int8_ms",
            "tf_gflops", "tflite_float32_gflops", "float32_vs_tf", "int8_vs_tf",
        )))
        print()
        options = litert_options(gen, args.frames, args)
        print(f"LiteRT CPU options on the costliest layer: {options}")
    print(f"({time.perf_counter() - start:.0f} s)")
    write_json(args.json, {
        "benchmark": "vocoder_kernels",
        "machine": info,
        "settings": {"frames": args.frames, "seed": args.seed, "reps": args.reps,
                     "warmup": args.warmup, "generator": "HiFi-GAN V1 (VocoderConfig())"},
        "results": {"whole_graph": graph_rows, "quality": quality, "layers": layer_rows,
                    "litert_options": options},
    })


if __name__ == "__main__":
    main()
