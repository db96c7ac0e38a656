"""Keras callbacks of ``train.py``: checkpoints, logging, samples, NaN guard, Ctrl-C.

A run folder holds ``checkpoints/ckpt-<step>/`` directories, each with
``state.weights.h5`` (model weights plus the whole optimizer state: Adam moments,
step counter, EMA weights, gradient accumulators, loss scale) and ``state.json``
(step, fit epoch and steps into the next one, data-stream position, random-generator
states, validation loss).
A checkpoint is written into a hidden temporary directory, flushed to disk and then
renamed into place, so a crash mid-write never leaves a ``ckpt-*`` that loads half.
"""

from __future__ import annotations

import ctypes
import dataclasses
import faulthandler
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gradtts_tf.keras_internals import ema_pairs, optimizer_strategy
from gradtts_tf.runtime import release_free_memory

logger = logging.getLogger(__name__)

CKPT_PATTERN = re.compile(r"^ckpt-(\d+)$")
STATE_WEIGHTS = "state.weights.h5"
STATE_JSON = "state.json"
CHECKPOINT_FORMAT = 1


# ---------------------------------------------------------------------------------
# Progress shared by the callbacks


@dataclasses.dataclass
class Progress:
    """Where training stands; `StepCounter` keeps it current during `fit`.

    Attributes:
        step: Batches trained so far, over all runs of this folder.
        epoch: Fit epochs (checkpoint intervals) completed.
        in_epoch: Steps done in the current (unfinished) fit epoch.
        start_step: ``step`` when this process began training.
        start_position: Data-stream position (utterances) when training began.
        batch_size: Global batch size.
    """

    step: int = 0
    epoch: int = 0
    in_epoch: int = 0
    start_step: int = 0
    start_position: int = 0
    batch_size: int = 1

    @property
    def position(self) -> int:
        """Data-stream position after the last finished step (utterances consumed)."""
        return self.start_position + (self.step - self.start_step) * self.batch_size


class StepCounter(keras.callbacks.Callback):
    """Advances `Progress` (first in the callback list)."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def on_train_batch_end(self, batch, logs=None):
        self.progress.step += 1
        self.progress.in_epoch += 1

    def on_epoch_end(self, epoch, logs=None):
        self.progress.epoch = epoch + 1
        self.progress.in_epoch = 0


class ReleaseTracingMemory(keras.callbacks.Callback):
    """`gradtts_tf.runtime.release_free_memory` after the first training step and the
    first validation: the memory freed after tracing their graphs goes back to the system.
    """

    def __init__(self):
        super().__init__()
        self.pending = {"train", "test"}

    def _release(self, phase: str) -> None:
        if phase in self.pending:
            self.pending.discard(phase)
            release_free_memory()

    def on_train_batch_end(self, batch, logs=None):
        self._release("train")

    def on_test_end(self, logs=None):
        self._release("test")


class FinishEpoch(keras.callbacks.Callback):
    """Ends the first fit epoch after ``steps`` steps (the rest of an interrupted epoch).

    Keras leaves an epoch early on ``stop_training``; clearing the flag again at the
    epoch's end lets training go on with full epochs.
    """

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self.active = True

    def on_train_batch_end(self, batch, logs=None):
        if self.active and batch + 1 >= self.steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.active:
            self.active = False
            self.model.stop_training = False


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


# ---------------------------------------------------------------------------------
# EMA weights


def _ema_optimizer(model: keras.Model):
    opt = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if opt is None or not getattr(opt, "use_ema", False) or not opt.built:
        return None
    return opt


def ema_values(model: keras.Model) -> list[np.ndarray]:
    """Values of ``model.weights`` with EMA averages in place of trainable weights.

    Without EMA these are the current weights. Reads the averages Keras' optimizer
    keeps (``use_ema=True``), as `keras.callbacks.SwapEMAWeights` does.
    """
    opt = _ema_optimizer(model)
    averages = {}
    if opt is not None:
        for var, avg in ema_pairs(opt):
            averages[id(var)] = avg
    return [np.asarray(averages.get(id(w), w).numpy()) for w in model.weights]


class EMAWeights:
    """Context manager swapping the EMA weights into the model and back (cross-replica)."""

    def __init__(self, model: keras.Model):
        self.opt = _ema_optimizer(model)

    def _swap(self):
        opt = self.opt
        strategy = optimizer_strategy(opt)
        for var, avg in ema_pairs(opt):
            var, avg = var.value, avg.value
            # In-place swap without a temporary, on every replica's copy.
            strategy.extended.update(var, lambda a, b: a.assign_add(b), args=(avg,))
            strategy.extended.update(var, lambda a, b: b.assign(a - b), args=(avg,))
            strategy.extended.update(var, lambda a, b: a.assign(a - b), args=(avg,))

    def __enter__(self):
        if self.opt is not None:
            self._swap()
        return self

    def __exit__(self, *exc):
        if self.opt is not None:
            self._swap()
        return False


# ---------------------------------------------------------------------------------
# Checkpoints


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seed_variables(model: keras.Model) -> list:
    """The states of every `keras.random.SeedGenerator` in the model (crop, t, z, dropout)."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = CKPT_PATTERN.match(p.name)
        if m and (p / STATE_JSON).is_file() and (p / STATE_WEIGHTS).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def read_state(ckpt: Path) -> dict:
    """The ``state.json`` of a checkpoint directory."""
    return json.loads((ckpt / STATE_JSON).read_text())


