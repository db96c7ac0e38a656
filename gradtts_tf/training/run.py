"""Training Grad-TTS with `model.fit`: `train` and the steps it is made of.

A run folder holds:

- ``config.yaml``: the config trained with (a rerun with an incompatible one is refused);
- ``checkpoints/ckpt-<step>/``: the last ``train.keep_last`` checkpoints plus the best
  by validation loss (weights, optimizer state incl. EMA, step, epoch, data position,
  random-generator states; written atomically, see `gradtts_tf.training.checkpoints`);
- ``model.weights.h5``: the weights for synthesis (the EMA weights when
  ``train.ema_decay > 0``), refreshed at every checkpoint;
- ``logs/`` (TensorBoard: ``train``, ``validation``, ``samples``), ``history.csv``,
  ``progress.json`` (the last logged step and values), ``images/`` (with
  ``train.png_logs``) and ``nonfinite.log`` (skipped batches).

One fit "epoch" is one checkpoint interval (``train.checkpoint_every_steps``, or one
pass over the training split when 0). The training split is read as an endless stream
in a fixed order per data epoch (`gradtts_tf.data.stream_order`), and a checkpoint
stores the stream position, so a resumed run sees exactly the batches the interrupted
run would have seen next (with ``data.bucketing`` up to the few utterances waiting in
the bucket buffers). Rerunning ``train.py`` on the folder resumes from the newest
checkpoint that loads.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gradtts_tf.cli.quiet import start_xla_quietly
from gradtts_tf.config import Config, TrainConfig
from gradtts_tf.keras_internals import drop_eval_iterator
from gradtts_tf.model import GradTTS
from gradtts_tf.runtime import set_cpu_math
from gradtts_tf.training import callbacks as cb
from gradtts_tf.training.build import build_model, dtype_policy, make_strategy
from gradtts_tf.training.checkpoints import (
    Checkpointer,
    Progress,
    RunError,
    clean_partial,
    export_weights,
    list_checkpoints,
    prepare_run_folder,
    read_state,
    restore_latest,
)
from gradtts_tf.training.warm_start import warm_start


def _apply_learning_rate(model: keras.Model, t: TrainConfig) -> None:
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


def _release_input_pipelines(model: keras.Model) -> None:
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
# The steps of train()


@dataclasses.dataclass
class TrainingData:
    """The corpus as a run uses it: its manifest, splits and fit schedule."""

    data_path: str | os.PathLike
    manifest: object
    train_entries: list[dict]
    val_entries: list[dict]
    steps_per_epoch: int
    validation_freq: int
    epochs: int


def load_training_data(
    data_path: str | os.PathLike,
    config: Config,
    n_replicas: int,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    progress: bool = True,
) -> TrainingData:
    """Reads (and on first use prepares) the corpus and derives the fit schedule.

    Raises:
        RunError: The batch does not split over the replicas, or the training split
            is smaller than one batch.
    """
    from gradtts_tf.data import prepare_corpus

    t = config.train
    manifest = prepare_corpus(data_path, config, progress=progress)
    train_entries = manifest.split("train", config)
    val_entries = manifest.split("val", config)
    if t.batch_size % n_replicas:
        raise RunError(
            f"train.batch_size={t.batch_size} (the global batch) is not divisible by the "
            f"{n_replicas} replicas"
        )
    if len(train_entries) < t.batch_size:
        raise RunError(
            f"{len(train_entries)} training utterances are fewer than one batch of "
            f"{t.batch_size}"
        )
    steps = steps_per_epoch or t.checkpoint_every_steps or len(train_entries) // t.batch_size
    return TrainingData(
        data_path=data_path, manifest=manifest, train_entries=train_entries,
        val_entries=val_entries, steps_per_epoch=steps,
        validation_freq=max(1, round(t.val_every_steps / steps)) if t.val_every_steps else 1,
        epochs=epochs or t.epochs,
    )


def resume_or_start(
    model: keras.Model,
    out: Path,
    config: Config,
    steps_per_epoch: int,
    warm_start_from: str | os.PathLike | None = None,
    ignore_layers: str | None = None,
    chief: bool = True,
) -> tuple[Progress, Path | None]:
    """Loads the run's newest checkpoint that loads, or warm-starts a new run.

    Returns:
        ``(progress, the checkpoint resumed from or None)``.

    Raises:
        RunError: The run has checkpoints but none loads.
    """
    progress = Progress(batch_size=config.train.batch_size)
    removed = clean_partial(out) if chief else []
    if removed:
        print(f"removed unfinished checkpoint writes: {', '.join(removed)}")
    restored = restore_latest(model, out)
    if restored is None and list_checkpoints(out):
        raise RunError(
            f"no checkpoint in {out / 'checkpoints'} loads (see the warnings above); move "
            "the damaged ones away to resume from an older one, or use a new --out folder"
        )
    if restored is None:
        if warm_start_from is not None:
            warm_start(model, warm_start_from, ignore_layers, config=config)
        return progress, None
    resumed_from, state = restored
    progress.step, progress.epoch = state["step"], state["epoch"]
    progress.in_epoch = state.get("in_epoch", 0)
    progress.start_position = state["position"]
    # Interrupted after an epoch's last step but before its end: that epoch is done.
    progress.epoch += progress.in_epoch // steps_per_epoch
    progress.in_epoch %= steps_per_epoch
    progress.start_step = progress.step
    _apply_learning_rate(model, config.train)
    return progress, resumed_from


def make_datasets(
    data: TrainingData, config: Config, progress: Progress
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """The endless training stream from the progress' position, and the validation set."""
    from gradtts_tf.data import build_dataset

    options = tf.data.Options()
    # from_generator cannot be sharded by file: every worker reads the stream and
    # keeps its part of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = build_dataset(data.data_path, config, "train", manifest=data.manifest,
                             start=progress.position).with_options(options)
    if not data.val_entries:
        return train_ds, None
    val_ds = build_dataset(data.data_path, config, "val", manifest=data.manifest)
    # A known length: Keras then ends validation without an "out of data" warning.
    val_ds = val_ds.with_options(options).apply(tf.data.experimental.assert_cardinality(
        math.ceil(len(data.val_entries) / config.train.batch_size)
    ))
    return train_ds, val_ds


