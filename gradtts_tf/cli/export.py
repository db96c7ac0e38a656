"""``gradtts-export``: one command for every export target.

    gradtts-export savedmodel --checkpoint demo --out exported/savedmodel
    gradtts-export tflite --checkpoint demo --out exported/tflite [--int8]
    gradtts-export tfjs --checkpoint demo --out exported/tfjs --quantize float16
    gradtts-export run-tflite --model-dir exported/tflite/float32 --text "Hi." --out hi.wav
    gradtts-export serve-web --model-dir exported/tfjs

Each target takes the options of its module (``gradtts-export TARGET --help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gradtts_tf.cli.quiet import VERBOSE_FLAG, VERBOSE_HELP, quiet_tensorflow

TARGETS = {
    "savedmodel": ("gradtts_tf.export.savedmodel", "SavedModel graphs (encoder, decoder step)"),
    "tflite": ("gradtts_tf.export.tflite", "TFLite graphs in float32 / float16 / int8"),
    "tfjs": ("gradtts_tf.export.tfjs", "TensorFlow.js graphs and the page's front-end data"),
    "run-tflite": ("gradtts_tf.export.run_tflite", "speak with an exported TFLite folder"),
    "serve-web": ("gradtts_tf.export.web", "serve the browser demo for a TF.js export"),
}


def main(argv: list[str] | None = None) -> None:
    """Dispatches ``TARGET [options]`` to the target's own command line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_tensorflow(argv)  # before a target imports TensorFlow
    parser = argparse.ArgumentParser(
        prog="gradtts-export",
        description="Export a Grad-TTS voice (or run an export).",
        epilog="targets: " + "; ".join(f"{k}: {v[1]}" for k, v in TARGETS.items()),
    )
    parser.add_argument("target", choices=sorted(TARGETS), help="what to export or run")
    # Accepted before the target too; the target's own parser takes it.
    parser.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
    if argv and argv[0] == VERBOSE_FLAG:
        argv = [*argv[1:2], VERBOSE_FLAG, *argv[2:]]
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        raise SystemExit(0 if argv else 2)
    args = parser.parse_args(argv[:1])
    module = importlib.import_module(TARGETS[args.target][0])
    sys.argv[0] = f"gradtts-export {args.target}"
    module.main(argv[1:])


if __name__ == "__main__":
    main()
