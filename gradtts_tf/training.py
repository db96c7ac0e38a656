"""Training with `model.fit`: strategy, optimizer, resume, warm start, callbacks.

A run folder holds:

- ``config.yaml``: the config trained with (a rerun with an incompatible one is refused);
- ``checkpoints/ckpt-<step>/``: the last ``train.keep_last`` checkpoints plus the best
  by validation loss (weights, optimizer state incl. EMA, step, epoch, data position,
  random-generator states; written atomically, see `gradtts_tf.callbacks`);
- ``model.weights.h5``: the weights for synthesis (the EMA weights when
  ``train.ema_decay > 0``), refreshed at every checkpoint;
- ``logs/`` (TensorBoard: ``train``, ``validation``, ``samples``), ``history.csv``,
  ``progress.json`` (the last logged step and values), ``images/`` (with
  ``train.png_logs``) and ``nonfinite.log`` (skipped batches).

One fit "epoch" is one checkpoint interval (``train.checkpoint_every_steps``, or one
pass over the training split when 0). The training split is read as an endless stream
in a fixed order per data epoch (`data_function.stream_order`), and a checkpoint stores
the stream position, so a resumed run sees exactly the batches the interrupted run
would have seen next (with ``data.bucketing`` up to the few utterances waiting in the
bucket buffers). Rerunning ``train.py`` on the folder resumes from the newest
checkpoint that loads.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import math
import os
import re
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gradtts_tf import callbacks as cb
from gradtts_tf.config import Config, TrainConfig, load_config
from gradtts_tf.keras_internals import drop_eval_iterator
from gradtts_tf.model import GradTTS
from gradtts_tf.optimizers import FusedAdam
from gradtts_tf.runtime import set_cpu_math
from gradtts_tf.voices import resolve_voice


class RunError(ValueError):
    """A run that cannot start as asked (incompatible folder, bad setup); the message
    says what to change."""


def use_xla(setting: str) -> bool:
    """Resolves ``train.jit_compile`` ("auto" means: only when a GPU is visible)."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """Creates the `tf.distribute` strategy named by ``train.strategy``.

    ``mirrored`` uses every local GPU, or every logical CPU device when there is no
    GPU (one, unless split with `tf.config.set_logical_device_configuration`).
    ``multiworker`` reads the cluster from the ``TF_CONFIG`` environment variable and
    must be created before TensorFlow runs any op.
    """
    if name == "default":
        return None
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise RunError(
                "--strategy multiworker needs the TF_CONFIG environment variable, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant, exponential or step decay, floored at ``min_lr``.

    ``lr(s) = max(lr * d(s - warmup), min_lr) * min(1, (s + 1) / warmup)`` with
    ``d(u) = 1``, ``rate ** (u / decay_steps)`` or ``rate ** floor(u / decay_steps)``;
    ``s`` counts optimizer updates.
    """

    def __init__(
        self,
        learning_rate: float,
        kind: str = "constant",
        warmup_steps: int = 0,
        decay_rate: float = 0.5,
        decay_steps: int = 100000,
        min_lr: float = 0.0,
    ):
        self.learning_rate = learning_rate
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.min_lr = min_lr

    def __call__(self, step):
        step = tf.cast(step, "float32")
        after = tf.maximum(step - float(self.warmup_steps), 0.0) / float(self.decay_steps)
        if self.kind == "exponential":
            lr = self.learning_rate * tf.pow(self.decay_rate, after)
        elif self.kind == "step":
            lr = self.learning_rate * tf.pow(self.decay_rate, tf.floor(after))
        else:
            lr = tf.constant(self.learning_rate, "float32")
        lr = tf.maximum(lr, self.min_lr)
        if self.warmup_steps > 0:
            lr = lr * tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate, "kind": self.kind,
            "warmup_steps": self.warmup_steps, "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps, "min_lr": self.min_lr,
        }


