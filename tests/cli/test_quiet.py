"""Every program prints its own messages only: TensorFlow's log messages stay out of its
output unless ``--verbose`` (`gradtts_tf.cli.quiet`).

Every program is a subprocess here, with ``TF_CPP_MIN_LOG_LEVEL`` removed from its
environment (TensorFlow's default: log everything). The console scripts come from
``pyproject.toml``, so a new one is checked as soon as it is declared.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gradtts_tf.cli import quiet
from gradtts_tf.cli.export import TARGETS
from tests.cli._tf_logs import env_without_tf_log_level, tf_log_lines

ROOT = Path(__file__).resolve().parents[2]


def _console_script(name: str, target: str) -> list[str]:
    """What the installed ``name`` script runs (``module:function``), without installing."""
    module, function = target.split(":")
    code = (f"import sys; from {module} import {function}; sys.argv[0] = {name!r}; "
            f"sys.exit({function}())")
    return [sys.executable, "-c", code]


def _programs() -> dict[str, list[str]]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    programs = {name: _console_script(name, target) for name, target in scripts.items()}
    export = _console_script("gradtts-export", scripts["gradtts-export"])
    programs.update({f"gradtts-export {target}": [*export, target] for target in TARGETS})
    for script in ("train.py", "inference.py", "evaluate.py", "export/run_tflite.py"):
        programs[script] = [sys.executable, script]
    for module in ("tflite", "savedmodel", "tfjs", "run_tflite"):
        programs[f"python -m export.{module}"] = [sys.executable, "-m", f"export.{module}"]
    return programs


PROGRAMS = _programs()


def _run(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PROGRAMS[name], *args], cwd=ROOT, env=env_without_tf_log_level(),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.fixture(scope="module")
def help_runs() -> dict[str, subprocess.CompletedProcess]:
    """Every program's ``--help``, run side by side (each is a separate process)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = dict(zip(PROGRAMS, pool.map(lambda name: _run(name, "--help"), PROGRAMS),
                        strict=True))
    return runs


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_help_shows_usage_and_verbose_but_no_tensorflow_logs(name, help_runs):
    proc = help_runs[name]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^usage: ", proc.stdout, re.MULTILINE), proc.stdout[:500]
    assert "--verbose" in proc.stdout
    logs = tf_log_lines(proc.stdout + proc.stderr)
    assert not logs, "\n".join(logs)


def test_verbose_lets_tensorflow_logs_through():
    # export.tflite imports TensorFlow at its top, so even --help loads it.
    proc = _run("python -m export.tflite", "--verbose", "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tf_log_lines(proc.stderr), proc.stderr[-3000:]


@pytest.mark.parametrize("verbose", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_real_run_prints_its_own_messages_only(tmp_path, verbose):
    args = ["--checkpoint", "demo", "--text", "Hi.", "--out", str(tmp_path), "--steps", "2",
            "--seed", "0", "--no-progress"]
    proc = _run("inference.py", *args, *(["--verbose"] if verbose else []))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote" in proc.stdout and (tmp_path / "0001.wav").is_file()
    logs = tf_log_lines(proc.stdout + proc.stderr)
    if verbose:
        assert logs, proc.stderr[-3000:]
    else:
        assert not logs, "\n".join(logs)


@pytest.mark.slow
def test_a_training_run_prints_its_own_messages_only(demo_corpus, tmp_path):
    # Training compiles the alignment search with XLA, which logs through absl's C++
    # logging (not TF_CPP_MIN_LOG_LEVEL): `start_xla_quietly` takes care of it.
    proc = _run("train.py", "--config", "demo", "--data", str(demo_corpus), "--out",
                str(tmp_path / "run"), "--epochs", "1", "--steps-per-epoch", "2",
                "--set", "data.n_val=2", "--set", "train.batch_size=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = tf_log_lines(proc.stdout + proc.stderr)
    assert not logs, "\n".join(logs)


# ------------------------------------------------------------------ the mechanism itself


@pytest.fixture
def fresh(monkeypatch):
    """`quiet` as in a new process; its logger filters removed afterwards."""
    monkeypatch.delenv(quiet.ENV, raising=False)
    monkeypatch.setattr(quiet, "_set_env", None)
    loggers = [logging.getLogger(name) for name in quiet.PYTHON_LOGGERS]
    had_filter = [quiet._FILTER in logger.filters for logger in loggers]
    for logger in loggers:
        logger.removeFilter(quiet._FILTER)
    yield
    for logger, had in zip(loggers, had_filter, strict=True):
        (logger.addFilter if had else logger.removeFilter)(quiet._FILTER)


def _errors_only(name: str) -> bool:
    logger = logging.getLogger(name)
    make = logger.makeRecord
    warning = make(name, logging.WARNING, __file__, 0, "w", (), None)
    error = make(name, logging.ERROR, __file__, 0, "e", (), None)
    return not logger.filter(warning) and bool(logger.filter(error))


def test_quiet_then_verbose_undoes_it(fresh):
    assert quiet.quiet_tensorflow(["--text", "Hi."]) is True
    assert os.environ[quiet.ENV] == "3"
    assert all(_errors_only(name) for name in quiet.PYTHON_LOGGERS)
    assert quiet.quiet_tensorflow(["--text", "Hi."]) is True  # a second call: same state
    assert quiet.quiet_tensorflow(verbose=True) is False
    assert quiet.ENV not in os.environ
    assert not any(_errors_only(name) for name in quiet.PYTHON_LOGGERS)


def test_the_users_log_level_stands(fresh, monkeypatch):
    monkeypatch.setenv(quiet.ENV, "1")
    quiet.quiet_tensorflow([])
    assert os.environ[quiet.ENV] == "1"
    quiet.quiet_tensorflow(verbose=True)
    assert os.environ[quiet.ENV] == "1"


def test_verbose_in_the_arguments(fresh):
    assert quiet.wants_verbose(["--text", "Hi.", "--verbose"])
    assert not quiet.wants_verbose(["--text", "--", "--verbose"])
    assert quiet.quiet_tensorflow(["--verbose"]) is False
    assert quiet.ENV not in os.environ


def test_the_flag_undoes_quiet_also_when_abbreviated(fresh):
    quiet.quiet_tensorflow(["--verb"])  # not recognised here...
    assert os.environ[quiet.ENV] == "3"
    parser = argparse.ArgumentParser()
    quiet.add_verbose_argument(parser)
    assert parser.parse_args([]).verbose is False
    assert parser.parse_args(["--verb"]).verbose is True  # ...but by argparse
    assert quiet.ENV not in os.environ


NATIVE = (b"W0000 00:00:1700000000.000000   12 tf_tfl_flatbuffer_helpers.cc:390] Ignored.\n"
          b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")


def test_native_log_lines_are_dropped_while_quiet(fresh, capfd):
    quiet.quiet_tensorflow([])
    with pytest.raises(RuntimeError), quiet.native_logs_filtered():
        os.write(2, NATIVE + b"the program's own message\n")
        raise RuntimeError
    assert capfd.readouterr().err == "the program's own message\n"
    quiet.quiet_tensorflow(verbose=True)
    with quiet.native_logs_filtered():
        os.write(2, NATIVE)
    assert capfd.readouterr().err == NATIVE.decode()
