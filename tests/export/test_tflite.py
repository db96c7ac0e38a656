"""TFLite export: builtin ops only, parity with the Keras model, the TF-free runner.

One tiny Grad-TTS and a tiny HiFi-GAN generator are exported once per module
(float32 and float16); every comparison feeds both sides the same noise.
"""

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradtts_tf.audio import griffin_lim as tf_griffin_lim
from gradtts_tf.audio import inverse_mel_basis, mel_spectrogram
from gradtts_tf.config import Config
from gradtts_tf.export.run_tflite import (
    Graph,
    TFLiteSynthesizer,
    griffin_lim,
    model_ops,
    size_dynamic_inputs,
)
from gradtts_tf.export.savedmodel import INV_MEL_FILE
from gradtts_tf.export.tflite import FlexOpsError, convert_savedmodel, export_tflite, measure
from gradtts_tf.layers.hifigan import HiFiGANGenerator
from gradtts_tf.model import GradTTS
from gradtts_tf.noise import standard_normal

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ("Hello world.", "The quick brown fox jumps over the lazy dog, 42 times!")


def _rel_err(ours, ref) -> float:
    """Max abs error relative to max |ref| (shapes must agree)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-8))


def _speech_like_range(model: GradTTS) -> None:
    """Scales an untrained model so its mels look like log-mels (about -5 +- 1).

    Random weights give mels up to ~80, i.e. exp(80) magnitudes and clipped audio, which
    would make the audio comparisons meaningless.
    """
    proj = model.encoder.proj_m
    proj.kernel.assign(proj.kernel * 0.1)
    proj.bias.assign(proj.bias - 5.0)
    final = model.decoder.estimator.final_conv
    final.kernel.assign(final.kernel * 0.01)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(GradTTS, HiFi-GAN generator, export folder, report) of a tiny exported model."""
    keras.utils.set_random_seed(5)
    model = GradTTS(
        n_vocab=149, n_enc_channels=32, filter_channels=64, filter_channels_dp=32,
        n_enc_layers=1, dec_dim=8, out_size=16, seed=3,
    )
    _speech_like_range(model)
    # The last stage keeps 2 channels; hop = 8 * 8 * 2 * 2 = 256 as the audio config.
    vocoder = HiFiGANGenerator(
        n_mels=80, upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
        upsample_initial_channel=32, resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),), weight_norm=False,
    )
    vocoder.build((None, None, 80))
    out = tmp_path_factory.mktemp("tflite")
    report = export_tflite(model, out, config=Config(), vocoder=vocoder)
    return model, vocoder, out, report


def _keras_synthesis(model, ids, steps, temperature, noise, length_scale=1.0,
                     solver="euler", step_noise=None):
    out = model.synthesise(
        ids[None], np.array([len(ids)], np.int32), n_timesteps=steps,
        temperature=temperature, length_scale=length_scale, noise=noise, solver=solver,
        step_noise=step_noise,
    )
    return out["model_outputs"].numpy()[0, : int(out["mel_lengths"][0])]


def test_builtin_ops_only(exported):
    _, _, out, report = exported
    files = sorted(out.glob("*/*.tflite"))
    assert len(files) == 6  # 3 graphs x (float32, float16)
    for f in files:
        ops = model_ops(f)
        assert not [op for op in ops if op.startswith("CUSTOM")], (f, ops)
        assert "CONV_2D" in ops
    assert "DEQUANTIZE" in model_ops(out / "float16" / "decoder_step.tflite")
    assert "DEQUANTIZE" not in model_ops(out / "float32" / "decoder_step.tflite")


def test_decoder_step_runs_in_few_xnnpack_partitions(exported):
    """Static reshapes in the U-Net keep the graph together for LiteRT's default
    XNNPACK delegate (tile / dynamic-shape ops used to split it into 60 pieces)."""
    from ai_edge_litert.interpreter import Interpreter

    _, _, out, _ = exported
    path = out / "float32" / "decoder_step.tflite"
    assert "TILE" not in model_ops(path)
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    size_dynamic_inputs(interpreter)
    interpreter.allocate_tensors()
    kinds = [op["op_name"] for op in interpreter._get_ops_details()]  # noqa: SLF001
    assert "TRANSPOSE_CONV" not in kinds  # the upsampling is polyphase (Upsample)
    # 2: the time embedding's SIN / COS run outside XNNPACK (was 60 with tile and
    # dynamic reshapes, 4 with transposed convolutions).
    assert 1 <= kinds.count("DELEGATE") <= 2, kinds.count("DELEGATE")


