"""TF.js export: converted graphs, parity with Keras in node and in headless Chromium.

A tiny Grad-TTS and a tiny HiFi-GAN generator are exported once per module (SavedModel,
then ``tensorflowjs_converter`` with float32 and float16 weights). Every comparison
feeds the Keras model and TF.js the same noise; TF.js runs on its WASM backend (node and
browser). The browser test drives the bundled page in Debian's Chromium with
playwright-core and saves a screenshot.

Needs ``make tfjs-deps web-deps`` (``make test`` runs them): the converter's venv,
``export/web/node_modules`` and ``/usr/bin/chromium``. Without them the tests skip,
except under CI (``CI`` set), where they fail.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from gradtts_tf.audio import griffin_lim, inverse_mel_basis, mel_spectrogram, save_audio
from gradtts_tf.config import Config
from gradtts_tf.export.run_tflite import TFLiteSynthesizer
from gradtts_tf.export.savedmodel import export_savedmodels
from gradtts_tf.export.tfjs import (
    ConverterNotFoundError,
    converter_command,
    export_tfjs,
    unfuse_tensor_bias,
)
from gradtts_tf.export.tflite import export_tflite
from gradtts_tf.export.web import serve_in_thread
from gradtts_tf.layers.hifigan import HiFiGANGenerator
from gradtts_tf.model import GradTTS
from gradtts_tf.synthesizer import Synthesizer
from gradtts_tf.text import text_to_ids
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "export" / "web"
NODE = shutil.which("node")
CHROMIUM = "/usr/bin/chromium"
TEXT = "Hello, world."
STEPS = 6
TEMPERATURE = 1.5
RATE = 1.25  # the page's speaking rate; length_scale = 1 / rate
# Measured (WASM backend vs TF CPU, float32): mel 3e-6, HiFi-GAN audio 5e-6 relative.
MEL_TOL = 1e-4
AUDIO_TOL = 1e-4
# float16 weights: measured ~2e-3 (mel) relative; the bound leaves room for other seeds.
MEL_TOL_F16 = 2e-2
# Griffin-Lim, float64 JS vs float32 TF, 32 momentum iterations: measured 1.1e-2 RMS.
GL_RMS_TOL = 5e-2


def _require_node_modules() -> None:
    require(NODE is not None, "node not found: run `make web-deps`")
    require((WEB / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").is_dir(),
            "export/web/node_modules missing: run `make web-deps`")


def _rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-8))


def _node(script: str, request: dict, tmp: Path, timeout: float = 180) -> str:
    path = tmp / f"{Path(script).stem}_request.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run(
        [NODE, os.fspath(WEB / "tests" / script), os.fspath(path)],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=WEB,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Tiny model, vocoder, noise and the float32 / float16 TF.js exports."""
    try:
        converter_command()
    except ConverterNotFoundError as err:
        require(False, str(err))
    keras.utils.set_random_seed(5)
    model = GradTTS(
        n_vocab=149, n_enc_channels=32, filter_channels=64, filter_channels_dp=32,
        n_enc_layers=1, dec_dim=8, out_size=16, seed=3,
    )
    vocoder = HiFiGANGenerator(
        n_mels=80, upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
        upsample_initial_channel=32, resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),), weight_norm=False,
    )
    vocoder.build((None, None, 80))
    root = tmp_path_factory.mktemp("tfjs")
    export_savedmodels(model, root / "savedmodel", config=Config(), vocoder=vocoder)
    reports = {
        name: export_tfjs(None, root / name, savedmodel_dir=root / "savedmodel", quantize=q)
        for name, q in (("float32", None), ("float16", "float16"))
    }
    noise = np.random.default_rng(0).standard_normal((1, 600, 80)).astype(np.float32)
    noise.tofile(root / "noise.f32")
    ids = np.array(text_to_ids(TEXT), np.int32)
    out = model.synthesise(
        ids[None], np.array([len(ids)], np.int32), n_timesteps=STEPS,
        temperature=TEMPERATURE, length_scale=1 / RATE, noise=noise,
    )
    mel = out["model_outputs"].numpy()[0, : int(out["mel_lengths"][0])]  # [T, 80]
    audio = np.clip(np.asarray(vocoder(mel[None])).reshape(-1), -1.0, 1.0)
    return SimpleNamespace(
        model=model, vocoder=vocoder, root=root, reports=reports, ids=ids.tolist(),
        mel=mel, audio=audio,
    )