def write_checkpoint(
    run_dir: str | os.PathLike, model: keras.Model, state: dict, keep_last: int = 3
) -> Path:
    """Writes ``checkpoints/ckpt-<step>`` atomically and applies the retention policy.

    Args:
        run_dir: The run folder.
        model: Compiled model (its optimizer state is saved too).
        state: JSON-serialisable state; must hold ``step``.
        keep_last: Newest checkpoints kept; the best by ``val_loss`` is kept as well.

    Returns:
        The checkpoint directory.
    """
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"ckpt-{int(state['step']):08d}"
    if final.is_dir() and (final / STATE_JSON).is_file():
        return final  # Same step, same state (e.g. Ctrl-C right after an epoch end).
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = dict(state, format=CHECKPOINT_FORMAT, time=time.time())
    state["seed_states"] = [v.numpy().tolist() for v in seed_variables(model)]
    model.save_weights(tmp / STATE_WEIGHTS)
    (tmp / STATE_JSON).write_text(json.dumps(state, indent=1))
    for name in (STATE_WEIGHTS, STATE_JSON):
        _fsync(tmp / name)
    _fsync(tmp)
    if final.exists():  # A leftover without state.json: not a checkpoint.
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync(folder)
    _apply_retention(folder, keep_last)
    return final


def _apply_retention(folder: Path, keep_last: int) -> None:
    ckpts = list_checkpoints(folder.parent)
    keep = set(ckpts[-keep_last:]) if keep_last > 0 else set()
    scored = [(read_state(p).get("val_loss"), p) for p in ckpts]
    scored = [(v, p) for v, p in scored if v is not None and np.isfinite(v)]
    if scored:
        keep.add(min(scored, key=lambda vp: vp[0])[1])
    for p in ckpts:
        if p not in keep:
            # Renamed first so a crash mid-delete never leaves a partial ckpt-*.
            doomed = folder / f".del-{p.name}-{os.getpid()}"
            os.rename(p, doomed)
            shutil.rmtree(doomed, ignore_errors=True)


