"""Mel lengths at fractional length scales in every runtime; a single-head model.

With a fractional ``length_scale`` the float32 rounding of the two duration sums decides
a frame at token boundaries (the mel length truncates the total, the path ends each
token at a prefix sum). `gradtts_tf.float_sums` reproduces the official PyTorch
rounding with float32 ops pinned against reordering; these tests check that the pins
hold wherever the model runs: Keras eagerly, in a ``tf.function`` (Grappler), under
XLA (in clusters split at the data-dependent mel length), and the exported ``encoder``
graph as a SavedModel, in LiteRT and in TF.js (node, WASM backend). Keras itself is
checked against ``torch`` and the official ``generate_path`` when they are installed.

The model is tiny and has one attention head (``n_heads=1`` used to crash TensorFlow's
broadcasting batch matmul at some text lengths, 17, 33 and 39 among them); its duration
predictor is biased to a few frames per token. The texts and that bias are chosen so
that naive float32 sums (sequential, ``tf.reduce_sum``, ``tf.cumsum``) give another
length or path for some of the exported cases: `test_cases_discriminate_naive_sums`
asserts it, so the export comparisons would see a reordered sum.

The TF.js part needs ``make tfjs-deps web-deps`` (the converter's venv and
``export/web/node_modules``); without them it skips, except under CI (``CI`` set),
where it fails.
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
import tensorflow as tf

from gradtts_tf.config import Config
from gradtts_tf.export.run_tflite import Graph
from gradtts_tf.export.savedmodel import ENCODER, SIGNATURE, export_savedmodels
from gradtts_tf.export.tfjs import ConverterNotFoundError, converter_command, export_tfjs
from gradtts_tf.export.tflite import convert_savedmodel
from gradtts_tf.float_sums import torch_cpu_sum
from gradtts_tf.model import GradTTS
from gradtts_tf.ops import fix_len_compatibility, generate_path, sequence_mask
from gradtts_tf.text import text_to_ids
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "export" / "web"
NODE = shutil.which("node")

# Token counts (blanks interspersed): 17, 33, 39, 33, 39.
TEXTS = ("Hi, Bob.", "Look at the stars.", "Bring me the red cup.", "One, two, three.",
         "It rained all day long.")
# 663 tokens, the only case past 512 values, where ATen's sum (`torch_cpu_sum`) has a
# full 16-row chunk of 8-lane vectors: without the pins Grappler reorders its additions
# and makes this text 1771 frames long at 0.7 instead of 1770 (the tf.function and
# SavedModel runs), while the short texts' sums come out right anyway.
LONG = "the texts, 4 times"
SEQUENCES = {**{t: t for t in TEXTS}, LONG: " ".join(TEXTS * 4)}
# The ragged batch: the first three texts, padded to 39 tokens.
BATCHED = 3
# What the exported (batch 1) graphs run.
EXPORTED = tuple(SEQUENCES)
LENGTH_SCALES = (0.7, 0.91, 1.0, 1.3, 1.77)
# The duration predictor's last layer: kernel x 0.3, bias + 1.0 gives 1.5 to 8.6 frames
# per token; with these texts "Hi, Bob." lands on a length boundary at 0.7 and 1.3
# (naive sums 41.999996 and 78.000008, the official ones 42.0 and 77.99999).
DURATION_KERNEL_SCALE = 0.3
DURATION_BIAS = 1.0
# Every exp(logw) stays this far (relative) from an integer: a ceil that a runtime's
# last-bit difference in the encoder could flip would test exp, not the sums.
CEIL_MARGIN = 1e-4
STEPS = 2
TEMPERATURE = 1.5
SYNTH_SCALE = 0.91
MODES = ("eager", "function", "xla")


def _rel_err(ours, ref) -> float:
    """Max abs error relative to max |ref| (shapes must agree)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-8))