def describe_run(
    out: Path,
    model: keras.Model,
    config: Config,
    data: TrainingData,
    strategy: tf.distribute.Strategy | None,
    progress: Progress,
    resumed_from: Path | None,
    changed: list[str],
) -> None:
    """Prints the model size, devices, schedule and where the run starts."""
    t = config.train
    n_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    devices = strategy.extended.worker_devices if strategy is not None else [
        d.name for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")
    ]
    print(
        f"model: {n_params:,} trainable parameters; devices: {list(devices)}; strategy: "
        f"{t.strategy} ({n_replicas} replica{'s' if n_replicas > 1 else ''}, "
        f"{t.batch_size // n_replicas} per replica); precision: {t.precision}; "
        f"jit_compile: {model.jit_compile}"
    )
    print(
        f"schedule: {data.steps_per_epoch} steps per epoch (checkpoint interval), "
        f"validation every {data.validation_freq} epoch(s), {data.epochs} epochs; lr "
        f"{t.learning_rate} ({t.lr_schedule}, warm-up {t.warmup_steps}); grad "
        f"accumulation {t.grad_accum_steps}; EMA {t.ema_decay or 'off'}"
    )
    if resumed_from is not None:
        print(f"resuming from {resumed_from}: step {progress.step}, epoch {progress.epoch}")
        for line in changed:
            print(f"  changed: {line}")
    if progress.epoch >= data.epochs:
        print(f"{out} has already trained {progress.epoch} of {data.epochs} epochs")


@dataclasses.dataclass
class TrainingCallbacks:
    """The callbacks of one `fit`, and those `train` needs to reach afterwards."""

    callbacks: list[keras.callbacks.Callback]
    interrupt: cb.GracefulInterrupt
    guard: cb.NonFiniteGuard
    train_logger: cb.TrainLogger
    csv_logger: keras.callbacks.CSVLogger | None