def test_graph_models_and_report(exported):
    out = exported.root / "float32"
    info = json.loads((out / "model_info.json").read_text())
    assert info["tfjs"]["graphs"] == {g: f"{g}/model.json" for g in
                                      ("encoder", "decoder_step", "vocoder")}
    signatures = {
        g: json.loads((out / g / "model.json").read_text())["signature"]
        for g in info["tfjs"]["graphs"]
    }
    assert set(signatures["encoder"]["inputs"]) == {"x", "x_lengths", "length_scale"}
    assert set(signatures["encoder"]["outputs"]) == {"mu_y", "y_mask", "y_lengths"}
    assert set(signatures["decoder_step"]["inputs"]) == {
        "xt", "mask", "mu", "t", "coef", "x0_prev", "noise"
    }
    assert set(signatures["decoder_step"]["outputs"]) == {"xt_next", "x0"}
    assert set(signatures["vocoder"]["outputs"]) == {"audio"}
    for name, report in exported.reports.items():
        sizes = {g: f"{e['bytes'] / 1e3:.0f} kB" for g, e in report["graphs"].items()}
        print(f"{name}: graphs {sizes}, total with front end {report['total_bytes'] / 1e6:.2f} MB,"
              f" converted in {report['convert_seconds']:.1f} s")
    f32 = exported.reports["float32"]["graphs"]["decoder_step"]["weights_bytes"]
    f16 = exported.reports["float16"]["graphs"]["decoder_step"]["weights_bytes"]
    assert 0.45 < f16 / f32 < 0.55


def test_no_fused_tensor_bias_left(exported):
    """The WASM backend rejects _FusedConv2D with a non-vector bias; the export splits them."""
    model = json.loads((exported.root / "float32" / "decoder_step" / "model.json").read_text())
    assert unfuse_tensor_bias(model) == 0
    ops = [n["op"] for n in model["modelTopology"]["node"]]
    assert "Conv2D" in ops and "AddV2" in ops


def test_unfuse_tensor_bias_rewrites_node():
    attr = {"fused_ops": {"list": {"s": ["Qmlhc0FkZA==", "UmVsdQ=="]}},  # BiasAdd, Relu
            "T": {"type": "DT_FLOAT"}, "strides": {"list": {"i": ["1", "1", "1", "1"]}},
            "num_args": {"i": "1"}}
    model = {
        "weightsManifest": [{"weights": [{"name": "w", "shape": [1, 1, 2, 2]},
                                         {"name": "b", "shape": [2]}]}],
        "modelTopology": {"node": [
            {"name": "c1", "op": "_FusedConv2D", "input": ["x", "w", "skip"], "attr": attr},
            {"name": "c2", "op": "_FusedConv2D", "input": ["x", "w", "b"], "attr": attr},
        ]},
    }
    assert unfuse_tensor_bias(model) == 1
    nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
    assert nodes["c1"]["op"] == "Relu" and nodes["c1"]["input"] == ["c1/unfused_add"]
    assert nodes["c1/unfused_add"]["input"] == ["c1/unfused_Conv2D", "skip"]
    conv = nodes["c1/unfused_Conv2D"]
    assert conv["op"] == "Conv2D" and "fused_ops" not in conv["attr"] and "strides" in conv["attr"]
    assert nodes["c2"]["op"] == "_FusedConv2D"  # vector bias: left fused