@pytest.fixture(scope="module")
def model():
    """A tiny single-head Grad-TTS predicting a few frames per token."""
    keras.utils.set_random_seed(5)
    tts = GradTTS(
        n_vocab=149, n_enc_channels=32, filter_channels=64, filter_channels_dp=32, n_heads=1,
        n_enc_layers=1, dec_dim=8, out_size=16, seed=3,
    )
    proj = tts.encoder.proj_w.proj  # DurationPredictor's 1x1 output convolution
    proj.kernel.assign(proj.kernel * DURATION_KERNEL_SCALE)
    proj.bias.assign(proj.bias + DURATION_BIAS)
    return tts


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (x [B, T_x] int32, x_lengths [B] int32)}``: each sequence, then a ragged
    batch."""
    seqs = [np.array(text_to_ids(t), np.int32) for t in SEQUENCES.values()]
    cases = {name: (s[None], np.array([len(s)], np.int32))
             for name, s in zip(SEQUENCES, seqs, strict=True)}
    batch = seqs[:BATCHED]
    x = np.zeros((len(batch), max(len(s) for s in batch)), np.int32)
    for i, s in enumerate(batch):
        x[i, : len(s)] = s
    cases["ragged batch"] = (x, np.array([len(s) for s in batch], np.int32))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def eager(model):
    """Eager `GradTTS.align` and the encoder's ``logw`` for every case and scale."""
    results = {}
    for name, (x, x_lengths) in CASES.items():
        _, logw, x_mask = model._encode(x, x_lengths, None, training=False)
        for scale in LENGTH_SCALES:
            out = {k: v.numpy() for k, v in model.align(x, x_lengths, length_scale=scale).items()}
            results[name, scale] = {**out, "logw": logw.numpy(), "x_mask": x_mask.numpy()}
    return results


def _split_align(model):
    """`GradTTS.align` (and a synthesis) in XLA clusters, split where the mel length
    becomes a shape.

    The padded mel length is data-dependent (``tf.range`` of it), which XLA cannot
    compile, so a first cluster computes the lengths (the lines of
    `gradtts_tf.ops.durations_to_path` before the mask), a second the path and ``mu_y``
    for a padded length known when it is compiled, and a third the reverse diffusion.

    Returns:
        ``fn(x, x_lengths, length_scale, noise=None)`` -> align's dict, plus ``mel`` (the
        decoder's output from ``mu_y + noise / TEMPERATURE``) when ``noise`` is given.
    """

    @tf.function(jit_compile=True)
    def lengths(x, x_lengths, length_scale):
        mu_x, logw, x_mask = model._encode(x, x_lengths, None, training=False)
        w_ceil = tf.math.ceil(tf.exp(logw) * x_mask) * length_scale  # [B, T_x, 1]
        y_lengths = tf.cast(tf.maximum(torch_cpu_sum(w_ceil[:, :, 0]), 1.0), "int32")
        return mu_x, w_ceil, x_mask, y_lengths

    @tf.function(jit_compile=True)
    def path(mu_x, w_ceil, x_mask, y_lengths, frames):
        y_mask = tf.expand_dims(sequence_mask(y_lengths, tf.shape(frames)[0]), -1)
        attn = generate_path(w_ceil[:, :, 0], x_mask * tf.transpose(y_mask, [0, 2, 1]))
        mu_y = tf.matmul(attn, mu_x, transpose_a=True)  # [B, T_y, n_feats]
        return {"mu_y": mu_y, "y_mask": y_mask, "y_lengths": y_lengths, "attn": attn}

    @tf.function(jit_compile=True)
    def synthesis(mu_y, y_mask, noise):
        z = mu_y + noise / TEMPERATURE
        return model.decoder.reverse_diffusion(z, y_mask, mu_y, STEPS)

    def align(x, x_lengths, length_scale, noise=None):
        mu_x, w_ceil, x_mask, y_lengths = lengths(x, x_lengths, length_scale)
        padded = fix_len_compatibility(int(tf.reduce_max(y_lengths)))
        out = path(mu_x, w_ceil, x_mask, y_lengths, tf.zeros([padded]))
        if noise is not None:
            out["mel"] = synthesis(out["mu_y"], out["y_mask"], noise[:, :padded])
        return out

    return align


