"""Checkpoints, resume, warm start and interruption (Ctrl-C, SIGKILL) of train.py."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REF

from gradtts_tf.cli import train as train_cli
from gradtts_tf.config import load_config
from gradtts_tf.convert import main as convert_main
from gradtts_tf.model import GradTTS
from gradtts_tf.training import (
    RunError,
    WarmupDecay,
    build_model,
    checkpoints,
    config_differences,
    restore_latest,
    train,
    warm_start,
)
from gradtts_tf.training import callbacks as cb

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "model.n_enc_channels=32", "model.filter_channels=64", "model.filter_channels_dp=32",
    "model.n_enc_layers=1", "model.dec_dim=8", "train.batch_size=4", "train.out_size=64",
    "data.n_val=4", "train.learning_rate=0.001", "train.jit_compile='off'",
]


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _optimizer_values(model):
    return [np.array(v.numpy()) for v in model.optimizer.variables]


def test_checkpoints_atomic_retention_and_fallback(tmp_path, capsys):
    config = load_config("configs/demo.yaml", TINY + ["train.ema_decay=0.9",
                                                      "train.grad_accum_steps=2"])
    model = build_model(config)
    rng = np.random.default_rng(0)
    # Give every optimizer variable (moments, EMA, accumulators, counters) a value.
    for v in model.optimizer.variables:
        v.assign(rng.normal(size=v.shape).astype(v.dtype) if "float" in str(v.dtype)
                 else np.full(v.shape, 5, v.dtype))
    seeds = checkpoints.seed_variables(model)
    assert len(seeds) >= 2  # the crop's and the diffusion noise's generators at least
    for step, val in zip(range(1, 6), [3.0, 1.0, 2.0, 4.0, None], strict=True):
        seeds[0].assign(np.array([37, 100 + step], seeds[0].dtype))
        checkpoints.write_checkpoint(
            tmp_path, model, {"step": step, "epoch": step, "position": 4 * step, "val_loss": val},
            keep_last=2,
        )
    # Keep the last two plus the best by validation loss (step 2).
    names = [p.name for p in checkpoints.list_checkpoints(tmp_path)]
    assert names == ["ckpt-00000002", "ckpt-00000004", "ckpt-00000005"]
    expected_weights, expected_opt = _weights(model), _optimizer_values(model)

    # A crash mid-write leaves a hidden temporary folder (and a rename never
    # happened): neither counts as a checkpoint, and a new run removes them.
    partial = tmp_path / "checkpoints" / ".tmp-ckpt-00000006-999"
    partial.mkdir()
    (partial / checkpoints.STATE_WEIGHTS).write_bytes(b"\x89HDF\r\n half")
    (tmp_path / "checkpoints" / "ckpt-00000007").mkdir()
    assert [p.name for p in checkpoints.list_checkpoints(tmp_path)][-1] == "ckpt-00000005"

    fresh = build_model(config)
    ckpt, state = restore_latest(fresh, tmp_path)
    assert ckpt.name == "ckpt-00000005" and state["position"] == 20
    for a, b in zip(_weights(fresh), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_optimizer_values(fresh), expected_opt, strict=True):
        np.testing.assert_array_equal(a, b)
    assert checkpoints.seed_variables(fresh)[0].numpy().tolist() == [37, 105]

    # A damaged newest checkpoint: the next older one is loaded instead.
    with open(ckpt / checkpoints.STATE_WEIGHTS, "r+b") as f:
        f.truncate(1000)
    ckpt, state = restore_latest(build_model(config), tmp_path)
    assert ckpt.name == "ckpt-00000004" and state["step"] == 4
    assert "cannot load" in capsys.readouterr().err
    assert checkpoints.clean_partial(tmp_path) == [partial.name]


def test_warm_start_skips_ignored_and_mismatched_layers(tmp_path):
    convert_main(["--checkpoint", str(REF / "gradtts_small_state_dict.npz"),
                  "--params", str(REF / "gradtts_small_config.json"),
                  "--out", str(tmp_path / "official")])
    source = load_config(tmp_path / "official" / "config.yaml")
    src_model = GradTTS.from_config_tree(source)
    src_model.load_weights(tmp_path / "official" / "model.weights.h5")
    src = {v.path.split("/", 1)[1]: v.numpy() for v in src_model.weights}

    # A new symbol set (n_vocab) and two speakers: the symbol embedding and the
    # U-Net's first convolutions (the speaker channel joins their input) change shape,
    # the speaker embedding is new; the decoder's time MLP is re-initialised on request.
    config = load_config(tmp_path / "official" / "config.yaml",
                         ["model.n_vocab=160", "model.n_spks=2", "train.jit_compile='off'"])
    model = build_model(config)
    before = {v.path.split("/", 1)[1]: v.numpy() for v in model.weights}
    report = warm_start(model, tmp_path / "official",
                        ignore_layers=r"^decoder/estimator/mlp/", verbose=False)
    after = {v.path.split("/", 1)[1]: v.numpy() for v in model.weights}
    assert [p for p, _, _ in report["shape"]] == [
        "encoder/emb/embeddings", "decoder/estimator/downs_0_resnet1/block1/conv/kernel",
        "decoder/estimator/downs_0_resnet1/res_conv/kernel"]
    assert report["shape"][0][1:] == ((149, 64), (160, 64))
    assert report["ignored"]
    assert all(p.startswith("decoder/estimator/mlp/") for p in report["ignored"])
    assert "spk_emb/embeddings" in report["missing"]
    assert len(report["loaded"]) > 50
    for path in report["loaded"]:
        np.testing.assert_array_equal(after[path], src[path])
    skipped = report["ignored"] + report["missing"] + [p for p, _, _ in report["shape"]]
    for path in skipped:
        np.testing.assert_array_equal(after[path], before[path])
    assert len(report["loaded"]) + len(skipped) == len(after)


def test_incompatible_run_folder_is_refused_saying_what_differs(demo_corpus, tmp_path):
    run = load_config("configs/demo.yaml", TINY)
    run.save(tmp_path / "config.yaml")
    given = load_config("configs/demo.yaml", TINY + [
        "model.n_enc_layers=2", "train.ema_decay=0.99", "train.learning_rate=0.01",
        "train.batch_size=8",
    ])
    incompatible, changed = config_differences(run, given)
    assert [line.split(":")[0] for line in incompatible] == ["model.n_enc_layers",
                                                             "train.ema_decay"]
    assert {line.split(":")[0] for line in changed} == {"train.learning_rate",
                                                        "train.batch_size"}
    with pytest.raises(RunError) as err:
        train(given, demo_corpus, tmp_path, epochs=1)
    assert "model.n_enc_layers: 1 in the run, 2 given" in str(err.value)
    assert "train.ema_decay: 0.0 in the run, 0.99 given" in str(err.value)
    assert "learning_rate" not in str(err.value)

    # --warm-start into a folder that already has checkpoints is refused too.
    (tmp_path / "checkpoints" / "ckpt-00000001").mkdir(parents=True)
    for name in (checkpoints.STATE_JSON, checkpoints.STATE_WEIGHTS):
        (tmp_path / "checkpoints" / "ckpt-00000001" / name).write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(["--config", "configs/demo.yaml", "--data", str(demo_corpus),
                        "--out", str(tmp_path), "--warm-start", str(tmp_path)]
                       + [a for item in TINY for a in ("--set", item)])
    assert exit_.value.code == 2


def test_learning_rate_schedules():
    warm = WarmupDecay(1e-3, "exponential", warmup_steps=10, decay_rate=0.5, decay_steps=100)
    np.testing.assert_allclose(float(warm(0)), 1e-4, rtol=1e-6)
    np.testing.assert_allclose(float(warm(9)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(warm(110)), 5e-4, rtol=1e-6)
    step = WarmupDecay(1e-3, "step", decay_rate=0.1, decay_steps=100, min_lr=2e-5)
    assert [round(float(step(s)), 8) for s in (0, 99, 100, 250, 10**6)] == [
        1e-3, 1e-3, 1e-4, 2e-5, 2e-5]
    assert float(WarmupDecay(3e-4)(12345)) == pytest.approx(3e-4)


def _run_cli(args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        **kwargs,
    )


def _wait_for(predicate, proc, timeout=900):
    start = time.time()
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"train.py ended early ({proc.returncode}):\n{out}\n{err}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.2)


def _steps(run):
    return [int(p.name.split("-")[1]) for p in checkpoints.list_checkpoints(run)]


@pytest.mark.slow
def test_ctrl_c_and_sigkill_then_resume_continue_as_if_uninterrupted(demo_corpus, tmp_path):
    """Ctrl-C checkpoints and exits 130; SIGKILL at a random moment loses at most one
    checkpoint interval; the resumed run ends where an uninterrupted one does."""
    interval, epochs = 3, 4
    overrides = TINY + [
        f"train.checkpoint_every_steps={interval}", "train.val_every_steps=1000",
        "train.log_images_every=0", "train.log_every_steps=1", "train.keep_last=10",
    ]
    args = ["--config", "configs/demo.yaml", "--data", str(demo_corpus),
            "--epochs", str(epochs)] + [a for item in overrides for a in ("--set", item)]
    reference = tmp_path / "reference"
    train(load_config("configs/demo.yaml", overrides), demo_corpus, reference,
          epochs=epochs, verbose=0)
    run = tmp_path / "run"

    def logged_step():
        try:
            return json.loads((run / "progress.json").read_text())["step"]
        except (OSError, ValueError):
            return 0

    # 1. Ctrl-C in the middle of the second epoch: the current step is finished and
    # checkpointed.
    proc = _run_cli(args + ["--out", str(run)])
    _wait_for(lambda: logged_step() >= interval + 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted at step" in out
    interrupted_at = int(out.split("interrupted at step ")[1].split(";")[0].split(".")[0])
    assert _steps(run) == [interval, interrupted_at]

    # 2. Resume, then SIGKILL at a random moment after it wrote a checkpoint.
    proc = _run_cli(args + ["--out", str(run)])
    _wait_for(lambda: _steps(run)[-1] > interrupted_at, proc)
    time.sleep(random.uniform(0.0, 3.0))
    proc.kill()
    proc.communicate()
    progress = json.loads((run / "progress.json").read_text())
    last = _steps(run)[-1]
    assert progress["step"] - last <= interval  # lost at most one interval
    assert all(checkpoints.CKPT_PATTERN.match(p.name) or p.name.startswith(".tmp-")
               for p in (run / "checkpoints").iterdir())

    # 3. Resume to the end: same checkpoints and weights as the uninterrupted run.
    history = train(load_config("configs/demo.yaml", overrides), demo_corpus, run,
                    epochs=epochs, verbose=0)
    assert history.progress.start_step == last
    assert history.progress.step == interval * epochs
    # After the Ctrl-C the interrupted epoch was finished first: checkpoints fall on
    # the same steps as in the uninterrupted run.
    # (The Ctrl-C may land exactly on an interval boundary: then it is a regular one.)
    extra = {interrupted_at} - set(_steps(reference))
    assert sorted(set(_steps(run)) - extra) == _steps(reference)
    final, expected = (
        checkpoints.read_state(checkpoints.list_checkpoints(r)[-1]) for r in (run, reference)
    )
    final.pop("time"), expected.pop("time")
    assert final == expected  # step, epoch, data position, random-generator states
    done = GradTTS.from_config_tree(load_config(run / "config.yaml"))
    done.load_weights(run / "model.weights.h5")
    ref = GradTTS.from_config_tree(load_config(reference / "config.yaml"))
    ref.load_weights(reference / "model.weights.h5")
    for a, b in zip(done.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    rows = (run / "history.csv").read_text().splitlines()
    # Every epoch logged once, also when the Ctrl-C fell on an epoch's last step.
    assert [r.split(",")[0] for r in rows[1:]] == [str(e) for e in range(epochs)]


def test_ctrl_c_on_an_epochs_last_step_lets_the_epoch_end_first():
    """A Ctrl-C mid-epoch checkpoints at once; on the epoch's last step it waits for
    on_epoch_end, after validation, the history row and the regular checkpoint."""

    class FakeCheckpointer:
        def __init__(self):
            self.progress = checkpoints.Progress()
            self.progress.step = 7
            self.last_saved, self.saves = Path("ckpt-00000006"), 0

        def save(self):
            self.saves += 1
            return Path("ckpt-00000007")

    class FakeModel:
        stop_training = False

    checkpointer = FakeCheckpointer()
    interrupt = cb.GracefulInterrupt(checkpointer)
    interrupt.set_model(FakeModel())
    interrupt.set_params({"steps": 3})
    interrupt.requested = signal.SIGINT
    interrupt.on_train_batch_end(2)  # last step of the epoch: no stop yet
    assert checkpointer.saves == 0
    with pytest.raises(cb.TrainingInterrupted) as stop:
        interrupt.on_epoch_end(0)
    assert stop.value.checkpoint == Path("ckpt-00000006") and checkpointer.saves == 0
    with pytest.raises(cb.TrainingInterrupted) as stop:
        interrupt.on_train_batch_end(0)  # mid-epoch: checkpoint now
    assert stop.value.checkpoint == Path("ckpt-00000007") and checkpointer.saves == 1
