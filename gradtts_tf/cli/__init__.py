"""Command-line arguments shared by the synthesis scripts.

No TensorFlow here: ``export/run_tflite.py`` (numpy + LiteRT only) uses it too.
"""

from __future__ import annotations

import argparse
import logging
import sys


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--steps``, ``--temperature`` and ``--length-scale``.

    Each defaults to ``None``: the voice's own setting (``inference`` in a run's
    ``config.yaml``, ``sampling`` in an export's ``model_info.json``; the official
    10 / 1.5 / 1.0 where the voice sets none). Check them with `check_sampling_arguments`.
    """
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