def test_durations_are_multi_frame_and_clear_of_ceil_boundaries(eager):
    """The setting the other tests rely on: T_x 17, 33, 39 (and a long text), several
    frames per token, no duration within rounding distance of an integer."""
    assert {x.shape[1] for x, _ in CASES.values()} == {17, 33, 39, 663}
    for (name, scale), out in eager.items():
        mask = out["x_mask"][..., 0] > 0
        w = np.exp(out["logw"][..., 0].astype(np.float64))[mask]
        assert 1.2 < w.min() and w.max() < 10, (name, w.min(), w.max())
        margin = np.abs(w - np.round(w)) / w
        assert margin.min() > CEIL_MARGIN, (name, margin.min())
        assert (out["y_lengths"] > 2 * out["x_mask"].sum((1, 2))).all(), (name, scale)


def test_align_modes_agree(model, eager):
    """`GradTTS.align` in a ``tf.function`` and under XLA: the eager lengths and paths."""
    function = tf.function(model.align)
    xla = _split_align(model)
    worst = {"function": 0.0, "xla": 0.0}
    for (name, scale), ref in eager.items():
        x, x_lengths = CASES[name]
        scale_t = tf.constant(scale, tf.float32)  # a tensor: one trace for all scales
        for mode, fn in (("function", function), ("xla", xla)):
            out = {k: v.numpy() for k, v in fn(x, x_lengths, scale_t).items()}
            where = f"{mode}, {name!r}, length_scale {scale}"
            np.testing.assert_array_equal(out["y_lengths"], ref["y_lengths"], err_msg=where)
            np.testing.assert_array_equal(out["y_mask"], ref["y_mask"], err_msg=where)
            np.testing.assert_array_equal(out["attn"], ref["attn"], err_msg=where)
            worst[mode] = max(worst[mode], _rel_err(out["mu_y"], ref["mu_y"]))
            assert worst[mode] < 1e-5, (where, worst[mode])
    print(f"mu_y vs eager, max relative error: {worst}")


def _synthesise(model, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mel lengths [B], mel [B, T_y, n_feats])`` of the ragged batch, fixed noise."""
    x, x_lengths = CASES["ragged batch"]
    # More frames than the padded mel length (the synthesis uses the first ones).
    noise = np.random.default_rng(0).standard_normal(
        (x.shape[0], 512, model.n_feats)).astype(np.float32)
    if mode == "xla":
        out = _split_align(model)(x, x_lengths, tf.constant(SYNTH_SCALE), noise=noise)
        lengths = out["y_lengths"].numpy()
        return lengths, out["mel"].numpy()[:, : lengths.max()]

    def synthesise(x, x_lengths, noise):
        return model.synthesise(x, x_lengths, n_timesteps=STEPS, temperature=TEMPERATURE,
                                length_scale=SYNTH_SCALE, noise=noise)

    if mode == "function":
        synthesise = tf.function(synthesise)
    out = synthesise(x, x_lengths, noise)
    return out["mel_lengths"].numpy(), out["model_outputs"].numpy()


@pytest.fixture(scope="module")
def eager_synthesis(model):
    return _synthesise(model, "eager")


@pytest.mark.parametrize("mode", MODES)
def test_single_head_synthesis(model, eager, eager_synthesis, mode):
    """A few reverse-diffusion steps of the single-head model on the ragged batch: the
    align lengths, finite, masked; graph and XLA within 1e-4 of eager (measured 6e-7)."""
    lengths, mel = eager_synthesis if mode == "eager" else _synthesise(model, mode)
    np.testing.assert_array_equal(lengths, eager["ragged batch", SYNTH_SCALE]["y_lengths"])
    assert mel.shape == (len(lengths), lengths.max(), model.n_feats)
    assert np.isfinite(mel).all()
    for b, length in enumerate(lengths):
        assert np.abs(mel[b, length:]).max(initial=0.0) == 0.0  # masked past the length
        assert np.abs(mel[b, :length]).max() > 0.0
    if mode != "eager":
        assert _rel_err(mel, eager_synthesis[1]) < 1e-4


def test_keras_matches_official_torch(eager):
    """Eager lengths and paths vs ``torch.sum`` and the official ``generate_path`` on the
    model's own ``logw``, in the official ``[B, 1, T_x]`` layout."""
    torch = pytest.importorskip("torch", reason="needs torch (the `test` extra)")
    utils = pytest.importorskip("grad_tts.model.utils",
                                reason="needs the official grad-tts (the `test` extra)")

    def official(array):  # [B, T, 1] -> contiguous [B, 1, T], as the official encoder's
        return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 2, 1)))

    for (name, scale), ours in eager.items():
        logw, x_mask = official(ours["logw"]), official(ours["x_mask"])
        w_ceil = torch.ceil(torch.exp(logw) * x_mask) * scale  # GradTTS.forward
        y_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
        padded = utils.fix_len_compatibility(int(y_lengths.max()))
        y_mask = utils.sequence_mask(y_lengths, padded).unsqueeze(1).to(x_mask.dtype)
        attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
        attn = utils.generate_path(w_ceil.squeeze(1), attn_mask.squeeze(1))
        where = f"{name!r}, length_scale {scale}"
        np.testing.assert_array_equal(ours["y_lengths"], y_lengths.numpy(), err_msg=where)
        np.testing.assert_array_equal(ours["attn"], attn.numpy(), err_msg=where)


