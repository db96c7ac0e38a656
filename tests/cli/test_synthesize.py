"""inference.py end to end on the converted official small model (Griffin-Lim)."""

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import REF

import inference
from gradtts_tf.config import load_config
from gradtts_tf.convert import main as convert_main
from gradtts_tf.model import GradTTS
from gradtts_tf.text import text_to_ids

ENV_FPMATH = "ONEDNN_DEFAULT_FPMATH_MODE"

LINES = [
    "First line here. And a second one!",
    "",
    "?!",
    "Second line.",
    "word " * 60,
    "Last, but not least, a line with commas that is long enough to be split.",
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    convert_main([
        "--checkpoint", str(REF / "gradtts_small_state_dict.npz"),
        "--params", str(REF / "gradtts_small_config.json"), "--out", str(out),
    ])
    return out


def _hifigan_folder(out):
    """The official small HiFi-GAN V1 test generator as a checkpoint folder."""
    from gradtts_tf.convert.hifigan import hifigan_from_official

    out.mkdir()
    generator = hifigan_from_official(REF / "hifigan_v1_small_state_dict.npz",
                                      REF / "hifigan_v1_small_config.json")
    generator.save_weights(out / "generator.weights.h5")
    shutil.copy(REF / "hifigan_v1_small_config.json", out / "config.json")
    return out


def _predicted_frames(ckpt, text):
    """Mel frames the model predicts for one piece (durations only, no diffusion)."""
    model = GradTTS.from_config_tree(load_config(ckpt / "config.yaml"))
    model.load_weights(ckpt / "model.weights.h5")
    ids = text_to_ids(text)
    return int(model.align(np.array([ids]), [len(ids)])["y_lengths"][0])


def test_inference_cli_writes_wavs_and_skips_bad_lines(ckpt, tmp_path, capsys):
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(LINES) + "\n")
    common = ["--checkpoint", str(ckpt), "--steps", "2", "--batch-size", "2",
              "--max-tokens", "100", "--sentence-pause", "0.1", "--save-mel", "--no-progress"]
    inference.main([*common, "--file", str(lines), "--out", str(tmp_path / "wavs"),
                    "--seed", "0", "--plot"])
    out = capsys.readouterr().out
    wavs = tmp_path / "wavs"
    assert sorted(p.name for p in wavs.glob("*.wav")) == ["0001.wav", "0004.wav", "0006.wav"]

    # Skipped lines are named with their reason; the rest went on.
    assert "line 2: skipped: empty line" in out
    assert "line 3: skipped:" in out and "no letters or phonemes" in out
    assert "line 5: skipped:" in out and "over the limit of 100" in out
    assert "line 1: wrote" in out and "2 sentences" in out
    # Real-time factor of every stage and overall.
    for stage in ("encoder + alignment", "decoder", "vocoder", "overall"):
        assert any(row.startswith(stage) and "RTF" in row for row in out.splitlines()), stage

    for name in ("0001", "0004", "0006"):
        audio, sr = sf.read(wavs / f"{name}.wav", dtype="float32")
        mel = np.load(wavs / f"{name}.npy")
        assert sr == 22050 and audio.ndim == 1
        assert mel.shape[1] == 80 and len(audio) == mel.shape[0] * 256
        assert np.all(np.isfinite(audio)) and np.sqrt(np.mean(audio**2)) > 0.01
        assert (wavs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Lengths follow the predicted durations: one piece, and two pieces + 9 pause frames.
    assert np.load(wavs / "0004.npy").shape[0] == _predicted_frames(ckpt, "Second line.")
    pause = round(0.1 * 22050 / 256)
    expected = sum(_predicted_frames(ckpt, s) for s in ("First line here.", "And a second one!"))
    assert np.load(wavs / "0001.npy").shape[0] == expected + pause
    # Line 6 (over 100 tokens) was split at its commas.
    assert len(text_to_ids(LINES[5])) > 100 and "line 6: wrote" in out and "sentences)" in out

    # Line n uses seed + n - 1: line 4 alone with --seed 3 gives the same mel (here
    # vocoded by the official small HiFi-GAN test generator).
    inference.main([*common, "--text", LINES[3], "--out", str(tmp_path / "alone"),
                    "--seed", "3", "--vocoder", str(_hifigan_folder(tmp_path / "hifigan"))])
    assert "vocoder hifigan:" in capsys.readouterr().out
    alone, batched = np.load(tmp_path / "alone" / "0001.npy"), np.load(wavs / "0004.npy")
    assert np.max(np.abs(alone - batched)) / np.max(np.abs(alone)) < 1e-4
    audio, sr = sf.read(tmp_path / "alone" / "0001.wav", dtype="float32")
    assert sr == 22050 and len(audio) == alone.shape[0] * 256
    assert np.all(np.isfinite(audio)) and np.sqrt(np.mean(audio**2)) > 1e-4


@pytest.mark.slow  # ~21 s on 2 cores
def test_inference_cli_cpu_math_bfloat16_runs_the_unet_in_bfloat16(ckpt, tmp_path, monkeypatch):
    # --cpu-math bfloat16 sets ONEDNN_DEFAULT_FPMATH_MODE in os.environ, which every later
    # subprocess of this pytest run would inherit. setenv (not delenv, which records
    # nothing when the variable is unset) makes monkeypatch restore it afterwards; STRICT
    # is the float32 mode, what an unset variable means.
    monkeypatch.setenv(ENV_FPMATH, "STRICT")
    common = ["--checkpoint", str(ckpt), "--text", LINES[3], "--steps", "3", "--seed", "1",
              "--save-mel", "--no-progress"]
    inference.main([*common, "--out", str(tmp_path / "f32")])
    assert os.environ[ENV_FPMATH] == "STRICT"
    with warnings.catch_warnings():
        # oneDNN's math mode is fixed once TensorFlow ran (this process): only the
        # bfloat16 U-Net applies here, and set_cpu_math warns about the rest.
        warnings.simplefilter("ignore", RuntimeWarning)
        inference.main([*common, "--out", str(tmp_path / "bf16"), "--cpu-math", "bfloat16"])
    assert os.environ[ENV_FPMATH] == "BF16"  # what monkeypatch undoes
    exact, fast = (np.load(tmp_path / d / "0001.npy") for d in ("f32", "bf16"))
    assert exact.shape == fast.shape
    err = np.abs(exact - fast)
    assert 0 < err.mean() < 0.01 * np.abs(exact).mean()


def test_inference_cli_solver(ckpt, tmp_path, capsys):
    """--solver reaches the decoder: the mel is the Synthesizer's with that solver."""
    from gradtts_tf.synthesizer import Synthesizer

    common = ["--checkpoint", str(ckpt), "--text", LINES[3], "--steps", "3", "--seed", "1",
              "--save-mel", "--no-progress"]
    inference.main([*common, "--out", str(tmp_path / "dpm"), "--solver", "dpmpp-2m"])
    assert "3 reverse-diffusion steps (dpmpp-2m)" in capsys.readouterr().out
    (utt,), _ = Synthesizer.from_pretrained(ckpt).synthesize(
        [LINES[3]], steps=3, seed=1, solver="dpmpp-2m"
    )
    np.testing.assert_allclose(np.load(tmp_path / "dpm" / "0001.npy"), utt.mel, atol=1e-5)
    inference.main([*common, "--out", str(tmp_path / "sde"), "--stochastic"])
    assert "(euler-sde)" in capsys.readouterr().out


def _cli_error(capsys, argv) -> str:
    """Runs inference.main expecting an argparse error: exit code 2, message on stderr."""
    with pytest.raises(SystemExit) as exc:
        inference.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    return err


def test_inference_cli_rejects_bad_input(ckpt, tmp_path, capsys):
    err = _cli_error(capsys, ["--checkpoint", str(tmp_path), "--text", "Hi.",
                              "--out", str(tmp_path / "out")])
    assert "config.yaml not found" in err
    err = _cli_error(capsys, ["--checkpoint", str(ckpt), "--text", "Hi.", "--speaker", "2",
                              "--out", str(tmp_path / "out")])
    assert "one speaker" in err
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    err = _cli_error(capsys, ["--checkpoint", str(ckpt), "--file", str(bad),
                              "--out", str(tmp_path / "out")])
    assert f"cannot read --file {bad}" in err
    # Each message names the argument and the rule it broke.
    for args, message in (
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size and --max-tokens must be >= 1"),
        (["--max-tokens", "0"], "--batch-size and --max-tokens must be >= 1"),
        (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
        (["--length-scale", "-1"], "--length-scale must be > 0, got -1.0"),
        (["--sentence-pause", "-0.5"], "--sentence-pause must be >= 0"),
        (["--solver", "heun"], "argument --solver: invalid choice: 'heun'"),
        (["--stochastic", "--solver", "dpmpp-2m"], "--stochastic is --solver euler-sde"),
    ):
        err = _cli_error(capsys, ["--checkpoint", str(ckpt), "--text", "Hi.",
                                  "--out", str(tmp_path / "out"), *args])
        assert f"error: {message}" in err, args
    assert not (tmp_path / "out").exists()  # nothing was synthesised
