"""Run folders and checkpoints, the same for every trainer (Grad-TTS and HiFi-GAN).

A run folder holds ``config.yaml`` (the config trained with; `prepare_run_folder`
refuses a rerun whose config a checkpoint cannot be resumed with) and
``checkpoints/ckpt-<step>/`` directories, each with ``state.weights.h5`` (model
weights plus the whole optimizer state: Adam moments, step counter, EMA weights,
gradient accumulators, loss scale) and ``state.json`` (step, fit epoch and steps into
the next one, data-stream position, random-generator states, validation loss).
A checkpoint is written into a hidden temporary directory, flushed to disk and then
renamed into place, so a crash mid-write never leaves a ``ckpt-*`` that loads half.
Each save also refreshes the run's synthesis weights (the trainer's ``export`` hook).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from gradtts_tf.config import Config, load_config
from gradtts_tf.keras_internals import ema_pairs, optimizer_strategy

CKPT_PATTERN = re.compile(r"^ckpt-(\d+)$")
STATE_WEIGHTS = "state.weights.h5"
STATE_JSON = "state.json"
CHECKPOINT_FORMAT = 1


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
        export: Callable[[keras.Model], None] | None = None,
        extra_state: Callable[[], dict] | None = None,
        chief: bool = True,
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.keep_last = keep_last
        self.export = export
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
        if self.export is not None:
            self.export(self.model)
        return self.last_saved

    def on_epoch_end(self, epoch, logs=None):
        val = (logs or {}).get("val_loss")
        self.save(float(val) if val is not None else None)


class RunError(ValueError):
    """A run that cannot start as asked (incompatible folder, bad setup); the message
    says what to change."""


def _flat(config: Config) -> dict[str, object]:
    return {
        f"{section}.{key}": value
        for section, values in config.to_dict().items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


_SPLIT = re.compile(r"^data\.(n_val|val_fraction|split_seed|max_text_len|max_mel_len)$")


@dataclasses.dataclass(frozen=True)
class _Compatibility:
    """What a trainer's checkpoint depends on (``state``: settings that may not change;
    ``layout``: settings whose change alters the optimizer state's layout) and which
    settings a resumed run may change (``tunable``)."""

    state: tuple[re.Pattern, ...]
    layout: dict[str, Callable[[object], object]]
    tunable: tuple[str, ...]


# The weights' meaning, the features and the split; for Grad-TTS also EMA on/off,
# accumulation on/off and loss scaling (they add optimizer variables).
_TRAINERS = {
    "acoustic": _Compatibility(
        state=(re.compile(r"^(audio|text|model)\."), _SPLIT),
        layout={
            "train.ema_decay": lambda v: v > 0,
            "train.grad_accum_steps": lambda v: v > 1,
            "train.precision": lambda v: v == "mixed_float16",
        },
        tunable=("train.", "data."),
    ),
    "vocoder": _Compatibility(
        state=(
            re.compile(r"^audio\."),
            re.compile(r"^vocoder\.(resblock|upsample_|resblock_|mpd_|msd_)"),
            _SPLIT,
        ),
        layout={},
        tunable=("vocoder.", "data."),
    ),
}


def config_differences(
    run: Config, given: Config, trainer: str = "acoustic"
) -> tuple[list[str], list[str]]:
    """Compares a run's saved config with a new one.

    Args:
        run: The config saved in the run folder.
        given: The config of the rerun.
        trainer: ``"acoustic"`` (Grad-TTS) or ``"vocoder"`` (HiFi-GAN).

    Returns:
        ``(incompatible, changed)``: lines ``key: run value -> given value``; the
        first list holds what a checkpoint of the run cannot be resumed with.
    """
    rules = _TRAINERS[trainer]
    a, b = _flat(run), _flat(given)
    incompatible, changed = [], []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        line = f"{key}: {a.get(key)!r} in the run, {b.get(key)!r} given"
        layout = rules.layout.get(key)
        if any(p.match(key) for p in rules.state) or (
            layout is not None and layout(a.get(key)) != layout(b.get(key))
        ):
            incompatible.append(line)
        elif key.startswith(rules.tunable):
            changed.append(line)
    return incompatible, changed




def restore_latest(model: keras.Model, out: str | os.PathLike) -> tuple[Path, dict] | None:
    """Loads the newest checkpoint of a run folder that loads; an unreadable one
    (damaged disk, a file truncated by hand) is reported and an older one tried.

    Returns:
        ``(checkpoint directory, its state.json)``, or ``None`` when none loads.
    """
    for ckpt in reversed(list_checkpoints(out)):
        try:
            return ckpt, restore_checkpoint(model, ckpt)
        except Exception as e:  # noqa: BLE001 - whatever the damage, try an older one
            print(f"WARNING: cannot load {ckpt} ({type(e).__name__}: {e}); trying an older one",
                  file=sys.stderr)
    return None



def prepare_run_folder(
    out: str | os.PathLike, config: Config, trainer: str, chief: bool = True
) -> list[str]:
    """Creates a run folder, or checks that ``config`` can resume the run it holds.

    Args:
        out: The run folder.
        config: The config to train with; saved as ``config.yaml`` (chief only).
        trainer: ``"acoustic"`` (Grad-TTS) or ``"vocoder"`` (HiFi-GAN).
        chief: Whether this process writes (the chief of a multi-worker cluster).

    Returns:
        Lines naming the settings that changed since the run was saved (learning
        rate, batch size and the like, which a resumed run may change).

    Raises:
        RunError: The folder holds a run whose checkpoints ``config`` cannot resume.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    changed: list[str] = []
    if saved.exists():
        incompatible, changed = config_differences(load_config(saved), config, trainer)
        if incompatible:
            raise RunError(
                f"{out} holds a run with a different model or data setup than the config "
                "given; it cannot be resumed with it:\n  " + "\n  ".join(incompatible)
                + "\nResume with the same settings, or use a new --out folder."
            )
    if chief:
        config.save(saved)
    return changed