def _naive_boundaries(w_ceil: np.ndarray, cumsum, y_lengths: np.ndarray) -> np.ndarray:
    """Token end frames ``[B, T_x]`` of a path built on ``cumsum`` (clipped to the length)."""
    ends = np.ceil(np.asarray(cumsum(w_ceil), np.float64))  # frames f < end
    return np.minimum(ends, y_lengths[:, None]).astype(np.int64)


def test_cases_discriminate_naive_sums(eager):
    """Some exported cases land where naive float32 sums give another length and another
    path than the official rounding (which Keras reproduces: the tests above)."""
    lengths, paths = [], []
    for name in EXPORTED:  # the batch-1 cases, the ones the exported graphs run
        for scale in LENGTH_SCALES:
            ours = eager[name, scale]
            w = np.ceil(np.exp(ours["logw"][..., 0]) * ours["x_mask"][..., 0]).astype(np.float32)
            w_ceil = w * np.float32(scale)  # [1, T_x]
            y_lengths = ours["y_lengths"]
            for how, total in (("sequential", np.cumsum(w_ceil, axis=1)[:, -1]),
                               ("tf.reduce_sum", tf.reduce_sum(w_ceil, axis=1).numpy())):
                if (np.floor(total).astype(np.int64) != y_lengths).any():
                    lengths.append((name, scale, how, total.tolist(), y_lengths.tolist()))
            ends = np.cumsum(ours["attn"].sum(axis=2), axis=1)  # the path's token ends
            # The helper itself: correctly rounded prefix sums (torch.cumsum) give them.
            exact = _naive_boundaries(
                w_ceil, lambda v: np.cumsum(v, axis=1, dtype=np.float64).astype(np.float32),
                y_lengths)
            np.testing.assert_array_equal(exact, ends, err_msg=f"{name!r}, {scale}")
            for how, cumsum in (("np.cumsum", lambda v: np.cumsum(v, axis=1)),
                                ("tf.cumsum", lambda v: tf.cumsum(v, axis=1).numpy())):
                naive = _naive_boundaries(w_ceil, cumsum, y_lengths)
                if (naive != ends).any():
                    paths.append((name, scale, how))
    print(f"naive lengths off: {lengths}\nnaive paths off: {paths}")
    assert lengths, "no case on a length boundary: the export tests would miss a reordered sum"
    assert paths, "no case on a path boundary: the export tests would miss a reordered cumsum"
    assert {scale for _, scale, *_ in lengths + paths} <= set(LENGTH_SCALES) - {1.0}


# ---------------------------------------------------------------------------
# The exported encoder graph (batch 1): SavedModel, LiteRT, TF.js
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The model's SavedModels, exported once; the other formats convert from them."""
    root = tmp_path_factory.mktemp("export_lengths")
    export_savedmodels(model, root / "savedmodel", config=Config())
    return SimpleNamespace(root=root, savedmodel=root / "savedmodel")


def _inputs(name: str, scale: float) -> dict[str, np.ndarray]:
    """The ``encoder`` graph's inputs for a batch-1 case."""
    x, x_lengths = CASES[name]
    return {"x": x, "x_lengths": x_lengths, "length_scale": np.array(scale, np.float32)}


