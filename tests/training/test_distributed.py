"""`--strategy mirrored` (two logical CPUs) and `--strategy multiworker` (two processes
on 127.0.0.1) train to the same weights as one device on the same global batches."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradtts_tf import training
from gradtts_tf.config import load_config
from gradtts_tf.training import run
from tests.training._train_worker import without_dropout

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "training" / "_train_worker.py"
STEPS = 3
# The same computation on one device and on replicas: no dropout (see
# `without_dropout`), no random crop; the diffusion times and noise are drawn for the
# global batch and sliced per replica (GradTTSTrainer._replica_noise). Adam's epsilon is
# raised from 1e-8 so that it does not blow up rounding noise in gradients that are
# zero in exact arithmetic (biases before GroupNorm, attention key biases) to full
# steps of random sign.
OVERRIDES = [
    "model.n_enc_channels=32", "model.filter_channels=64", "model.filter_channels_dp=32",
    "model.n_enc_layers=1", "model.dec_dim=8", "model.enc_dropout=0.0",
    "train.batch_size=4", "train.out_size=0", "data.n_val=4", "train.learning_rate=0.001",
    "train.adam_epsilon=1.0e-6", "train.val_every_steps=1000", "train.log_images_every=0",
    "train.jit_compile='off'",
]
# Replicas sum gradients in another order than one device: float32 rounding, which
# Adam turns into visible (but < 1 % of a step) differences only in weights whose
# exact gradient is zero. Adam is blind to a gradient's scale, so the losses and the
# gradient norms are compared too: a wrongly reduced loss would show there.
RTOL, ATOL = 1e-4, 1e-5

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def single_device(demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    config = load_config(ROOT / "configs" / "demo.yaml", OVERRIDES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run, "build_model", run.build_model)  # restored afterwards
        without_dropout(run)
        history = training.train(config, demo_corpus, out, epochs=1, steps_per_epoch=STEPS,
                                 verbose=0)
    weights = [np.asarray(v.numpy()) for v in history.model.trainable_variables]
    return weights, history.history


def _start(args: dict, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(args)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})),
    )


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=1500)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def _args(tmp_path, demo_corpus, name, strategy, **extra) -> dict:
    return {
        "config": "configs/demo.yaml", "overrides": OVERRIDES + [f"train.strategy={strategy}"],
        "data": str(demo_corpus), "out": str(tmp_path / name), "epochs": 1, "steps": STEPS,
        "dump": str(tmp_path / f"{name}.npz"), "no_dropout": True, **extra,
    }


def _assert_matches(dump: Path, result: dict, single_device) -> None:
    expected, history = single_device
    for key in ("loss", "dur_loss", "prior_loss", "diff_loss", "enc_grad_norm",
                "dec_grad_norm"):
        np.testing.assert_allclose(result["history"][key], history[key], rtol=1e-4)
    weights = np.load(dump)
    assert len(weights.files) == len(expected)
    for i, want in enumerate(expected):
        np.testing.assert_allclose(weights[f"arr_{i}"], want, rtol=RTOL, atol=ATOL)


def test_mirrored_two_replicas_match_one_device(single_device, demo_corpus, tmp_path):
    result = _result(_start(_args(tmp_path, demo_corpus, "mirrored", "mirrored", cpus=2)))
    assert result["replicas"] == 2 and result["local_copies"] == 2
    assert result["max_replica_diff"] == 0.0  # both replicas hold identical weights
    _assert_matches(tmp_path / "mirrored.npz", result, single_device)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multiworker_two_processes_match_one_device(single_device, demo_corpus, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = [
        _start(
            _args(tmp_path, demo_corpus, f"worker{i}", "multiworker"),
            {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                   "index": i}})},
        )
        for i in range(2)
    ]
    results = [_result(p) for p in procs]
    assert all(r["replicas"] == 2 for r in results)
    a, b = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])  # the workers' replicas agree
    assert results[0]["history"] == results[1]["history"]
    _assert_matches(tmp_path / "worker0.npz", results[0], single_device)
    # Only the chief writes checkpoints and logs.
    assert (tmp_path / "worker0" / "checkpoints").is_dir()
    assert not (tmp_path / "worker1" / "checkpoints").exists()
