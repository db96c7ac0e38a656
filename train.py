"""Train Grad-TTS: ``python train.py --config configs/demo.yaml --data DATA --out RUN``."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train Grad-TTS with model.fit.")
    parser.add_argument("--config", required=True, help="YAML config (e.g. configs/demo.yaml)")
    parser.add_argument("--data", required=True, help="LJSpeech folder or Grad-TTS filelist")
    parser.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=8 (repeatable)",
    )
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--steps-per-epoch", type=int, help="batches per epoch")
    parser.add_argument(
        "--no-jit", action="store_true",
        help="turn XLA off (same as --set train.jit_compile=off; default: XLA on GPUs only)",
    )
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        parser.error("--steps-per-epoch must be >= 1")

    from gradtts_tf.config import ConfigError, load_config
    from gradtts_tf.training import train

    try:
        config = load_config(args.config, args.set)
    except ConfigError as e:
        parser.error(str(e))
    train(
        config, args.data, args.out, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        jit_compile=False if args.no_jit else None,
    )


if __name__ == "__main__":
    main()
