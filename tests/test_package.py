"""The install is the product: the wheel holds the package only, with its data, and
every console script works from a non-editable install outside the checkout, printing
its own messages only (no TensorFlow log lines)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import wave
import zipfile
from pathlib import Path

import pytest

from tests.cli._tf_logs import env_without_tf_log_level, tf_log_lines

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = (
    "gradtts-train", "gradtts-synthesize", "gradtts-infer", "gradtts-evaluate",
    "gradtts-export", "gradtts-convert", "gradtts-demo", "gradtts-demo-data",
    "gradtts-train-vocoder",
)
PACKAGE_DATA = (
    "gradtts_tf/data/sentences.txt",
    "gradtts_tf/configs/demo.yaml",
    "gradtts_tf/configs/ljspeech.yaml",
    "gradtts_tf/voices/demo/config.yaml",
    "gradtts_tf/voices/demo/model.weights.h5",
    "gradtts_tf/voices/demo/heldout.tsv",
    "gradtts_tf/export/web_dist/index.html",
    "gradtts_tf/export/web_dist/app.js",
    "gradtts_tf/export/web_dist/tfjs-backend-wasm.wasm",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of what the build reads: setuptools writes build/ and *.egg-info beside
    # the sources, which must not land in (or leak stale files into) the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "gradtts_tf", source / "gradtts_tf",
                    ignore=shutil.ignore_patterns("__pycache__", "*.map"))
    # No build isolation: the test environment has setuptools (>= 77) already.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", os.fspath(out), os.fspath(source)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("gradtts_tf-*.whl")
    return path


def test_wheel_holds_only_the_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"gradtts_tf"}, top
    for path in PACKAGE_DATA:
        assert path in names, f"{path} missing from the wheel"
    # Synthesis files only: no optimizer state, no source maps.
    assert not [n for n in names if n.endswith(".map") or (
        "checkpoint" in n.split("/")[-1] and not n.endswith(".py"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in SCRIPTS:
        assert f"{script} =" in scripts


@pytest.mark.slow
def test_console_scripts_from_a_non_editable_install(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", os.fspath(venv)], check=True)
    python = venv / "bin" / "python"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", os.fspath(python), "install", "-q",
         "--no-deps", os.fspath(wheel)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The dependencies come from this environment's site-packages, added as a plain path
    # (its .pth files, such as an editable install of this checkout, are not run).
    site = subprocess.run(
        [os.fspath(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(site, "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in env_without_tf_log_level().items() if k != "PYTHONPATH"}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=outside, env=env, capture_output=True,
                              text=True, check=False, timeout=timeout)

    where = run(os.fspath(python), "-c", "import gradtts_tf; print(gradtts_tf.__file__)")
    assert where.returncode == 0 and where.stdout.startswith(site), where
    for script in SCRIPTS:
        proc = run(os.fspath(venv / "bin" / script), "--help")
        assert proc.returncode == 0, f"{script} --help: {proc.stderr[-2000:]}"
        assert "usage:" in proc.stdout, script
        assert not tf_log_lines(proc.stdout + proc.stderr), script
    proc = run(os.fspath(venv / "bin" / "gradtts-synthesize"), "--checkpoint", "demo",
               "--text", "Hello world.", "--out", "wavs", "--steps", "2", "--seed", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not tf_log_lines(proc.stdout + proc.stderr), proc.stderr[-3000:]
    with wave.open(os.fspath(outside / "wavs" / "0001.wav")) as f:
        assert f.getframerate() == 22050 and f.getnframes() > 0.4 * 22050