@pytest.mark.parametrize("variant", ["float32", "float16"])
def test_node_parity_with_keras(exported, variant, tmp_path):
    """TF.js in node (WASM) vs `GradTTS.synthesise` + HiFi-GAN on the same noise."""
    _require_node_modules()
    request = {
        "model_dir": os.fspath(exported.root / variant), "out_dir": os.fspath(tmp_path),
        "text": TEXT, "steps": STEPS, "temperature": TEMPERATURE, "length_scale": 1 / RATE,
        "noise": os.fspath(exported.root / "noise.f32"), "vocoders": ["graph"],
    }
    _node("node_synth.mjs", request, tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["ids"] == exported.ids
    mel = np.fromfile(tmp_path / "mel.f32", np.float32).reshape(-1, 80)
    audio = np.fromfile(tmp_path / "audio_graph.f32", np.float32)
    mel_err, audio_err = _rel_err(mel, exported.mel), _rel_err(audio, exported.audio)
    print(f"{variant}: mel rel err {mel_err:.2e}, audio rel err {audio_err:.2e}, "
          f"load {result['load']['loadSeconds'] * 1e3:.0f} ms, run {result['runs']['graph']}")
    if variant == "float32":
        assert mel_err < MEL_TOL and audio_err < AUDIO_TOL
    else:
        assert mel_err < MEL_TOL_F16


def test_same_seed_same_mel_in_keras_litert_and_tfjs(exported, tmp_path):
    """One seed, one utterance: the Keras `Synthesizer`, the LiteRT runner and TF.js all
    draw the start noise from the portable generator (`gradtts_tf.noise`, prng.js)."""
    _require_node_modules()
    seed = 1234
    settings = {"steps": STEPS, "temperature": TEMPERATURE, "length_scale": 1 / RATE}
    synth = Synthesizer(exported.model, Config(), vocoder=None)
    (utterance,), _ = synth.synthesize([TEXT], seed=seed, **settings)
    keras_mel = utterance.mel  # [T, 80]

    export_tflite(exported.model, tmp_path / "tflite", config=Config(), variants=("float32",))
    runner = TFLiteSynthesizer(tmp_path / "tflite" / "float32")
    enc = runner.encode(runner.text_to_ids(TEXT), 1 / RATE)
    litert_mel = runner.decode(enc, STEPS, TEMPERATURE, seed=seed)

    request = {
        "model_dir": os.fspath(exported.root / "float32"), "out_dir": os.fspath(tmp_path),
        "text": TEXT, "steps": STEPS, "temperature": TEMPERATURE, "length_scale": 1 / RATE,
        "noise": None, "seed": seed, "vocoders": ["griffin_lim"],
    }
    _node("node_synth.mjs", request, tmp_path)
    tfjs_mel = np.fromfile(tmp_path / "mel.f32", np.float32).reshape(-1, 80)

    assert keras_mel.shape == litert_mel.shape == tfjs_mel.shape
    # Each runtime's float32 precision (the parity tests above: ~3e-6 relative); another
    # seed's noise moves the mel by its own magnitude.
    assert _rel_err(litert_mel, keras_mel) < MEL_TOL
    assert _rel_err(tfjs_mel, keras_mel) < MEL_TOL
    (other,), _ = synth.synthesize([TEXT], seed=seed + 1, **settings)
    assert _rel_err(other.mel, keras_mel) > 0.05


def _realistic_mel() -> np.ndarray:
    """Log-mel of a harmonic tone with vibrato (the tiny untrained model's mels are not)."""
    sr = 22050
    t = np.arange(int(0.6 * sr)) / sr
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 3 * t)) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) * 0.2 * np.hanning(t.size)
    x = x + 0.01 * np.random.default_rng(1).standard_normal(t.size)
    return mel_spectrogram(x.astype(np.float32)).numpy()  # [frames, 80]


def test_griffin_lim_and_wav_in_node(tmp_path):
    """JS Griffin-Lim vs `gradtts_tf.audio.griffin_lim`; JS WAV bytes vs `save_audio`."""
    require(NODE is not None, "node not found: run `make web-deps`")
    mel = _realistic_mel()
    mel.astype("<f4").tofile(tmp_path / "mel.f32")
    inverse_mel_basis(22050, 1024, 80, 0.0, 8000.0).astype("<f4").tofile(tmp_path / "inv.f32")
    samples = np.random.default_rng(2).uniform(-1.2, 1.2, 5000).astype(np.float32)
    samples[:4] = [0.5, -0.5, 1.5 / 32768, -2.5 / 32768]  # rounding edge cases
    samples.tofile(tmp_path / "audio.f32")
    request = {
        "mel": os.fspath(tmp_path / "mel.f32"), "n_mels": 80,
        "inv_mel_basis": os.fspath(tmp_path / "inv.f32"), "n_fft": 1024, "hop_length": 256,
        "win_length": 1024, "n_iter": 32, "momentum": 0.99,
        "audio": os.fspath(tmp_path / "audio.f32"), "sample_rate": 22050,
        "out_dir": os.fspath(tmp_path),
    }
    timing = json.loads(_node("node_dsp.mjs", request, tmp_path))
    js = np.fromfile(tmp_path / "gl.f32", np.float32)
    ref = griffin_lim(mel).numpy()
    assert js.shape == ref.shape == (mel.shape[0] * 256,)
    rms = float(np.sqrt(np.mean((js - ref) ** 2) / np.mean(ref**2)))
    print(f"Griffin-Lim JS vs TF: relative RMS {rms:.2e}, max abs {np.abs(js - ref).max():.2e}, "
          f"{timing['griffin_lim_seconds']:.2f} s for {mel.shape[0]} frames")
    assert rms < GL_RMS_TOL
    save_audio(tmp_path / "py.wav", samples, 22050)
    assert (tmp_path / "js.wav").read_bytes() == (tmp_path / "py.wav").read_bytes()