def learning_rate(train: TrainConfig) -> float | WarmupDecay:
    """The optimizer's learning rate: a float when constant, else a `WarmupDecay`."""
    if train.lr_schedule == "constant" and not train.warmup_steps:
        return train.learning_rate
    return WarmupDecay(
        train.learning_rate, train.lr_schedule, train.warmup_steps, train.lr_decay_rate,
        train.lr_decay_steps, train.min_learning_rate,
    )


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets Keras' global dtype policy while a model is built, then restores it."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(
    config: Config,
    jit_compile: bool | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> GradTTS:
    """Builds and compiles `GradTTS` for training, with its optimizer state created.

    Adam (`FusedAdam`: Keras' Adam with an in-place update kernel) at the official
    settings (torch defaults: betas 0.9/0.999, eps 1e-8) and
    ``train.learning_rate`` with the configured schedule; EMA of the weights when
    ``train.ema_decay > 0`` (Keras' ``use_ema``); gradient accumulation and dynamic
    loss scaling (``mixed_float16``) by `GradTTS.configure_training`. Built in
    ``strategy``'s scope when given, under ``train.precision``.
    """
    t = config.train
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope, dtype_policy(t.precision):
        model = GradTTS.from_config_tree(config)
        optimizer = FusedAdam(
            learning_rate=learning_rate(t), beta_1=t.adam_beta1, beta_2=t.adam_beta2,
            epsilon=t.adam_epsilon, use_ema=t.ema_decay > 0,
            ema_momentum=t.ema_decay if t.ema_decay > 0 else 0.99,
        )
        model.compile(
            optimizer=optimizer,
            jit_compile=use_xla(t.jit_compile) if jit_compile is None else jit_compile,
            # train_step scales the loss itself (GradTTS.configure_training).
            auto_scale_loss=False,
        )
        model.configure_training(
            grad_accum_steps=t.grad_accum_steps, loss_scaling=t.precision == "mixed_float16"
        )
    return model


# ---------------------------------------------------------------------------------
# Run folders: compatibility, warm start


