"""Command-line arguments shared by the programs.

No TensorFlow here: ``export/run_tflite.py`` (numpy + LiteRT only) uses it too.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gradtts_tf.solvers import SOLVER_HELP, SOLVERS


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--solver``, ``--steps``, ``--temperature`` and ``--length-scale``.

    Each defaults to ``None``: the voice's own setting (``inference`` in a run's
    ``config.yaml``, ``sampling`` in an export's ``model_info.json``; the official
    10 / 1.5 / 1.0 where the voice sets none). Check them with `check_sampling_arguments`.
    """
    parser.add_argument("--solver", choices=SOLVERS, default=None,
                        help=f"{SOLVER_HELP} (default: the voice's; euler if it sets none)")
    parser.add_argument("--steps", type=int, default=None,
                        help="reverse-diffusion steps (default: the voice's; 10 if it sets none)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="noise divisor of the start sample (default: the voice's; 1.5)")
    parser.add_argument("--length-scale", type=float, default=None,
                        help="> 1 speaks slower (default: the voice's; 1.0)")


def check_sampling_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits through ``parser.error`` unless steps >= 1 and temperature, length scale > 0."""
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    for name, value in (("--temperature", args.temperature),
                        ("--length-scale", args.length_scale)):
        if value is not None and not value > 0:  # also rejects NaN
            parser.error(f"{name} must be > 0, got {value}")


def add_run_arguments(parser: argparse.ArgumentParser, example_set: str,
                      config_required: bool = True) -> None:
    """Adds a trainer's ``--config``, ``--data``, ``--out``, ``--set``, ``--epochs`` and
    ``--steps-per-epoch`` (check them with `check_run_arguments`)."""
    parser.add_argument("--config", required=config_required,
                        help="YAML config: a file or a packaged name (e.g. demo)")
    parser.add_argument("--data", required=True, help="LJSpeech folder or Grad-TTS filelist")
    parser.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help=f"override a config value, e.g. --set {example_set} (repeatable)",
    )
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--steps-per-epoch", type=int, help="steps per fit epoch")


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits through ``parser.error`` unless ``--epochs`` and ``--steps-per-epoch`` are >= 1."""
    for flag, value in (("--epochs", args.epochs), ("--steps-per-epoch", args.steps_per_epoch)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1")


def load_config_or_exit(parser: argparse.ArgumentParser, path, overrides: list[str]):
    """`gradtts_tf.config.load_config`, with a bad file or override as ``parser.error``."""
    from gradtts_tf.config import ConfigError, load_config

    try:
        return load_config(path, overrides)
    except ConfigError as e:
        parser.error(str(e))


class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (so captured output sees it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def show_data_report() -> None:
    """Prints the data pipeline's report (logger ``gradtts_tf.data``) on standard output.

    The library logs what it found and skipped; a program shows it once, as messages
    of its own (counts, then one line per skipped utterance). Calling it again adds
    nothing.
    """
    log = logging.getLogger("gradtts_tf.data")
    if not any(isinstance(h, _CurrentStdout) for h in log.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