def make_callbacks(
    out: Path,
    config: Config,
    data: TrainingData,
    progress: Progress,
    export_model: GradTTS,
    chief: bool = True,
    exit_deadline: float | None = None,
) -> TrainingCallbacks:
    """Step counting, NaN guard, logs, samples, EMA swap, history, checkpoints, Ctrl-C."""
    t = config.train
    batch, n_train = t.batch_size, len(data.train_entries)
    orders: dict[int, np.ndarray] = {}

    def describe_batch(step: int) -> list[str]:
        """The utterance ids of a step's batch (for the non-finite report)."""
        from gradtts_tf.data import stream_order

        first = progress.start_position + (step - progress.start_step - 1) * batch
        uids = []
        for pos in range(first, first + batch):
            epoch, i = divmod(pos, n_train)
            if epoch not in orders:
                orders[epoch] = stream_order(n_train, t.seed, epoch)
            uids.append(data.train_entries[orders[epoch][i]]["uid"])
        return uids

    def export(model: keras.Model) -> None:
        export_weights(model, export_model, out / "model.weights.h5")

    checkpointer = Checkpointer(out, progress, t.keep_last, export, chief=chief)
    interrupt = cb.GracefulInterrupt(checkpointer, exit_deadline)
    guard = cb.NonFiniteGuard(progress, describe_batch, t.max_nonfinite_steps,
                              out / "nonfinite.log" if chief else None)
    train_logger = cb.TrainLogger(out / "logs", progress, t.log_every_steps, chief=chief,
                                  progress_file=out / "progress.json")
    callbacks = [cb.StepCounter(progress), guard, train_logger, cb.ReleaseTracingMemory()]
    if t.ema_decay > 0:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=False))
    if t.log_images_every and data.val_entries:
        callbacks.append(cb.SampleLogger(
            _samples(data.val_entries, config, t.n_log_samples), out / "logs", progress,
            config.audio, t.log_images_every, out / "images" if t.png_logs else None,
            chief=chief, settings=config.inference.override(steps=t.log_synth_timesteps),
            griffin_lim=config.griffin_lim,
        ))
    csv_logger = None
    if chief:
        # Before the checkpoint: a row written for an epoch whose checkpoint then did
        # not make it is dropped on resume (_truncate_history).
        _truncate_history(out / "history.csv", progress.epoch)
        csv_logger = keras.callbacks.CSVLogger(str(out / "history.csv"), append=True)
        callbacks.append(csv_logger)
    callbacks += [checkpointer, interrupt]
    if 0 < progress.in_epoch < data.steps_per_epoch:
        # Resumed mid-epoch (after Ctrl-C): that epoch is finished first, so
        # checkpoints and validations fall on the same steps as without the break.
        callbacks.insert(1, cb.FinishEpoch(data.steps_per_epoch - progress.in_epoch))
    return TrainingCallbacks(callbacks, interrupt, guard, train_logger, csv_logger)


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    data: TrainingData,
    progress: Progress,
    callbacks: TrainingCallbacks,
    verbose: int | str = "auto",
) -> bool:
    """Runs `fit` to the last epoch or a Ctrl-C/SIGTERM; returns whether interrupted."""
    interrupted = False
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=data.epochs,
            initial_epoch=progress.epoch,
            steps_per_epoch=data.steps_per_epoch,
            validation_freq=data.validation_freq,
            callbacks=callbacks.callbacks,
            verbose=verbose,
            shuffle=False,  # the stream is shuffled (stream_order); Keras can't shuffle it
        )
    except cb.TrainingInterrupted as e:
        interrupted = True
        where = f"; checkpoint {e.checkpoint}" if e.checkpoint else ""
        print(f"\ninterrupted at step {e.step}{where}. Rerun the same command to resume.",
              flush=True)
    finally:
        callbacks.interrupt.uninstall()
        callbacks.train_logger.close()
        csv_logger = callbacks.csv_logger
        if csv_logger is not None and getattr(csv_logger, "csv_file", None) is not None:
            csv_logger.csv_file.close()  # fit closes it only when it ends normally
    # Only once fit has returned or was interrupted: a second Ctrl-C or a crash
    # leaves at once, without waiting here for the input pipelines.
    _release_input_pipelines(model)
    return interrupted


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
            then (`gradtts_tf.training.exit_deadline.arm_exit_deadline`).

    Returns:
        The Keras `History`, with extra attributes ``progress`` (`Progress`),
        ``interrupted`` (Ctrl-C/SIGTERM) and ``nonfinite`` (skipped-batch reports).

    Raises:
        RunError: ``out_dir`` holds a run of an incompatible config, or
            ``warm_start_from`` is given for a run that has checkpoints.
        gradtts_tf.training.callbacks.TrainingDiverged: Too many non-finite steps in a row.
    """
    # First: oneDNN's precision and MultiWorkerMirroredStrategy are fixed by the first op.
    set_cpu_math(config.train.cpu_math)
    strategy = make_strategy(config.train.strategy)
    start_xla_quietly()  # the alignment search compiles with XLA
    chief = cb.is_chief(strategy)
    out = Path(out_dir)
    if warm_start_from is not None and list_checkpoints(out):
        raise RunError(
            f"{out} already has checkpoints: rerun without --warm-start to resume it, or "
            "warm-start into a new --out folder"
        )
    changed = prepare_run_folder(out, config, "acoustic", chief)
    n_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    data = load_training_data(data_path, config, n_replicas, epochs, steps_per_epoch,
                              progress=chief)

    # Initial weights and every unseeded draw follow train.seed, as the official
    # trainer's torch.manual_seed: two runs of one config start from the same weights.
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config, jit_compile, strategy)
    progress, resumed_from = resume_or_start(
        model, out, config, data.steps_per_epoch, warm_start_from, ignore_layers, chief
    )
    train_ds, val_ds = make_datasets(data, config, progress)
    describe_run(out, model, config, data, strategy, progress, resumed_from, changed)
    with dtype_policy("float32"):
        export_model = GradTTS.from_config_tree(config)
    callbacks = make_callbacks(out, config, data, progress, export_model, chief, exit_deadline)
    interrupted = fit(model, train_ds, val_ds, data, progress, callbacks, verbose)
    if chief and not interrupted:
        export_weights(model, export_model, out / "model.weights.h5")
    history = model.history
    history.progress = progress
    history.interrupted = interrupted
    history.nonfinite = callbacks.guard.reports
    return history


def summarize_run(out_dir: str | os.PathLike) -> dict:
    """Newest checkpoint's ``state.json`` of a run folder (``{}`` when none)."""
    ckpts = list_checkpoints(out_dir)
    return read_state(ckpts[-1]) if ckpts else {}