def _flat(config: Config) -> dict[str, object]:
    return {
        f"{section}.{key}": value
        for section, values in config.to_dict().items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


# What a checkpoint depends on: the weights' meaning, the features, the split, and
# the optimizer state's layout (EMA on/off, accumulation on/off, loss scaling).
_STATE_KEYS = (
    re.compile(r"^(audio|text|model)\."),
    re.compile(r"^data\.(n_val|val_fraction|split_seed|max_text_len|max_mel_len)$"),
)
_LAYOUT = {
    "train.ema_decay": lambda v: v > 0,
    "train.grad_accum_steps": lambda v: v > 1,
    "train.precision": lambda v: v == "mixed_float16",
}


def config_differences(run: Config, given: Config) -> tuple[list[str], list[str]]:
    """Compares a run's saved config with a new one.

    Returns:
        ``(incompatible, changed)``: lines ``key: run value -> given value``; the
        first list holds what a checkpoint of the run cannot be resumed with.
    """
    a, b = _flat(run), _flat(given)
    incompatible, changed = [], []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        line = f"{key}: {a.get(key)!r} in the run, {b.get(key)!r} given"
        layout = _LAYOUT.get(key)
        if any(p.match(key) for p in _STATE_KEYS) or (
            layout is not None and layout(a.get(key)) != layout(b.get(key))
        ):
            incompatible.append(line)
        elif key.startswith("train.") or key.startswith("data."):
            changed.append(line)
    return incompatible, changed


def _strip_model_name(path: str) -> str:
    """``grad_tts_3/encoder/emb/embeddings`` -> ``encoder/emb/embeddings``."""
    return path.split("/", 1)[1] if "/" in path else path


def resolve_weights(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """Finds the weights file and its ``config.yaml`` for ``--warm-start``.

    ``source`` may be a ``.weights.h5`` file, a checkpoint directory, a run folder
    (its ``model.weights.h5``, else its newest checkpoint), an installed voice's name
    or a converted official checkpoint folder. The config is looked up beside the file
    and up to two folders above.
    """
    p = resolve_voice(source)
    if p.is_dir():
        ckpts = cb.list_checkpoints(p)
        for candidate in (
            p / cb.STATE_WEIGHTS, p / "model.weights.h5",
            ckpts[-1] / cb.STATE_WEIGHTS if ckpts else None,
        ):
            if candidate is not None and candidate.is_file():
                p = candidate
                break
        else:
            raise RunError(
                f"{source}: no model.weights.h5 or checkpoints/ to warm-start from"
            )
    elif not p.is_file():
        raise RunError(f"--warm-start: {source} not found")
    for folder in (p.parent, p.parent.parent, p.parent.parent.parent):
        if (folder / "config.yaml").is_file():
            return p, folder / "config.yaml"
    return p, None


def warm_start(
    model: GradTTS,
    source: str | os.PathLike,
    ignore_layers: str | None = None,
    config: Config | None = None,
    verbose: bool = True,
) -> dict[str, list]:
    """Initialises ``model``'s weights from another run or converted checkpoint.

    The source is built from its own ``config.yaml`` (``config`` when it has none),
    loaded, and every weight is copied by path (``encoder/emb/embeddings``, ...)
    unless its path matches ``ignore_layers`` (a regular expression searched in the
    path) or the source lacks it or has another shape. The optimizer starts fresh.

    Returns:
        Dict of lists: ``loaded``, ``ignored``, ``shape`` (``(path, source shape,
        new shape)``), ``missing`` (not in the source) and ``unused`` (source only).
    """
    weights_file, config_file = resolve_weights(source)
    src_config = load_config(config_file) if config_file is not None else config
    if src_config is None:
        raise RunError(
            f"no config.yaml beside {weights_file}: warm-starting needs the source's config"
        )
    with dtype_policy("float32"):
        src = GradTTS.from_config_tree(src_config)
    try:
        src.load_weights(weights_file)
    except ValueError as e:
        raise RunError(f"{weights_file} does not match {config_file}: {e}") from e
    src_vars = {_strip_model_name(v.path): v for v in src.weights}
    pattern = re.compile(ignore_layers) if ignore_layers else None
    report: dict[str, list] = {"loaded": [], "ignored": [], "shape": [], "missing": []}
    for var in model.weights:
        path = _strip_model_name(var.path)
        if pattern is not None and pattern.search(path):
            report["ignored"].append(path)
        elif path not in src_vars:
            report["missing"].append(path)
        elif tuple(src_vars[path].shape) != tuple(var.shape):
            report["shape"].append((path, tuple(src_vars[path].shape), tuple(var.shape)))
        else:
            var.assign(src_vars[path].numpy())
            report["loaded"].append(path)
    targets = {_strip_model_name(v.path) for v in model.weights}
    report["unused"] = sorted(set(src_vars) - targets)
    if verbose:
        print(format_warm_start(report, weights_file))
    return report


def format_warm_start(report: dict[str, list], source: Path | str) -> str:
    """A readable account of `warm_start`'s report."""
    total = sum(len(report[k]) for k in ("loaded", "ignored", "shape", "missing"))
    lines = [f"warm start from {source}: {len(report['loaded'])} of {total} weights loaded"]

    def some(items):
        shown = ", ".join(str(i) for i in items[:8])
        return shown + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

    if report["ignored"]:
        lines.append(f"  skipped {len(report['ignored'])} (--ignore-layers): "
                     f"{some(report['ignored'])}")
    if report["shape"]:
        shapes = [f"{p} {a} -> {b}" for p, a, b in report["shape"]]
        lines.append(f"  skipped {len(shapes)} (shape differs): {some(shapes)}")
    if report["missing"]:
        lines.append(f"  kept initial values of {len(report['missing'])} not in the source: "
                     f"{some(report['missing'])}")
    if report.get("unused"):
        lines.append(f"  {len(report['unused'])} source weights unused: "
                     f"{some(report['unused'])}")
    return "\n".join(lines)


def restore_latest(model: GradTTS, out: str | os.PathLike) -> tuple[Path, dict] | None:
    """Loads the newest checkpoint of a run folder that loads; an unreadable one
    (damaged disk, a file truncated by hand) is reported and an older one tried.

    Returns:
        ``(checkpoint directory, its state.json)``, or ``None`` when none loads.
    """
    for ckpt in reversed(cb.list_checkpoints(out)):
        try:
            return ckpt, cb.restore_checkpoint(model, ckpt)
        except Exception as e:  # noqa: BLE001 - whatever the damage, try an older one
            print(f"WARNING: cannot load {ckpt} ({type(e).__name__}: {e}); trying an older one",
                  file=sys.stderr)
    return None


def _apply_learning_rate(model: GradTTS, t: TrainConfig) -> None:
    """Makes a resumed run use the configured constant learning rate.

    Keras saves a constant learning rate as an optimizer variable, so loading a
    checkpoint would silently bring back the old one (``--set train.learning_rate``
    on resume, e.g. a lower rate for the last steps, would do nothing). A schedule is
    rebuilt from the config and needs nothing.
    """
    lr = model.optimizer.learning_rate
    if isinstance(lr, keras.Variable):
        lr.assign(t.learning_rate)


def _truncate_history(path: Path, epochs_done: int) -> None:
    """Drops ``history.csv`` rows of epochs after the checkpoint being resumed."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    col = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[col])) < epochs_done]
    if len(kept) != len(rows):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)


def _samples(entries: list[dict], config: Config, n: int) -> list[dict]:
    """The first ``n`` validation utterances: ids and target mel for `SampleLogger`."""
    from gradtts_tf.audio import load_audio, mel_from_config

    out = []
    for e in entries[:n]:
        if e.get("mel_path"):
            mel = np.load(e["mel_path"])
        else:
            audio = load_audio(e["audio_path"], config.audio.sample_rate)
            mel = np.asarray(mel_from_config(audio, config.audio))
        out.append({"uid": e["uid"], "ids": e["ids"], "mel": mel, "speaker": e["speaker"]})
    return out


def _release_input_pipelines(model: GradTTS) -> None:
    """Destroys the tf.data iterators `fit` leaves behind, so their threads stop now.

    When `fit` is left by an exception (Ctrl-C), Keras keeps its validation iterator
    on the model, and the training iterator (the endless stream, with its prefetch and
    map threads) stays alive in reference cycles until the next full garbage
    collection, often the one at interpreter shutdown. Destroying an iterator cancels
    its threads and waits for a generator call in flight (a read of the corpus); at
    shutdown that wait has no bound, and Python by then refuses the GIL to every other
    thread. Collected here, it happens in a running interpreter and, after a Ctrl-C
    of ``train.py``, within its exit deadline (`GracefulInterrupt`).
    """
    drop_eval_iterator(model)
    gc.collect()


# ---------------------------------------------------------------------------------
# train()


def train(
    config: Config,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    jit_compile: bool | None = None,
    verbose: int | str = "auto",
    warm_start_from: str | os.PathLike | None = None,
    ignore_layers: str | None = None,
    exit_deadline: float | None = None,
) -> keras.callbacks.History:
    """Trains Grad-TTS on a corpus, resuming when ``out_dir`` holds checkpoints.

    Args:
        config: The config tree.
        data_path: LJSpeech folder or Grad-TTS filelist.
        out_dir: Run folder (created; reused to resume).
        epochs: Total fit epochs (checkpoint intervals); overrides ``train.epochs``.
        steps_per_epoch: Steps per fit epoch; overrides ``train.checkpoint_every_steps``.
        jit_compile: Overrides ``train.jit_compile``.
        verbose: Passed to `fit`.
        warm_start_from: Initial weights for a new run (see `warm_start`).
        ignore_layers: Regular expression of weight paths not to warm-start.
        exit_deadline: Only for a process that ends when an interrupted run returns
            (``train.py``): once the Ctrl-C/SIGTERM checkpoint is on disk, the process
            is ended with status 130 this many seconds later unless it has exited by
            then (`gradtts_tf.callbacks.arm_exit_deadline`).

    Returns:
        The Keras `History`, with extra attributes ``progress`` (`Progress`),
        ``interrupted`` (Ctrl-C/SIGTERM) and ``nonfinite`` (skipped-batch reports).

    Raises:
        RunError: ``out_dir`` holds a run of an incompatible config, or
            ``warm_start_from`` is given for a run that has checkpoints.
        gradtts_tf.callbacks.TrainingDiverged: Too many non-finite steps in a row.
    """
    from gradtts_tf.data import build_dataset, prepare_corpus, stream_order

    t = config.train
    # First: oneDNN's precision and MultiWorkerMirroredStrategy are fixed by the first op.
    set_cpu_math(t.cpu_math)
    strategy = make_strategy(t.strategy)
    chief = cb.is_chief(strategy)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    changed: list[str] = []
    if saved.exists():
        incompatible, changed = config_differences(load_config(saved), config)
        if incompatible:
            raise RunError(
                f"{out} holds a run with a different model or data setup than the config "
                "given; it cannot be resumed with it:\n  " + "\n  ".join(incompatible)
                + f"\nResume with the same settings, or use a new --out folder (add "
                f"--warm-start {out} to start from its weights)."
            )
    resuming = bool(cb.list_checkpoints(out))
    if resuming and warm_start_from is not None:
        raise RunError(
            f"{out} already has checkpoints: rerun without --warm-start to resume it, or "
            "warm-start into a new --out folder"
        )
    if chief:
        config.save(saved)

    manifest = prepare_corpus(data_path, config, progress=chief)
    train_entries = manifest.split("train", config)
    val_entries = manifest.split("val", config)
    n_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    batch = t.batch_size
    if batch % n_replicas:
        raise RunError(
            f"train.batch_size={batch} (the global batch) is not divisible by the "
            f"{n_replicas} replicas"
        )
    if len(train_entries) < batch:
        raise RunError(
            f"{len(train_entries)} training utterances are fewer than one batch of {batch}"
        )
    steps_per_epoch = steps_per_epoch or t.checkpoint_every_steps or len(train_entries) // batch
    validation_freq = max(1, round(t.val_every_steps / steps_per_epoch)) if t.val_every_steps else 1
    total_epochs = epochs or t.epochs

    # Initial weights and every unseeded draw follow train.seed, as the official
    # trainer's torch.manual_seed: two runs of one config start from the same weights.
    keras.utils.set_random_seed(t.seed)
    model = build_model(config, jit_compile, strategy)
    progress = cb.Progress(batch_size=batch)
    removed = cb.clean_partial(out) if chief else []
    if removed:
        print(f"removed unfinished checkpoint writes: {', '.join(removed)}")
    resumed_from = None
    restored = restore_latest(model, out)
    if restored is not None:
        resumed_from, state = restored
        progress.step, progress.epoch = state["step"], state["epoch"]
        progress.in_epoch = state.get("in_epoch", 0)
        progress.start_position = state["position"]
        # Interrupted after an epoch's last step but before its end: that epoch is done.
        progress.epoch += progress.in_epoch // steps_per_epoch
        progress.in_epoch %= steps_per_epoch
    if resumed_from is None and cb.list_checkpoints(out):
        raise RunError(
            f"no checkpoint in {out / 'checkpoints'} loads (see the warnings above); move "
            "the damaged ones away to resume from an older one, or use a new --out folder"
        )
    if resumed_from is None and warm_start_from is not None:
        warm_start(model, warm_start_from, ignore_layers, config=config)
    if resumed_from is not None:
        _apply_learning_rate(model, t)
    progress.start_step = progress.step

    options = tf.data.Options()
    # from_generator cannot be sharded by file: every worker reads the stream and
    # keeps its part of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def train_dataset() -> tf.data.Dataset:
        ds = build_dataset(data_path, config, "train", manifest=manifest,
                           start=progress.position)
        return ds.with_options(options)

    val_ds = None
    if val_entries:
        val_ds = build_dataset(data_path, config, "val", manifest=manifest).with_options(options)
        # A known length: Keras then ends validation without an "out of data" warning.
        val_ds = val_ds.apply(
            tf.data.experimental.assert_cardinality(math.ceil(len(val_entries) / batch))
        )

    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    devices = strategy.extended.worker_devices if strategy is not None else [
        d.name for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")
    ]
    print(
        f"model: {n_params:,} trainable parameters; devices: {list(devices)}; strategy: "
        f"{t.strategy} ({n_replicas} replica{'s' if n_replicas > 1 else ''}, "
        f"{batch // n_replicas} per replica); precision: {t.precision}; "
        f"jit_compile: {model.jit_compile}"
    )
    print(
        f"schedule: {steps_per_epoch} steps per epoch (checkpoint interval), validation "
        f"every {validation_freq} epoch(s), {total_epochs} epochs; lr {t.learning_rate} "
        f"({t.lr_schedule}, warm-up {t.warmup_steps}); grad accumulation "
        f"{t.grad_accum_steps}; EMA {t.ema_decay or 'off'}"
    )
    if resumed_from is not None:
        print(f"resuming from {resumed_from}: step {progress.step}, epoch {progress.epoch}")
        for line in changed:
            print(f"  changed: {line}")
    if progress.epoch >= total_epochs:
        print(f"{out} has already trained {progress.epoch} of {total_epochs} epochs")

    n_train = len(train_entries)
    orders: dict[int, np.ndarray] = {}

    def describe_batch(step: int) -> list[str]:
        first = progress.start_position + (step - progress.start_step - 1) * batch
        uids = []
        for pos in range(first, first + batch):
            epoch, i = divmod(pos, n_train)
            if epoch not in orders:
                orders[epoch] = stream_order(n_train, t.seed, epoch)
            uids.append(train_entries[orders[epoch][i]]["uid"])
        return uids

    with dtype_policy("float32"):
        export_model = GradTTS.from_config_tree(config)
    checkpointer = cb.Checkpointer(out, progress, t.keep_last, export_model, chief=chief)
    interrupt = cb.GracefulInterrupt(checkpointer, exit_deadline)
    guard = cb.NonFiniteGuard(progress, describe_batch, t.max_nonfinite_steps,
                              out / "nonfinite.log" if chief else None)
    train_logger = cb.TrainLogger(out / "logs", progress, t.log_every_steps, chief=chief,
                                  progress_file=out / "progress.json")
    callbacks = [cb.StepCounter(progress), guard, train_logger, cb.ReleaseTracingMemory()]
    if t.ema_decay > 0:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=False))
    if t.log_images_every and val_entries:
        callbacks.append(cb.SampleLogger(
            _samples(val_entries, config, t.n_log_samples), out / "logs", progress,
            config.audio, t.log_images_every, t.log_synth_timesteps,
            out / "images" if t.png_logs else None, chief=chief,
            temperature=config.inference.temperature,
            length_scale=config.inference.length_scale, griffin_lim=config.griffin_lim,
        ))
    csv_logger = None
    if chief:
        # Before the checkpoint: a row written for an epoch whose checkpoint then did
        # not make it is dropped on resume (_truncate_history).
        _truncate_history(out / "history.csv", progress.epoch)
        csv_logger = keras.callbacks.CSVLogger(str(out / "history.csv"), append=True)
        callbacks.append(csv_logger)
    callbacks += [checkpointer, interrupt]

    if 0 < progress.in_epoch < steps_per_epoch:
        # Resumed mid-epoch (after Ctrl-C): that epoch is finished first, so
        # checkpoints and validations fall on the same steps as without the break.
        callbacks.insert(1, cb.FinishEpoch(steps_per_epoch - progress.in_epoch))
    interrupted = False
    try:
        model.fit(
            train_dataset(),
            validation_data=val_ds,
            epochs=total_epochs,
            initial_epoch=progress.epoch,
            steps_per_epoch=steps_per_epoch,
            validation_freq=validation_freq,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the stream is shuffled (stream_order); Keras can't shuffle it
        )
    except cb.TrainingInterrupted as e:
        interrupted = True
        where = f"; checkpoint {e.checkpoint}" if e.checkpoint else ""
        print(f"\ninterrupted at step {e.step}{where}. Rerun the same command to resume.",
              flush=True)
    finally:
        interrupt.uninstall()
        train_logger.close()
        if csv_logger is not None and getattr(csv_logger, "csv_file", None) is not None:
            csv_logger.csv_file.close()  # fit closes it only when it ends normally
    # Only once fit has returned or was interrupted: a second Ctrl-C or a crash
    # leaves at once, without waiting here for the input pipelines.
    _release_input_pipelines(model)
    if chief and not interrupted:
        cb.export_weights(model, export_model, out / "model.weights.h5")
    history = model.history
    history.progress = progress
    history.interrupted = interrupted
    history.nonfinite = guard.reports
    return history


def summarize_run(out_dir: str | os.PathLike) -> dict:
    """Newest checkpoint's ``state.json`` of a run folder (``{}`` when none)."""
    ckpts = cb.list_checkpoints(out_dir)
    return cb.read_state(ckpts[-1]) if ckpts else {}