def _run_savedmodel(exported) -> dict:
    """The SavedModel's signature (a graph that Grappler optimises when it runs)."""
    encoder = tf.saved_model.load(os.fspath(exported.savedmodel / ENCODER))
    fn = encoder.signatures[SIGNATURE]
    results = {}
    for name in EXPORTED:
        for scale in LENGTH_SCALES:
            inputs = {k: tf.constant(v) for k, v in _inputs(name, scale).items()}
            results[name, scale] = {k: v.numpy() for k, v in fn(**inputs).items()}
    return results


def _run_tflite(exported) -> dict:
    """The encoder converted as `gradtts_tf.export.tflite` converts it, run by its runner."""
    path = exported.root / "encoder.tflite"
    path.write_bytes(convert_savedmodel(exported.savedmodel / ENCODER, "float32"))
    graph = Graph(path)  # the runner's interpreter (LiteRT, default XNNPACK delegate)
    return {(n, s): graph(**_inputs(n, s)) for n in EXPORTED for s in LENGTH_SCALES}


def _run_tfjs(exported) -> dict:
    """`gradtts_tf.export.tfjs` on the SavedModels; the app's encoder call in node (WASM)."""
    try:
        converter_command()
    except ConverterNotFoundError as err:
        require(False, str(err))
    require(NODE is not None, "node not found: run `make web-deps`")
    require((WEB / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").is_dir(),
            "export/web/node_modules missing: run `make web-deps`")
    out = exported.root / "tfjs"
    export_tfjs(None, out, savedmodel_dir=exported.savedmodel)
    keys = [(n, s) for n in EXPORTED for s in LENGTH_SCALES]
    run_dir = exported.root / "tfjs_run"
    run_dir.mkdir()
    request = {
        "model_dir": os.fspath(out), "out_dir": os.fspath(run_dir), "backend": "wasm",
        "cases": [{"ids": CASES[n][0][0].tolist(), "length_scale": s} for n, s in keys],
    }
    (run_dir / "request.json").write_text(json.dumps(request))
    proc = subprocess.run(
        [NODE, os.fspath(WEB / "tests" / "node_encode.mjs"), os.fspath(run_dir / "request.json")],
        capture_output=True, text=True, timeout=180, check=False, cwd=WEB,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run_dir / "encode.json").read_text())
    assert result["backend"] == "wasm"
    results = {}
    for i, (key, case) in enumerate(zip(keys, result["cases"], strict=True)):
        mu = np.fromfile(run_dir / f"mu_{i}.f32", np.float32)
        frames = case["frames"]
        results[key] = {
            "mu_y": mu.reshape(1, frames, -1),
            "y_lengths": np.array([case["y_length"]], np.int32),
            "y_mask_sum": case["mask_sum"],
        }
    return results


RUNTIMES = {"savedmodel": _run_savedmodel, "tflite": _run_tflite, "tfjs": _run_tfjs}


# Three exports and 30 cases each (about a minute): in the slow suite, which CI runs too.
@pytest.mark.slow
@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_exported_encoder_lengths(exported, eager, runtime):
    """Every batch-1 case at every scale: the exported graph's ``y_lengths`` are Keras',
    ``mu_y`` within 1e-4 (a path one frame off would move a whole frame of ``mu_y``)."""
    results = RUNTIMES[runtime](exported)
    mismatches, worst = [], 0.0
    for key, ours in results.items():
        ref = eager[key]
        if not np.array_equal(ours["y_lengths"], ref["y_lengths"]):
            mismatches.append(f"{key}: {runtime} {ours['y_lengths'].tolist()}, "
                              f"Keras {ref['y_lengths'].tolist()}")
            continue
        assert ours["mu_y"].shape == ref["mu_y"].shape, key
        if "y_mask" in ours:
            np.testing.assert_array_equal(ours["y_mask"], ref["y_mask"], err_msg=str(key))
        else:
            assert ours["y_mask_sum"] == ref["y_mask"].sum(), key
        err = _rel_err(ours["mu_y"], ref["mu_y"])
        worst = max(worst, err)
        if err >= 1e-4:
            mismatches.append(f"{key}: mu_y relative error {err:.2e}")
    print(f"{runtime}: {len(results)} cases, mu_y max relative error {worst:.1e}")
    assert not mismatches, f"{runtime} differs from Keras:\n" + "\n".join(mismatches)