def clean_partial(run_dir: str | os.PathLike) -> list[str]:
    """Removes temporary directories left by a crash mid-write; returns their names."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if p.name.startswith((".tmp-", ".del-")):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def restore_checkpoint(model: keras.Model, ckpt: Path) -> dict:
    """Loads weights, optimizer state and random-generator states; returns ``state.json``."""
    state = read_state(ckpt)
    model.load_weights(ckpt / STATE_WEIGHTS)
    seeds = seed_variables(model)
    saved = state.get("seed_states", [])
    if len(saved) == len(seeds):
        for var, value in zip(seeds, saved, strict=True):
            var.assign(np.asarray(value, dtype=var.dtype))
    return state


def export_weights(model: keras.Model, export_model: keras.Model, path: Path) -> None:
    """Writes the synthesis weights (EMA when on; no optimizer state) atomically."""
    export_model.set_weights(ema_values(model))
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    export_model.save_weights(tmp)
    _fsync(tmp)
    os.replace(tmp, path)


class Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint at the end of every fit epoch (one checkpoint interval).

    Only the chief of a multi-worker cluster writes. Each save also refreshes the
    run's ``model.weights.h5`` for synthesis (EMA weights when EMA is on).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        progress: Progress,
        keep_last: int,
        export_model: keras.Model | None = None,
        extra_state: Callable[[], dict] | None = None,
        chief: bool = True,
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.keep_last = keep_last
        self.export_model = export_model
        self.extra_state = extra_state
        self.last_saved: Path | None = None
        self.chief = chief

    def save(self, val_loss: float | None = None) -> Path | None:
        """Writes a checkpoint of the current state (chief only)."""
        if not self.chief:
            return None
        p = self.progress
        state = {"step": p.step, "epoch": p.epoch, "in_epoch": p.in_epoch,
                 "position": p.position, "val_loss": val_loss}
        if self.extra_state is not None:
            state.update(self.extra_state())
        self.last_saved = write_checkpoint(self.run_dir, self.model, state, self.keep_last)
        if self.export_model is not None:
            export_weights(self.model, self.export_model, self.run_dir / "model.weights.h5")
        return self.last_saved

    def on_epoch_end(self, epoch, logs=None):
        val = (logs or {}).get("val_loss")
        self.save(float(val) if val is not None else None)


# ---------------------------------------------------------------------------------
# Robustness


def _last_of_epoch(callback: keras.callbacks.Callback, batch: int) -> bool:
    """Whether ``batch`` ends the fit epoch (its step count, or `stop_training` set)."""
    return batch + 1 == (callback.params or {}).get("steps") or callback.model.stop_training


class TrainingInterrupted(Exception):
    """Raised out of `fit` after Ctrl-C/SIGTERM, once the checkpoint is written."""

    def __init__(self, step: int, checkpoint: Path | None):
        super().__init__(f"interrupted at step {step}")
        self.step = step
        self.checkpoint = checkpoint


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class GracefulInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) or SIGTERM: finish the step, checkpoint, leave `fit`.

    A second signal interrupts at once (the last complete checkpoint stays valid).
    With ``exit_deadline`` (seconds; the command line's), the process is also bound
    to end within that time once the checkpoint is on disk (`arm_exit_deadline`),
    with exit status 130.
    """

    def __init__(self, checkpointer: Checkpointer, exit_deadline: float | None = None):
        super().__init__()
        self.checkpointer = checkpointer
        self.exit_deadline = exit_deadline
        self.requested: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        if self.requested is not None:
            self.uninstall()
            raise KeyboardInterrupt
        self.requested = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a "
              "checkpoint (send again to stop at once)", flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_begin(self, logs=None):
        self.install()

    def on_train_end(self, logs=None):
        self.uninstall()

    def _stop(self, ckpt: Path | None):
        self.uninstall()
        if self.exit_deadline is not None:
            arm_exit_deadline(self.exit_deadline, 130)
        raise TrainingInterrupted(self.checkpointer.progress.step, ckpt)

    def on_train_batch_end(self, batch, logs=None):
        last_of_epoch = _last_of_epoch(self, batch)
        if self.requested is not None and not last_of_epoch:
            # At an epoch's last step, on_epoch_end stops instead: the epoch's
            # validation, history row and checkpoint come first.
            self._stop(self.checkpointer.save())

    def on_epoch_end(self, epoch, logs=None):
        # The Checkpointer (earlier in the list) has just saved this state.
        if self.requested is not None:
            self._stop(self.checkpointer.last_saved)


# ---------------------------------------------------------------------------------
# Bounded exit after an interrupt


class _SigevThread(ctypes.Structure):
    _fields_ = [("function", ctypes.c_void_p), ("attributes", ctypes.c_void_p)]