def test_browser_demo(exported, tmp_path):
    """The page in headless Chromium: typed text -> audio matching Keras on the same noise."""
    _require_node_modules()
    require(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: run `make web-deps`")
    dist = tmp_path / "dist"
    subprocess.run([NODE, "build.mjs", os.fspath(dist)], cwd=WEB, check=True,
                   capture_output=True, timeout=120)
    mel = _realistic_mel()
    server, url = serve_in_thread(exported.root / "float32", dist_dir=dist)
    screenshot = tmp_path / "browser_demo.png"
    request = {
        "url": url, "chromium": CHROMIUM, "user_data_dir": os.fspath(tmp_path / "profile"),
        "out_dir": os.fspath(tmp_path), "screenshot": os.fspath(screenshot), "text": TEXT,
        "unspeakable_text": "?! ... 😀", "steps": STEPS, "temperature": TEMPERATURE,
        "rate": RATE, "noise": os.fspath(exported.root / "noise.f32"),
        "vocoders": ["graph", "griffin_lim"], "gl_mel": mel.reshape(-1).tolist(),
        "timeout_ms": 45000,
    }
    try:
        summary = json.loads(_node("browser_test.mjs", request, tmp_path, timeout=120))
    finally:
        server.shutdown()
        server.server_close()
    print(f"screenshot: {screenshot}")
    print(f"page ready in {summary['page_ready_seconds']:.2f} s "
          f"(graphs {summary['load']['graphBytes'] / 1e6:.2f} MB loaded in "
          f"{summary['load']['loadSeconds']:.2f} s, {summary['load']['backend']} backend)")
    for vocoder, run in summary["runs"].items():
        print(f"{vocoder}: {run['wall_seconds']:.2f} s wall, timings {run['timings']}")
    assert screenshot.stat().st_size > 10_000
    assert not summary["page_errors"] and not summary["console_errors"], summary
    assert not summary["requests_outside"]  # offline: everything is served locally
    assert summary["cross_origin_isolated"] and summary["load"]["backend"] == "wasm"
    assert "Nothing to pronounce" in summary["unspeakable_message"]
    assert summary["labels"] == {"steps": str(STEPS), "temperature": "1.50", "rate": "1.25×"}
    assert summary["ids"] == exported.ids
    assert summary["runs"]["graph"]["noise"] == "injected"
    assert any("Reverse diffusion" in s for r in summary["runs"].values()
               for s in r["progress_statuses"])
    browser_mel = np.fromfile(tmp_path / "browser_mel.f32", np.float32).reshape(-1, 80)
    browser_audio = np.fromfile(tmp_path / "browser_audio_graph.f32", np.float32)
    mel_err = _rel_err(browser_mel, exported.mel)
    audio_err = _rel_err(browser_audio, exported.audio)
    print(f"browser vs Keras: mel rel err {mel_err:.2e}, HiFi-GAN audio rel err {audio_err:.2e}")
    assert mel_err < MEL_TOL and audio_err < AUDIO_TOL
    # The Griffin-Lim run: same mel, audio of the right length within [-1, 1].
    gl_audio = np.fromfile(tmp_path / "browser_audio_griffin_lim.f32", np.float32)
    assert gl_audio.shape == (browser_mel.shape[0] * 256,)
    assert np.all(np.isfinite(gl_audio)) and np.abs(gl_audio).max() <= 1.0
    # Griffin-Lim in the page on a realistic mel vs TF.
    page_gl = np.fromfile(tmp_path / "browser_gl.f32", np.float32)
    ref = griffin_lim(mel).numpy()
    rms = float(np.sqrt(np.mean((page_gl - ref) ** 2) / np.mean(ref**2)))
    print(f"browser Griffin-Lim vs TF: relative RMS {rms:.2e}")
    assert rms < GL_RMS_TOL
    # The download link holds the last audio, encoded like save_audio.
    save_audio(tmp_path / "expected.wav", gl_audio, 22050)
    assert summary["download"] == {"href_scheme": "blob", "filename": "gradtts.wav"}
    assert (tmp_path / "browser.wav").read_bytes() == (tmp_path / "expected.wav").read_bytes()
