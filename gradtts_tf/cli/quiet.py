"""Keeps TensorFlow's own log messages out of the programs' output.

When TensorFlow loads, its C++ runtime logs a dozen lines that concern no user of a
program (CUDA plugins it cannot register on a machine without a GPU, the CPU feature
guard, oneDNN and TF-TRT notices, XLA start-up); its Python side logs through the
``tensorflow`` and ``absl`` loggers. The programs of this project print their own
messages only, through this module:

- `quiet_tensorflow` sets ``TF_CPP_MIN_LOG_LEVEL=3`` and lets only errors through the
  ``tensorflow`` and ``absl`` loggers. TensorFlow reads the variable once, when it
  loads, so the call must come before anything imports TensorFlow;
- unless the arguments hold ``--verbose``, or the user has set ``TF_CPP_MIN_LOG_LEVEL``
  (then their value stands; the Python loggers are still quietened unless
  ``--verbose``);
- `add_verbose_argument` adds ``--verbose`` to a program's parser; giving it undoes
  what `quiet_tensorflow` did, also when argparse recognises an abbreviation of it;
- a few native libraries log through absl's C++ logging, which ignores
  ``TF_CPP_MIN_LOG_LEVEL`` (the TFLite converter) or their own (LiteRT's "Created
  TensorFlow Lite XNNPACK delegate"): the code that calls them runs inside
  `native_logs_filtered`, which drops such lines from standard error while
  `quiet_tensorflow` has set the level; XLA announces its start the same way, once per
  process, so a program that compiles with XLA (training: monotonic alignment search)
  calls `start_xla_quietly` first.

A program's entry point (every console script of ``pyproject.toml`` and the checkout's
root scripts) does, first thing::

    from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow

    def main(argv=None):
        quiet_tensorflow(argv)  # before anything imports TensorFlow
        parser = argparse.ArgumentParser(...)
        add_verbose_argument(parser)
        args = parser.parse_args(argv)
        ...

A module that imports TensorFlow at its top and is also run as a program calls
``quiet_tensorflow()`` above that import when ``__name__ == "__main__"`` (see
``export/tflite.py``). Libraries never call it: importing `gradtts_tf` changes no
logging. This module imports neither TensorFlow nor anything that does.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence

VERBOSE_FLAG = "--verbose"
VERBOSE_HELP = "show TensorFlow's own log messages"
ENV = "TF_CPP_MIN_LOG_LEVEL"
# 3: TensorFlow's C++ logs only FATAL (its "E" lines on a CPU-only machine are noise too).
QUIET_LEVEL = "3"
PYTHON_LOGGERS = ("tensorflow", "absl")
# Lines of native log output: absl's C++ format (``W1231 23:59:59.000000  123
# file.cc:12] ...``; ``W0000 00:00:1700000000.000000 ...`` before absl is initialised)
# and its note about that, TensorFlow's own C++ format (``2026-01-01 12:00:00.000000:
# W file.cc:12] ...``), LiteRT's delegate notice.
NATIVE_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)"
)


class _ErrorsOnly(logging.Filter):
    """Passes records of level ERROR and above. A filter, not a level: TensorFlow
    resets the ``absl`` logger's level (through absl's verbosity) while saving models."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


_FILTER = _ErrorsOnly()
# What quiet_tensorflow changed, so that --verbose (or a second call) can tell its own
# setting from the user's and undo it: the env value it set.
_set_env: str | None = None


def wants_verbose(argv: Sequence[str] | None = None) -> bool:
    """Whether ``argv`` (default: ``sys.argv[1:]``) holds ``--verbose`` before any ``--``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--" in args:
        args = args[: args.index("--")]
    return VERBOSE_FLAG in args


def quiet_tensorflow(argv: Sequence[str] | None = None, *, verbose: bool | None = None) -> bool:
    """Silences TensorFlow's own log messages for this process, unless asked not to.

    Call it before anything imports TensorFlow (TensorFlow reads its C++ log level once,
    when it loads; the Python loggers can change at any time). Calling it again is
    harmless, and a later call with ``verbose=True`` undoes an earlier one (TensorFlow's
    C++ level only if TensorFlow has not loaded yet).

    Args:
        argv: The program's arguments (default ``sys.argv[1:]``), searched for
            ``--verbose``.
        verbose: Overrides the search of ``argv``.

    Returns:
        True if TensorFlow's messages are silenced (the C++ ones only if the user has
        not set ``TF_CPP_MIN_LOG_LEVEL``).
    """
    global _set_env
    if verbose is None:
        verbose = wants_verbose(argv)
    if verbose:
        if _set_env is not None and os.environ.get(ENV) == _set_env:
            del os.environ[ENV]
        _set_env = None
        for name in PYTHON_LOGGERS:
            logging.getLogger(name).removeFilter(_FILTER)
        return False
    if ENV not in os.environ:
        os.environ[ENV] = _set_env = QUIET_LEVEL
    for name in PYTHON_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)  # once: a filter is added once
    return True


def _filtering() -> bool:
    """Whether `quiet_tensorflow` has set TensorFlow's C++ level (not the user)."""
    return _set_env is not None and os.environ.get(ENV) == _set_env


@contextlib.contextmanager
def native_logs_filtered() -> Iterator[None]:
    """Drops native libraries' log lines (`NATIVE_LOG_LINE`) from standard error.

    While `quiet_tensorflow` has set ``TF_CPP_MIN_LOG_LEVEL`` (a quiet program, and not
    the user's own level), the block's writes to file descriptor 2 go to a temporary
    file, and every other line is written back to standard error when the block ends
    (also when it raises). Otherwise (``--verbose``, a library caller) it does nothing.
    """
    if not _filtering():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not NATIVE_LOG_LINE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def start_xla_quietly() -> None:
    """Compiles a trivial XLA function inside `native_logs_filtered`.

    XLA's start-up lines (its service and devices, "Compiled cluster using XLA!") come
    once per process through absl's C++ logging; compiled here first, inside the
    filter, they are dropped. Call it where running a TensorFlow op is allowed (after
    `gradtts_tf.runtime.set_cpu_math` and the distribution strategy). Does nothing,
    and imports nothing, unless `quiet_tensorflow` has set the level.
    """
    if not _filtering():
        return
    import tensorflow as tf

    with native_logs_filtered():
        tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(0.0))


class _VerboseAction(argparse.Action):
    """``--verbose``: stores True and lets TensorFlow's messages through again."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)
        quiet_tensorflow(verbose=True)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--verbose`` ("show TensorFlow's own log messages") to ``parser``.

    ``args.verbose`` is True when given; giving it also undoes `quiet_tensorflow`, for a
    program whose TensorFlow has not loaded yet when it parses its arguments.
    """
    parser.add_argument(VERBOSE_FLAG, action=_VerboseAction, help=VERBOSE_HELP)
