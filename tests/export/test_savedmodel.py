"""SavedModel export: signatures, no random ops, reloaded in a fresh process vs Keras."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from gradtts_tf.config import Config
from gradtts_tf.export.savedmodel import MANIFEST, export_savedmodels, graph_specs
from gradtts_tf.model import GradTTS
from gradtts_tf.solvers import SOLVERS, solver_plan
from gradtts_tf.text import text_to_ids

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: loads each SavedModel, runs serving_default, saves outputs.
RELOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    folder = sys.argv[1]
    inputs = np.load(folder + "/inputs.npz")
    specs, outputs = {}, {}
    for graph in ("encoder", "decoder_step"):
        fn = tf.saved_model.load(f"{folder}/{graph}").signatures["serving_default"]
        args = fn.structured_input_signature[1]
        specs[graph] = {k: [v.shape.as_list(), v.dtype.name] for k, v in args.items()}
        feed = {k: tf.constant(inputs[f"{graph}.{k}"]) for k in args}
        for k, v in fn(**feed).items():
            outputs[f"{graph}.{k}"] = v.numpy()
    np.savez(folder + "/outputs.npz", **outputs)
    json.dump(specs, open(folder + "/specs.json", "w"))
    """
)


def _rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-8))


# The multi-speaker export (~25 s to build on 2 cores) runs with the slow tests (in CI).
@pytest.fixture(scope="module", params=[1, pytest.param(3, marks=pytest.mark.slow)],
                ids=["single", "multispeaker"])
def exported(request, tmp_path_factory):
    """(model, folder, Keras reference outputs) for a tiny model, reloaded in a subprocess."""
    n_spks = request.param
    keras.utils.set_random_seed(2)
    model = GradTTS(
        n_vocab=149, n_spks=n_spks, spk_emb_dim=8, n_enc_channels=32, filter_channels=64,
        filter_channels_dp=32, n_enc_layers=1, dec_dim=8, out_size=16, seed=3,
    )
    folder = tmp_path_factory.mktemp(f"savedmodel_{n_spks}")
    export_savedmodels(model, folder, config=Config())

    ids = np.array(text_to_ids("Export me, 7 times."), np.int32)
    spk = {"spk": np.array([2], np.int32)} if n_spks > 1 else {}
    enc_in = {
        "x": ids[None], "x_lengths": np.array([len(ids)], np.int32),
        "length_scale": np.float32(1.2), **spk,
    }
    aligned = model.align(enc_in["x"], enc_in["x_lengths"], 1.2, spk=spk.get("spk"))
    mu, mask = aligned["mu_y"].numpy(), aligned["y_mask"].numpy()
    xt = (mu + np.random.default_rng(0).standard_normal(mu.shape).astype(np.float32)) * mask
    # The second step of DPM-Solver++(2M) (it uses x0_prev), with a noise term added
    # so that every input of the graph counts.
    plan = solver_plan("dpmpp-2m", 4, model.beta_min, model.beta_max)
    coef = np.array(plan.coefs[1], np.float32)
    coef[3] = 0.3
    rng = np.random.default_rng(1)
    dec_in = {"xt": xt, "mask": mask, "mu": mu, "t": np.array([plan.times[1]], np.float32),
              "coef": coef, "x0_prev": rng.standard_normal(mu.shape).astype(np.float32),
              "noise": rng.standard_normal(mu.shape).astype(np.float32), **spk}
    spk_emb = model._speaker(spk.get("spk"))
    x_next, x0 = model.decoder.solver_step(
        xt, mask, mu, dec_in["t"], coef, dec_in["x0_prev"], dec_in["noise"], spk_emb=spk_emb
    )
    ref = {
        "encoder.mu_y": mu, "encoder.y_mask": mask,
        "encoder.y_lengths": aligned["y_lengths"].numpy(),
        "decoder_step.xt_next": x_next.numpy(), "decoder_step.x0": x0.numpy(),
    }
    np.savez(
        folder / "inputs.npz",
        **{f"encoder.{k}": v for k, v in enc_in.items()},
        **{f"decoder_step.{k}": v for k, v in dec_in.items()},
    )
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD, str(folder)], cwd=ROOT, capture_output=True,
        text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model, folder, ref


