"""Keras callbacks of training: step counting, logging, samples, NaN guard, Ctrl-C.

Checkpoints and `Progress` (where a run stands) are in `gradtts_tf.training.checkpoints`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gradtts_tf.config import SynthesisSettings
from gradtts_tf.runtime import release_free_memory
from gradtts_tf.training.checkpoints import Checkpointer, EMAWeights, Progress
from gradtts_tf.training.exit_deadline import arm_exit_deadline

logger = logging.getLogger(__name__)

CKPT_PATTERN = re.compile(r"^ckpt-(\d+)$")
STATE_WEIGHTS = "state.weights.h5"
STATE_JSON = "state.json"
CHECKPOINT_FORMAT = 1



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
        png_dir: str | os.PathLike | None = None,
        chief: bool = True,
        settings: SynthesisSettings | None = None,
        griffin_lim=None,
    ):
        super().__init__()
        self.samples = samples
        # The voice's synthesis settings (the config's `inference` section, with
        # `train.log_synth_timesteps` steps), so the samples sound as the voice will.
        self.settings = settings or SynthesisSettings()
        self.griffin_lim = griffin_lim  # GriffinLimConfig; None: its defaults
        self.log_dir = Path(log_dir)
        self.progress = progress
        self.audio = audio_config
        self.every = every
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
                    ids, np.array([ids.shape[1]], np.int32), n_timesteps=self.settings.steps,
                    temperature=self.settings.temperature,
                    length_scale=self.settings.length_scale, spk=spk, seed=i,
                    solver=self.settings.solver,
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
