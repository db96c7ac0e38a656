"""Train (or fine-tune) HiFi-GAN: ``gradtts-train-vocoder --config hifigan_demo --data DATA
--out RUN``; ``--make-fine-tune-mels GRADTTS_RUN`` writes the fine-tuning inputs instead.

Rerunning the same command on the same ``--out`` folder resumes from its newest
checkpoint; Ctrl-C saves a checkpoint and exits (status 130).
"""

from __future__ import annotations

import argparse
import math
import sys

from gradtts_tf.cli import (
    add_run_arguments,
    check_run_arguments,
    load_config_or_exit,
    show_data_report,
)
from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow, start_xla_quietly
from gradtts_tf.solvers import SOLVER_HELP, SOLVERS


def main(argv: list[str] | None = None) -> None:
    """CLI: train (or fine-tune) HiFi-GAN; ``--make-fine-tune-mels`` writes FT inputs."""
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    parser = argparse.ArgumentParser(
        description="Train a HiFi-GAN vocoder with model.fit (resumes an existing --out).",
    )
    add_run_arguments(parser, "vocoder.batch_size=8", config_required=False)
    parser.add_argument("--fine-tune-mels", help="folder of {uid}.npy generator-input mels")
    parser.add_argument("--init", help="vocoder checkpoint folder to start the generator from")
    parser.add_argument(
        "--make-fine-tune-mels", metavar="GRADTTS_RUN",
        help="instead of training: write Grad-TTS mels aligned to --data into --out",
    )
    parser.add_argument("--steps", "--n-timesteps", type=int, default=None,
                        help="reverse steps for --make-fine-tune-mels (default: the voice's)")
    parser.add_argument("--solver", choices=SOLVERS, default=None,
                        help=f"{SOLVER_HELP}, for --make-fine-tune-mels (default: the voice's)")
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    show_data_report()
    check_run_arguments(parser, args)

    if args.make_fine_tune_mels:
        from gradtts_tf.training.vocoder import make_fine_tune_mels

        start_xla_quietly()  # the alignment search compiles with XLA
        n = make_fine_tune_mels(args.make_fine_tune_mels, args.data, args.out,
                                steps=args.steps, solver=args.solver)
        print(f"wrote {n} mels to {args.out}")
        return
    if not args.config:
        parser.error("--config is required for training")

    config = load_config_or_exit(parser, args.config, args.set)
    if math.prod(config.vocoder.upsample_rates) != config.audio.hop_length:
        parser.error(
            f"prod(vocoder.upsample_rates)={math.prod(config.vocoder.upsample_rates)} must "
            f"equal audio.hop_length={config.audio.hop_length}"
        )
    from gradtts_tf.training.checkpoints import RunError
    from gradtts_tf.training.vocoder import train_vocoder

    try:
        history = train_vocoder(
            config, args.data, args.out, epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch, fine_tune_mels=args.fine_tune_mels,
            init_from=args.init,
        )
    except (RunError, FileNotFoundError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if history.interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
