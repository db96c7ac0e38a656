"""Train Grad-TTS: ``python train.py --config configs/demo.yaml --data DATA --out RUN``.

Rerunning the same command on the same ``--out`` folder resumes from its newest
checkpoint. Ctrl-C saves a checkpoint and exits (status 130), at the latest
``EXIT_DEADLINE`` seconds after the checkpoint is on disk.
"""

from __future__ import annotations

import argparse
import sys

from gradtts_tf.cli import (
    add_run_arguments,
    check_run_arguments,
    load_config_or_exit,
    show_data_report,
)
from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow

# After a Ctrl-C, seconds from the checkpoint on disk to the process's end at the latest
# (normally a few: interpreter shutdown tears TensorFlow down); see
# gradtts_tf.training.exit_deadline.arm_exit_deadline.
EXIT_DEADLINE = 30.0


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    from gradtts_tf.runtime import CPU_MATH

    parser = argparse.ArgumentParser(description="Train Grad-TTS with model.fit.")
    add_run_arguments(parser, "train.batch_size=8")
    parser.add_argument(
        "--warm-start", metavar="CKPT",
        help="initialise a new run from a run folder, checkpoint or .weights.h5 (e.g. a "
             "converted official checkpoint)",
    )
    parser.add_argument(
        "--ignore-layers", metavar="REGEX",
        help="with --warm-start: weights whose path matches are not loaded "
             "(e.g. 'encoder/emb' for a new symbol set, 'spk_emb' for new speakers)",
    )
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                        help="tf.distribute strategy (train.strategy)")
    parser.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                        help="train.precision")
    parser.add_argument("--cpu-math", choices=CPU_MATH,
                        help="train.cpu_math: precision of convolutions and matmuls on "
                             "x86 CPUs (bfloat16: faster on AMX CPUs)")
    parser.add_argument("--png-logs", action="store_true",
                        help="also write the logged images (and audio) to RUN/images/")
    xla = parser.add_mutually_exclusive_group()
    xla.add_argument("--no-jit", action="store_true",
                     help="turn XLA off (train.jit_compile=off; default: XLA on GPUs only)")
    xla.add_argument("--jit", action="store_true", help="turn XLA on (train.jit_compile=on)")
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    show_data_report()
    check_run_arguments(parser, args)
    if args.ignore_layers and not args.warm_start:
        parser.error("--ignore-layers needs --warm-start")

    overrides = list(args.set)
    if args.strategy:
        overrides.append(f"train.strategy={args.strategy}")
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    if args.cpu_math:
        overrides.append(f"train.cpu_math={args.cpu_math}")
    if args.png_logs:
        overrides.append("train.png_logs=true")
    if args.no_jit:
        overrides.append("train.jit_compile='off'")
    if args.jit:
        overrides.append("train.jit_compile='on'")
    config = load_config_or_exit(parser, args.config, overrides)

    from gradtts_tf.training import RunError, train
    from gradtts_tf.training.callbacks import TrainingDiverged

    try:
        history = train(
            config, args.data, args.out, epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch, warm_start_from=args.warm_start,
            ignore_layers=args.ignore_layers, exit_deadline=EXIT_DEADLINE,
        )
    except (RunError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        print(f"train.py: training stopped: {e}", file=sys.stderr)
        sys.exit(1)
    if history.interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
