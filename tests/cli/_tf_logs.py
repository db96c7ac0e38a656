"""Recognises TensorFlow's own log lines in a program's output (used by the CLI tests)."""

from __future__ import annotations

import os
import re

# TensorFlow's C++ logs: ``2026-01-01 12:00:00.000000: I path.cc:12] ...`` (its own
# format) and ``W0000 00:00:1700000000.000000   123 path.cc:12] ...`` (absl's); the
# Python side: ``WARNING:tensorflow:...`` / ``WARNING:absl:...``.
_FORMATS = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):(?:tensorflow|absl):)"
)
# Start-up messages that can also come without a prefix (continuation lines).
_MARKERS = (
    "cuDNN", "cuFFT", "cuBLAS", "cuda drivers", "TF-TRT", "oneDNN custom operations",
    "cpu_feature_guard", "rebuild TensorFlow with the appropriate compiler flags",
    "absl::InitializeLog",
)


def tf_log_lines(output: str) -> list[str]:
    """The lines of ``output`` that TensorFlow's logging wrote."""
    return [
        line for line in output.splitlines()
        if _FORMATS.match(line) or any(marker in line for marker in _MARKERS)
    ]


def env_without_tf_log_level() -> dict[str, str]:
    """This process's environment without ``TF_CPP_MIN_LOG_LEVEL``: TensorFlow's default
    (log everything) unless the program under test silences it."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