class _SigevFields(ctypes.Union):
    # struct sigevent is 64 bytes on Linux (glibc and musl); the union pads it.
    _fields_ = [
        ("pad", ctypes.c_int * ((64 - 2 * ctypes.sizeof(ctypes.c_int)
                                 - ctypes.sizeof(ctypes.c_void_p)) // ctypes.sizeof(ctypes.c_int))),
        ("thread", _SigevThread),
    ]


class _Sigevent(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("fields", _SigevFields)]


class _Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


_SIGEV_THREAD = 2  # Linux's values
_CLOCK_MONOTONIC = 1
_exit_timers: list = []  # armed timers stay referenced for the life of the process


def _arm_exit_timer(seconds: float, status: int) -> bool:
    """A POSIX timer whose expiry calls the C library's ``_exit(status)`` on a thread of
    its own (``SIGEV_THREAD``); False where there is no such timer (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "timer_create"):  # glibc before 2.34 keeps it in librt
            libc = ctypes.CDLL("librt.so.1", use_errno=True)
        exit_fn = ctypes.cast(libc._exit, ctypes.c_void_p).value
        timer_create, timer_settime = libc.timer_create, libc.timer_settime
    except (OSError, AttributeError):
        return False
    # The thread function receives the sigval union, whose int member is the status.
    event = _Sigevent(value=status, notify=_SIGEV_THREAD)
    event.fields.thread.function = exit_fn
    timer = ctypes.c_void_p()
    timer_create.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    if timer_create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) != 0:
        return False
    whole = int(seconds)
    spec = _Itimerspec(value=_Timespec(whole, int((seconds - whole) * 1e9)))
    timer_settime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    if timer_settime(timer, 0, ctypes.byref(spec), None) != 0:
        return False
    _exit_timers.append(timer)
    return True


def arm_exit_deadline(seconds: float, status: int = 130) -> str:
    """Ends the process with exit ``status`` if it is still running ``seconds`` from now.

    The command line arms it once its Ctrl-C checkpoint is on disk: whatever still
    blocks the way out then (an input-pipeline thread stuck in a read that never
    returns and the iterator's destructor waiting for it, a thread that never ends)
    costs ``seconds`` instead of a process that never exits. Python's tracebacks are
    written to stderr a second before (while faulthandler still runs: not for a hang
    late in interpreter finalisation), so the log shows what was blocking; stdout and
    stderr are flushed now, since the exit skips Python's own flushing.

    The deadline is a C-level timer, not a Python watchdog thread: once interpreter
    shutdown has begun, Python ends every other thread the moment it asks for the GIL,
    and the objects still alive (tf.data iterators among them) are destroyed after that
    point, so a Python thread could not end a hang there. Where the C library has no
    ``SIGEV_THREAD`` timer, faulthandler's watchdog thread (also free of the GIL) ends
    the process instead, with status 1.

    Returns:
        What will end the process: ``"timer"``, ``"faulthandler"`` or ``"none"``.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    armed = _arm_exit_timer(seconds, status)
    try:
        faulthandler.dump_traceback_later(
            max(seconds - 1.0, 0.1) if armed else seconds, exit=not armed,
            file=sys.__stderr__,
        )
    except (AttributeError, OSError, ValueError, RuntimeError):
        # No file descriptor behind stderr: no tracebacks (and no fallback exit).
        return "timer" if armed else "none"
    return "timer" if armed else "faulthandler"


class NonFiniteGuard(keras.callbacks.Callback):
    """Reports steps skipped for a NaN/Inf loss or gradient, with the batch's utterances.

    ``GradTTS.train_step`` already leaves the weights untouched on such a step; this
    names the batch (``describe_batch(step)``) on stderr and in ``nonfinite.log``,
    and stops training after ``max_consecutive`` skipped steps in a row.
    """

    def __init__(
        self,
        progress: Progress,
        describe_batch: Callable[[int], list[str]],
        max_consecutive: int = 100,
        log_file: Path | None = None,
    ):
        super().__init__()
        self.progress = progress
        self.describe_batch = describe_batch
        self.max_consecutive = max_consecutive
        self.log_file = log_file
        self.count = 0
        self.consecutive = 0
        self.reports: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.count = 0

    def on_train_batch_end(self, batch, logs=None):
        fraction = (logs or {}).get("nonfinite")
        if fraction is None:
            return
        count = int(round(float(fraction) * (batch + 1)))
        if count <= self.count:
            self.consecutive = 0
            return
        self.count = count
        self.consecutive += 1
        step = self.progress.step
        uids = self.describe_batch(step)
        report = {"step": step, "uids": uids, "loss": logs.get("loss")}
        self.reports.append(report)
        msg = (f"step {step}: non-finite loss or gradient, update skipped; batch: "
               f"{', '.join(uids)}")
        logger.warning(msg)
        print(f"\nWARNING {msg}", flush=True)
        if self.log_file is not None:
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(report) + "\n")
        if self.max_consecutive and self.consecutive >= self.max_consecutive:
            raise TrainingDiverged(
                f"{self.consecutive} consecutive steps had a non-finite loss or gradient "
                f"(last at step {step}); the weights were not updated by them. Lower "
                "train.learning_rate or check the data listed in nonfinite.log, then "
                "resume from the last checkpoint."
            )


# ---------------------------------------------------------------------------------
# Logging


def _scalar(value) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class TrainLogger(keras.callbacks.Callback):
    """TensorBoard scalars against the global step.

    Every ``every`` steps (and at each epoch's last step): the mean of each loss and
    gradient norm over those steps, the fraction of skipped steps, the learning
    rate, seconds per step, examples per second (and the loss scale under
    ``mixed_float16``). At each validation: the validation losses, under the same
    tags in ``logs/validation`` so TensorBoard overlays them on the training curves.
    With ``progress_file``, the step and the logged values are also written there as
    JSON at every log (for scripts watching a run).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        progress: Progress,
        every: int = 50,
        chief: bool = True,
        progress_file: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.progress_file = Path(progress_file) if progress_file else None
        self.progress = progress
        self.every = max(1, every)
        self._writers: dict = {}
        self._last: dict[str, tuple[float, float]] = {}
        self._t0: float | None = None
        self._steps = 0
        self.chief = chief

    def _writer(self, name: str):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def _totals(self) -> dict[str, tuple[float, float]]:
        return {
            name: (_scalar(t.total), _scalar(t.count))
            for name, t in self.model.trackers.items()
        }

    def on_epoch_begin(self, epoch, logs=None):
        # fit() has just reset the trackers.
        self._last = {name: (0.0, 0.0) for name in self.model.trackers}

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._t0 is None:
            # The first step includes tracing, and one follows validation: time from
            # their end.
            self._t0, self._steps = now, 0
        else:
            self._steps += 1
        last_of_epoch = _last_of_epoch(self, batch)
        if not (self.progress.step % self.every == 0 or last_of_epoch):
            return
        # Every worker reads the trackers: under multi-worker training that read is a
        # collective operation.
        totals = self._totals()
        if not self.chief:
            return
        step = self.progress.step
        values = {}
        for name, (total, count) in totals.items():
            prev_total, prev_count = self._last.get(name, (0.0, 0.0))
            if count > prev_count:
                values[name] = (total - prev_total) / (count - prev_count)
        values["learning_rate"] = _scalar(self.model.optimizer.learning_rate)
        state = getattr(self.model, "_training_state", None)
        if state is not None and state.loss_scale is not None:
            values["loss_scale"] = _scalar(state.loss_scale)
        if self._steps:
            elapsed = now - self._t0
            values["step_time"] = elapsed / self._steps
            values["examples_per_sec"] = self._steps * self.progress.batch_size / elapsed
            self._t0, self._steps = now, 0
        with self._writer("train").as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step)
        self._last = totals
        if self.progress_file is not None:
            tmp = self.progress_file.with_name(f".tmp-{self.progress_file.name}")
            tmp.write_text(json.dumps({"step": step, "epoch": self.progress.epoch, **values}))
            os.replace(tmp, self.progress_file)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not self.chief or "val_loss" not in logs:
            return
        with self._writer("validation").as_default():
            for key, value in logs.items():
                if key.startswith("val_"):
                    tf.summary.scalar(key[4:], float(value), self.progress.step)
        for w in self._writers.values():
            w.flush()
        # Validation time is not training time.
        self._t0 = None

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers = {}

    def on_train_end(self, logs=None):
        self.close()


def render_sample_png(target, encoder, decoder, attn, title: str = "") -> bytes:
    """Target vs predicted mel (encoder ``mu_y``, decoder) and alignment, as PNG bytes.

    Args:
        target: ``[T, n_mels]`` ground-truth mel.
        encoder: ``[T', n_mels]`` aligned encoder output.
        decoder: ``[T', n_mels]`` decoder output.
        attn: ``[T_x, T']`` alignment.
        title: Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 11))
    target = np.asarray(target)
    # The predicted mels share the target's colour scale, so they compare at a glance.
    mel_range = {"vmin": float(target.min()), "vmax": float(target.max())}
    panels = (
        ("target mel", target.T, mel_range),
        ("encoder output (mu_y)", np.asarray(encoder).T, mel_range),
        ("decoder output", np.asarray(decoder).T, mel_range),
        ("alignment (token x frame)", np.asarray(attn), {}),
    )
    for ax, (name, image, scale) in zip(axes, panels, strict=True):
        im = ax.imshow(image, origin="lower", aspect="auto", interpolation="none", **scale)
        ax.set_title(name)
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


class SampleLogger(keras.callbacks.Callback):
    """After every ``every``-th validation: mel/alignment images and synthesis audio.

    Synthesises fixed validation utterances with the EMA weights (when on) and a
    fixed noise seed, and logs, per utterance, a figure of the target mel, the
    encoder and decoder outputs and the alignment (TensorBoard image; PNG files in
    ``png_dir`` when given) and the Griffin-Lim audio of the decoder output
    (TensorBoard audio; WAV files in ``png_dir``).
    """

    def __init__(
        self,
        samples: list[dict],
        log_dir: str | os.PathLike,
        progress: Progress,
        audio_config,
        every: int = 1,
        n_timesteps: int = 10,
        png_dir: str | os.PathLike | None = None,
        chief: bool = True,
        temperature: float = 1.5,
        length_scale: float = 1.0,
        griffin_lim=None,
    ):
        super().__init__()
        self.samples = samples
        # The voice's synthesis settings (the config's `inference` section), so the
        # logged samples sound as the trained voice will.
        self.temperature = temperature
        self.length_scale = length_scale
        self.griffin_lim = griffin_lim  # GriffinLimConfig; None: its defaults
        self.log_dir = Path(log_dir)
        self.progress = progress
        self.audio = audio_config
        self.every = every
        self.n_timesteps = n_timesteps
        self.png_dir = Path(png_dir) if png_dir else None
        self.validations = 0
        self.chief = chief
        self.written: list[Path] = []

    def on_epoch_end(self, epoch, logs=None):
        if "val_loss" not in (logs or {}) or not self.every or not self.samples:
            return
        self.validations += 1
        if (self.validations - 1) % self.every == 0 and self.chief:
            self.log_samples()

    def log_samples(self) -> None:
        """Synthesises and logs every sample at the current step."""
        from gradtts_tf.audio import save_audio
        from gradtts_tf.vocoder import GriffinLimVocoder

        step = self.progress.step
        writer = tf.summary.create_file_writer(str(self.log_dir / "samples"))
        if self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
        a = self.audio
        vocoder = GriffinLimVocoder(a, self.griffin_lim)
        with EMAWeights(self.model), writer.as_default():
            for i, sample in enumerate(self.samples):
                ids = np.asarray(sample["ids"], np.int32)[None]  # [1, T_x]
                spk = None
                if self.model.n_spks > 1:
                    spk = np.array([sample.get("speaker", 0)], np.int32)
                out = self.model.synthesise(
                    ids, np.array([ids.shape[1]], np.int32), n_timesteps=self.n_timesteps,
                    temperature=self.temperature, length_scale=self.length_scale, spk=spk,
                    seed=i,
                )
                n = int(out["mel_lengths"][0])
                decoder = out["model_outputs"][0, :n].numpy()
                encoder = out["encoder_outputs"][0, :n].numpy()
                attn = out["attn"][0, : ids.shape[1], :n].numpy()
                name = f"{i}_{sample['uid']}"
                png = render_sample_png(sample["mel"], encoder, decoder, attn,
                                        f"{sample['uid']} at step {step}")
                tf.summary.image(f"{name}/mel", tf.image.decode_png(png)[None], step)
                audio = vocoder(decoder[None])[0]  # float32 [samples] in [-1, 1]
                tf.summary.audio(f"{name}/audio", audio[None, :, None], a.sample_rate, step)
                if self.png_dir is not None:
                    stem = self.png_dir / f"step{step:08d}_{name}"
                    stem.with_suffix(".png").write_bytes(png)
                    save_audio(stem.with_suffix(".wav"), audio, a.sample_rate)
                    self.written += [stem.with_suffix(".png"), stem.with_suffix(".wav")]
        writer.close()