def test_reloaded_outputs_match_keras(exported):
    _, folder, ref = exported
    ours = np.load(folder / "outputs.npz")
    assert set(ours.files) == set(ref)
    np.testing.assert_array_equal(ours["encoder.y_lengths"], ref["encoder.y_lengths"])
    np.testing.assert_array_equal(ours["encoder.y_mask"], ref["encoder.y_mask"])
    assert ours["encoder.mu_y"].shape[1] % 4 == 0
    assert _rel_err(ours["encoder.mu_y"], ref["encoder.mu_y"]) < 1e-5
    assert _rel_err(ours["decoder_step.xt_next"], ref["decoder_step.xt_next"]) < 1e-5
    assert _rel_err(ours["decoder_step.x0"], ref["decoder_step.x0"]) < 1e-5


def test_signatures_have_dynamic_lengths(exported):
    model, folder, _ = exported
    specs = json.loads((folder / "specs.json").read_text())
    expected = graph_specs(80, model.n_spks > 1)
    for graph, got in specs.items():
        want = {
            name: [[d if isinstance(d, int) else None for d in shape], dtype]
            for name, shape, dtype in expected[graph]["inputs"]
        }
        assert got == want
    assert specs["encoder"]["x"] == [[1, None], "int32"]
    assert ("spk" in specs["decoder_step"]) == (model.n_spks > 1)


def test_no_random_ops(exported):
    _, folder, _ = exported
    for graph in ("encoder", "decoder_step"):
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((folder / graph / "saved_model.pb").read_bytes())
        graph_def = proto.meta_graphs[0].graph_def
        ops = {n.op for n in graph_def.node}
        ops |= {n.op for f in graph_def.library.function for n in f.node_def}
        assert "Conv2D" in ops
        assert not [op for op in ops if "Random" in op], sorted(ops)


def test_manifest(exported):
    model, folder, _ = exported
    info = json.loads((folder / MANIFEST).read_text())
    assert set(info["graphs"]) == {"encoder", "decoder_step"}
    assert info["model"]["n_spks"] == model.n_spks
    assert info["text"]["n_vocab"] == 149 and len(info["text"]["symbols"]) == 148
    assert info["vocoder"]["type"] == "griffin_lim"
    names = [i["name"] for i in info["graphs"]["decoder_step"]["inputs"]]
    assert names[:7] == ["xt", "mask", "mu", "t", "coef", "x0_prev", "noise"]
    assert info["solvers"] == list(SOLVERS)


def test_manifest_carries_the_voices_inference_settings(exported):
    from gradtts_tf.config import load_config
    from gradtts_tf.export.savedmodel import manifest

    model, _, _ = exported
    config = load_config(None, ["inference.temperature=3.0", "inference.length_scale=0.9",
                                "inference.steps=25", "inference.solver=dpmpp-2m"])
    assert manifest(config, model, "griffin_lim")["sampling"] == {
        "steps": 25, "temperature": 3.0, "length_scale": 0.9, "solver": "dpmpp-2m",
    }


def test_manifest_carries_the_voices_griffin_lim_settings(exported):
    """Every host port (LiteRT runner, browser page) runs the voice's Griffin-Lim."""
    from gradtts_tf.config import load_config
    from gradtts_tf.export.savedmodel import manifest

    model, _, _ = exported
    config = load_config(None, ["griffin_lim.n_iter=12", "griffin_lim.mel_clamp=15.0"])
    settings = manifest(config, model, "griffin_lim")["vocoder"]["griffin_lim"]
    assert {k: settings[k] for k in ("n_iter", "momentum", "power", "mel_clamp")} == {
        "n_iter": 12, "momentum": 0.99, "power": 1.0, "mel_clamp": 15.0,
    }