def test_vocoder_runs_in_few_xnnpack_partitions(exported):
    """The upsampling layers are plain convolutions (polyphase): no TRANSPOSE_CONV,
    which LiteRT runs outside XNNPACK (5-9x slower) when the length is dynamic; and
    the generator works on [B, 1, T, C] throughout, so no expand / squeeze between
    convolutions splits the graph (it was 23 partitions)."""
    from ai_edge_litert.interpreter import Interpreter

    _, _, out, _ = exported
    path = out / "float32" / "vocoder.tflite"
    assert not {"TRANSPOSE_CONV", "SHAPE", "PACK"} & set(model_ops(path))
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    size_dynamic_inputs(interpreter)
    interpreter.allocate_tensors()
    kinds = [op["op_name"] for op in interpreter._get_ops_details()]  # noqa: SLF001
    assert 1 <= kinds.count("DELEGATE") <= 2, kinds.count("DELEGATE")


def test_conversion_fails_loudly_on_flex_ops(tmp_path):
    module = tf.Module()
    module.f = tf.function(
        lambda x: {"y": tf.linalg.det(x)},
        input_signature=[tf.TensorSpec([2, 2], tf.float32, name="x")],
    )
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.f})
    with pytest.raises(FlexOpsError, match="MatrixDeterminant"):
        convert_savedmodel(tmp_path)


def test_sizes_and_load_times_reported(exported):
    _, _, out, report = exported
    saved = json.loads((out / "report.json").read_text())
    assert saved["variants"].keys() == {"float32", "float16"}
    for variant, entry in saved["variants"].items():
        for graph, e in entry["graphs"].items():
            assert e["bytes"] == (out / variant / e["file"]).stat().st_size > 0
            assert 0 < e["load_seconds"] < 5
            kb, ms = e["bytes"] / 1e3, e["load_seconds"] * 1e3
            print(f"{variant}/{graph}: {kb:.0f} kB, load {ms:.1f} ms")
    f32 = saved["variants"]["float32"]["graphs"]["decoder_step"]["bytes"]
    f16 = saved["variants"]["float16"]["graphs"]["decoder_step"]["bytes"]
    assert f16 < 0.7 * f32


def test_encoder_parity_dynamic_lengths(exported):
    """One interpreter, texts of different lengths (resized each time), vs `GradTTS.align`."""
    model, _, out, _ = exported
    tts = TFLiteSynthesizer(out / "float32")
    lengths = set()
    for text, scale in [(TEXTS[1], 1.0), (TEXTS[0], 1.3), (TEXTS[1], 0.8)]:
        ids = tts.text_to_ids(text)
        ours = tts.encode(ids, length_scale=scale)
        ref = model.align(ids[None], np.array([len(ids)]), length_scale=scale)
        np.testing.assert_array_equal(ours["y_lengths"], ref["y_lengths"].numpy())
        np.testing.assert_array_equal(ours["y_mask"], ref["y_mask"].numpy())
        assert ours["mu_y"].shape[1] % 4 == 0
        assert _rel_err(ours["mu_y"], ref["mu_y"]) < 1e-4
        lengths.add(ours["mu_y"].shape[1])
    assert len(lengths) == 3


def test_decoder_step_parity(exported):
    model, _, out, _ = exported
    graph = Graph(out / "float32" / "decoder_step.tflite")
    rng = np.random.default_rng(1)
    for t_y, t in [(24, 0.95), (40, 0.3)]:
        mask = (np.arange(t_y) < t_y - 3).astype(np.float32)[None, :, None]  # [1, T, 1]
        mu = rng.standard_normal((1, t_y, 80)).astype(np.float32) * mask
        xt = rng.standard_normal((1, t_y, 80)).astype(np.float32) * mask
        x0_prev = rng.standard_normal((1, t_y, 80)).astype(np.float32) * mask
        noise = rng.standard_normal((1, t_y, 80)).astype(np.float32)
        t_arr = np.array([t], np.float32)
        coef = np.array([0.9, 0.05, -0.2, 0.3, 1.1, 0.4], np.float32)  # every term counts
        ours = graph(xt=xt, mask=mask, mu=mu, t=t_arr, coef=coef, x0_prev=x0_prev,
                     noise=noise)
        ref = model.decoder.solver_step(xt, mask, mu, t_arr, coef, x0_prev, noise)
        assert _rel_err(ours["xt_next"], ref[0]) < 1e-4
        assert _rel_err(ours["x0"], ref[1]) < 1e-4


