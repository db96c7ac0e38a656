"""After Ctrl-C, train.py exits with status 130 within a bound once its checkpoint is on
disk, even when something would block the way out (tests/training/_shutdown_worker.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradtts_tf.config import load_config
from gradtts_tf.training import build_model, checkpoints, restore_latest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "training" / "_shutdown_worker.py"
TINY = [
    "model.n_enc_channels=32", "model.filter_channels=64", "model.filter_channels_dp=32",
    "model.n_enc_layers=1", "model.dec_dim=8", "train.batch_size=4", "train.out_size=64",
    "data.n_val=4", "train.learning_rate=0.001", "train.jit_compile='off'",
]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.mark.parametrize("kind", ["pipeline", "thread"])
def test_exit_deadline_ends_a_shutdown_that_never_finishes(kind):
    """Without the deadline both processes hang for good: interpreter shutdown waits for
    a tf.data iterator whose generator is stuck in a read (destroyed by the final
    garbage collection, when a Python watchdog thread could no longer run), or joins a
    non-daemon thread that never ends."""
    deadline = 2.0
    proc = subprocess.run(
        [sys.executable, str(WORKER), "hang", kind, str(deadline)], cwd=ROOT,
        capture_output=True, text=True, env=_env(), timeout=180,
    )
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "armed: timer" in proc.stdout
    if kind == "thread":
        # A second before the exit, the Python tracebacks show what was blocking. (Not
        # asserted for the pipeline: its hang can come after interpreter finalisation
        # has already stopped faulthandler's watchdog, so the dump is best effort.)
        assert "Timeout (0:00:01)!" in proc.stderr
        assert "in _shutdown" in proc.stderr


def _wait_for(predicate, proc, what, timeout=600):
    start = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"train.py ended ({proc.returncode}) before {what}")
        if time.monotonic() - start > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("stall", [False, True], ids=["slow-reads", "stalled-reads"])
def test_ctrl_c_exits_130_soon_after_the_checkpoint_with_a_read_in_flight(
    demo_corpus, tmp_path, stall
):
    """Corpus reads are slower than the steps, so the input pipeline's reader is always
    in the middle of one. slow-reads: they all return, and the process exits without
    needing its deadline (set far off); destroyed at interpreter shutdown instead, the
    pipeline waited forever for the reader, which Python ends there when it asks for the
    GIL back. stalled-reads: from the Ctrl-C checkpoint on, reads never return, and the
    exit deadline ends the process. Either way: status 130, checkpoint loadable."""
    deadline = 10.0 if stall else 600.0
    run = tmp_path / "run"
    overrides = TINY + [
        "train.checkpoint_every_steps=1000", "train.val_every_steps=100000",
        "train.log_images_every=0", "train.log_every_steps=1",
    ]
    argv = ["--config", "configs/demo.yaml", "--data", str(demo_corpus), "--out", str(run),
            "--epochs", "1"] + [a for item in overrides for a in ("--set", item)]
    spec = {"argv": argv, "read_delay": 0.3, "deadline": deadline, "stall": stall}
    out_log, err_log = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_log, "w") as out, open(err_log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(WORKER), "train", json.dumps(spec)],
                                cwd=ROOT, stdout=out, stderr=err, text=True, env=_env())

    def logged_step():
        try:
            return json.loads((run / "progress.json").read_text())["step"]
        except (OSError, ValueError):
            return 0

    bound = 10.0 + 30.0  # the stalled case's deadline, plus a loaded machine's slack
    try:
        # By step 6 the batches read ahead while the first step was traced are used
        # up: the reads (4 x 0.3 s a batch) are slower than the steps, so the
        # pipeline's reader is always busy.
        _wait_for(lambda: logged_step() >= 6, proc, "step 6")
        proc.send_signal(signal.SIGINT)
        _wait_for(lambda: checkpoints.list_checkpoints(run), proc, "the checkpoint", timeout=120)
        saved = time.monotonic()
        try:
            proc.wait(timeout=bound + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"train.py still running {bound + 60:.0f} s after its Ctrl-C "
                        f"checkpoint:\n{err_log.read_text()[-3000:]}")
        took = time.monotonic() - saved
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = out_log.read_text(), err_log.read_text()
    assert proc.returncode == 130, err[-3000:]
    assert took < bound
    if stall:
        assert "READ BLOCKED" in err  # the stall did catch a read
        assert "Timeout (0:00:09)!" in err  # and the tracebacks show it
    step = int(out.split("interrupted at step ")[1].split(";")[0])
    ckpt = checkpoints.list_checkpoints(run)[-1]
    assert ckpt.name == f"ckpt-{step:08d}"
    found, state = restore_latest(build_model(load_config("configs/demo.yaml", overrides)), run)
    assert found == ckpt and state["step"] == step