@pytest.mark.parametrize(
    "solver,steps",
    [("euler", 1), ("euler", 4), ("euler-sde", 3), ("dpmpp-2m", 1), ("dpmpp-2m", 4),
     ("ml-sde", 4)],
)
def test_end_to_end_mel_float32(exported, solver, steps):
    """The host loop over decoder_step gives Keras' mel for every solver."""
    model, _, out, _ = exported
    tts = TFLiteSynthesizer(out / "float32")
    ids = tts.text_to_ids(TEXTS[1])
    enc = tts.encode(ids)
    noise = standard_normal(7, enc["mu_y"].shape)
    step_noise = tts.step_noise(enc, 11, steps)
    ours = tts.decode(enc, steps=steps, temperature=1.5, noise=noise, solver=solver,
                      step_noise=step_noise)
    ref = _keras_synthesis(model, ids, steps, 1.5, noise, solver=solver,
                           step_noise=step_noise)
    err = _rel_err(ours, ref)
    print(f"float32 mel, {solver} {steps} steps: rel err {err:.2e}")
    assert err < 1e-4


def test_end_to_end_mel_float16(exported):
    model, _, out, _ = exported
    tts = TFLiteSynthesizer(out / "float16")
    ids = tts.text_to_ids(TEXTS[1])
    enc = tts.encode(ids)
    noise = standard_normal(7, enc["mu_y"].shape)
    ours = tts.decode(enc, steps=4, temperature=1.5, noise=noise)
    ref = _keras_synthesis(model, ids, 4, 1.5, noise)
    err = _rel_err(ours, ref)
    print(f"float16 mel, 4 steps: rel err {err:.2e}")
    # float16 weights: measured ~2e-3 on this model (and 1.1e-3 on the demo voice).
    assert err < 1e-2


def test_measure_compares_each_precision_and_its_decoder_alone(exported, monkeypatch):
    model, _, out, _ = exported
    quality = measure(model, out, ("float32", "float16"), TEXTS[1], steps=2)
    for variant, bound in (("float32", 1e-4), ("float16", 1e-2)):
        q = quality[variant]
        assert q["mel_rel"] < bound and q["decoder_mel_rel"] < bound, (variant, q)
        assert q["rtf_mel"] > 0 and q["audio_s"] > 0
    # Durations that differ (as int8 weights can make them): the full mels are not
    # comparable, the decoder alone on the Keras alignment still is.
    encode = TFLiteSynthesizer.encode

    def one_frame_shorter(self, *args, **kwargs):
        enc = encode(self, *args, **kwargs)
        return {**enc, "y_lengths": enc["y_lengths"] - 1}

    monkeypatch.setattr(TFLiteSynthesizer, "encode", one_frame_shorter)
    q = measure(model, out, ("float32",), TEXTS[1], steps=2)["float32"]
    frames, keras_frames = q["length_mismatch"]
    assert "mel_rel" not in q and frames == keras_frames - 1
    assert q["decoder_mel_rel"] < 1e-4


def test_end_to_end_audio_hifigan(exported):
    model, vocoder, out, _ = exported
    tts = TFLiteSynthesizer(out / "float32")
    assert tts.vocoder is not None
    ids = tts.text_to_ids(TEXTS[0])
    enc = tts.encode(ids)
    noise = standard_normal(3, enc["mu_y"].shape)
    audio = tts.mel_to_audio(tts.decode(enc, steps=3, noise=noise))
    ref_mel = _keras_synthesis(model, ids, 3, 1.5, noise)
    ref = np.clip(vocoder(ref_mel[None]).numpy()[0], -1, 1)
    assert audio.shape == (ref_mel.shape[0] * 256,)
    assert _rel_err(audio, ref) < 1e-4


def test_end_to_end_audio_griffin_lim(exported):
    """Host Griffin-Lim (numpy) on the TFLite mel vs `gradtts_tf.audio.griffin_lim` on Keras'."""
    model, _, out, _ = exported
    tts = TFLiteSynthesizer(out / "float32", vocoder="griffin_lim")
    assert tts.vocoder is None
    ids = tts.text_to_ids(TEXTS[0])
    enc = tts.encode(ids)
    noise = standard_normal(3, enc["mu_y"].shape)
    # A high temperature keeps the untrained decoder's mel in a log-mel range.
    mel = tts.decode(enc, steps=3, temperature=30.0, noise=noise)
    audio = tts.mel_to_audio(mel)
    ref_mel = _keras_synthesis(model, ids, 3, 30.0, noise)
    ref = np.clip(tf_griffin_lim(ref_mel).numpy(), -1, 1)
    assert -12 < ref_mel.min() and ref_mel.max() < 3
    err = _rel_err(audio, ref)
    spec_err = np.abs(mel_spectrogram(audio).numpy() - mel_spectrogram(ref).numpy()).max()
    print(f"Griffin-Lim audio: rel err {err:.2e}, log-mel of audio max err {spec_err:.2e}")
    # Fast Griffin-Lim (momentum 0.99, 32 iterations) amplifies float32 round-off:
    # numpy's and TF's FFTs on the *same* mel already differ by 5e-3 of the peak here,
    # as do TF runs on mels 1e-5 apart. Measured: 5.1e-3 and 0.029.
    assert err < 2e-2
    assert spec_err < 0.1
def test_numpy_griffin_lim_matches_tf():
    rng = np.random.default_rng(0)
    mel = rng.normal(-4.0, 1.5, (30, 80)).astype(np.float32)
    inv = inverse_mel_basis(22050, 1024, 80, 0.0, 8000.0)
    ours = griffin_lim(mel, inv, n_iter=8)
    ref = tf_griffin_lim(mel, n_iter=8).numpy()
    assert ours.shape == ref.shape == (30 * 256,)
    assert _rel_err(ours, ref) < 1e-4


def test_griffin_lim_clamps_the_mel_alike_in_tf_and_numpy():
    """One mel clamp (the config's `griffin_lim.mel_clamp`): a diverged mel (here +-60,
    whose exp overflows float32) gives the audio of the clamped mel in both ports."""
    rng = np.random.default_rng(1)
    mel = rng.normal(-4.0, 1.5, (20, 80)).astype(np.float32)
    wild = mel.copy()
    wild[5:8] = 60.0
    wild[9] = -60.0
    clamped = np.clip(wild, -20.0, 20.0)
    inv = inverse_mel_basis(22050, 1024, 80, 0.0, 8000.0)
    for port in (lambda m: tf_griffin_lim(m, n_iter=4, mel_clamp=20.0).numpy(),
                 lambda m: griffin_lim(m, inv, n_iter=4, mel_clamp=20.0)):
        out, ref = port(wild), port(clamped)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out, ref)


def test_runner_cli_without_tensorflow(exported, tmp_path):
    """`python export/run_tflite.py ...` writes a WAV and never imports TensorFlow."""
    _, _, out, _ = exported
    wav = tmp_path / "hello.wav"
    argv = [
        "export/run_tflite.py", "--model-dir", str(out / "float16"), "--text", TEXTS[0],
        "--out", str(wav), "--steps", "2", "--seed", "1",
    ]
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "runpy.run_path('export/run_tflite.py', run_name='__main__')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RTF" in proc.stdout
    with wave.open(str(wav)) as f:
        assert f.getframerate() == 22050 and f.getnchannels() == 1 and f.getsampwidth() == 2
        assert f.getnframes() > 0 and f.getnframes() % 256 == 0


def test_runner_same_seed_same_audio(exported):
    _, _, out, _ = exported
    tts = TFLiteSynthesizer(out / "float32")
    a, rate = tts.tts(TEXTS[0], steps=2, seed=11)
    times = tts.timings
    b, _ = tts.tts(TEXTS[0], steps=2, seed=11)
    c, _ = tts.tts(TEXTS[0], steps=2, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert rate == 22050 and times["rtf"] > 0 and times["audio"] == a.shape[0] / 22050


def test_runner_defaults_are_the_voices_sampling_settings(exported, monkeypatch):
    _, _, out, _ = exported
    tts = TFLiteSynthesizer(out / "float32")
    assert tts.info["sampling"] == {
        "steps": 10, "temperature": 1.5, "length_scale": 1.0, "solver": "euler"
    }
    # As written by an export of a voice whose config sets `inference`.
    monkeypatch.setitem(tts.info, "sampling", {
        "steps": 2, "temperature": 3.0, "length_scale": 0.8, "solver": "dpmpp-2m"
    })
    a, _ = tts.tts(TEXTS[0], seed=11)
    assert tts.timings["steps"] == 2 and tts.timings["solver"] == "dpmpp-2m"
    b, _ = tts.tts(TEXTS[0], steps=2, temperature=3.0, length_scale=0.8, seed=11,
                   solver="dpmpp-2m")
    c, _ = tts.tts(TEXTS[0], steps=2, temperature=3.0, length_scale=1.0, seed=11)
    d, _ = tts.tts(TEXTS[0], steps=2, temperature=3.0, length_scale=0.8, seed=11,
                   solver="euler")
    np.testing.assert_array_equal(a, b)
    assert a.shape[0] < c.shape[0]
    assert not np.array_equal(a, d)


def test_evaluate_cli_scores_an_exported_folder(exported, demo_corpus, tmp_path):
    import evaluate
    from gradtts_tf.audio import load_audio
    from gradtts_tf.config import AudioConfig
    from gradtts_tf.evaluation import load_references, mel_cepstral_distortion

    _, _, out, _ = exported
    # A voice whose own sampling settings differ from the official defaults.
    voice = tmp_path / "voice"
    shutil.copytree(out / "float32", voice)
    info = json.loads((voice / "model_info.json").read_text())
    info["sampling"] = {"steps": 3, "temperature": 3.0, "length_scale": 0.8}
    (voice / "model_info.json").write_text(json.dumps(info))
    ref = load_references(demo_corpus)[0]
    texts = [ref.text, "No recording of this."]
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(texts) + "\n")
    report = tmp_path / "eval.json"
    evaluate.main([
        "--tflite", str(voice), "--sentences", str(sentences),
        "--references", str(demo_corpus), "--steps", "2", "--seed", "4", "--threads", "1",
        "--vocoders", "none", "--no-recordings", "--json", str(report), "--quiet",
    ])
    data = json.loads(report.read_text())
    assert set(data["systems"]) == {"model"}
    settings = data["settings"]
    assert settings["tflite"] == str(voice) and settings["vocoder"] == "vocoder.tflite"
    # Given settings win; unset ones are the voice's own (model_info.json's sampling).
    assert (settings["steps"], settings["temperature"], settings["length_scale"]) == (
        2, 3.0, 0.8)
    scored = data["systems"]["model"]["sentences"]
    assert [s["reference_id"] for s in scored] == [ref.uid, None]
    # What was scored is the runner's audio for the same text, settings and seed.
    tts = TFLiteSynthesizer(voice, num_threads=1)
    audio = [tts.tts(t, steps=2, temperature=3.0, length_scale=0.8, seed=4)[0]
             for t in texts]
    for s, a in zip(scored, audio, strict=True):
        assert s["duration"] == pytest.approx(a.shape[0] / tts.sample_rate)
    reference = load_audio(ref.audio_path, tts.sample_rate)
    expected = mel_cepstral_distortion(audio[0], reference, AudioConfig(**tts.audio))
    assert scored[0]["mcd"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "run"], "not allowed with argument"),
        (["--cpu-math", "bfloat16"], "--cpu-math applies to TensorFlow"),
        (["--split", "val", "--references", "corpus"], "needs --config"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_evaluate_cli_rejects_bad_tflite_arguments(exported, extra, message, capsys):
    import evaluate

    _, _, out, _ = exported
    with pytest.raises(SystemExit):
        evaluate.main(["--tflite", str(out / "float32"), "--sentences", "s.txt", *extra])
    assert message in capsys.readouterr().err


def test_evaluate_cli_tflite_folder_errors(tmp_path, capsys):
    import evaluate

    with pytest.raises(SystemExit):
        evaluate.main(["--tflite", str(tmp_path), "--sentences", "s.txt"])
    assert "model_info.json not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--threads", "2", "--sentences", "s.txt"])
    assert "--threads applies to --tflite only" in capsys.readouterr().err


def test_inverse_mel_basis_file(exported):
    _, _, out, _ = exported
    info = json.loads((out / "float32" / "model_info.json").read_text())
    basis = info["vocoder"]["griffin_lim"]["inv_mel_basis"]
    assert basis["file"] == INV_MEL_FILE and basis["shape"] == [80, 513]
    assert (out / "float32" / INV_MEL_FILE).stat().st_size == 80 * 513 * 4
    assert info["vocoder"]["type"] == "graph" and info["precision"] == "float32"


def test_runner_and_synthesizer_share_the_tts_signature():
    """An app can swap the Keras `Synthesizer` and the LiteRT runner: same arguments,
    same defaults, same result (audio, sample rate)."""
    import inspect

    from gradtts_tf.synthesizer import Synthesizer

    def named(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
                if p.kind is not p.VAR_KEYWORD]

    assert named(TFLiteSynthesizer.tts) == named(Synthesizer.tts)
    assert inspect.signature(TFLiteSynthesizer.tts).return_annotation == \
        inspect.signature(Synthesizer.tts).return_annotation
