"""Training with `model.fit`: datasets, optimizer, callbacks, resumable run folders.

A run folder holds ``config.yaml`` (the exact config trained with), ``backup/``
(Keras `BackupAndRestore`: weights, optimizer state and epoch, so a rerun resumes),
``model.weights.h5`` (weights after the last epoch), ``logs/`` (TensorBoard) and
``history.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf

from data_function import build_dataset, prepare_corpus
from gradtts_tf.config import Config
from gradtts_tf.model import GradTTS


def use_xla(setting: str) -> bool:
    """Resolves ``train.jit_compile`` ("auto" means: only when a GPU is visible)."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


def build_model(config: Config, jit_compile: bool | None = None) -> GradTTS:
    """Builds and compiles `GradTTS` with Adam at the config's learning rate."""
    model = GradTTS.from_config_tree(config)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.train.learning_rate),
        jit_compile=use_xla(config.train.jit_compile) if jit_compile is None else jit_compile,
    )
    return model


def train(
    config: Config,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    jit_compile: bool | None = None,
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """Trains Grad-TTS on a corpus, resuming when ``out_dir`` holds an earlier run.

    Args:
        config: The config tree.
        data_path: LJSpeech folder or Grad-TTS filelist.
        out_dir: Run folder (created; reused to resume).
        epochs: Overrides ``train.epochs``.
        steps_per_epoch: Limit batches per epoch (the dataset is repeated when set).
        jit_compile: Overrides ``train.jit_compile``.
        verbose: Passed to `fit`.

    Returns:
        The Keras `History`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    if saved.exists():
        from gradtts_tf.config import load_config

        if load_config(saved).model != config.model:
            raise ValueError(
                f"{saved} describes a different model than the config given: resume with "
                f"the same config, or use a new --out folder"
            )
    config.save(saved)

    manifest = prepare_corpus(data_path, config)
    print(manifest.summary())
    train_ds = build_dataset(data_path, config, "train", manifest=manifest)
    val_ds = build_dataset(data_path, config, "val", manifest=manifest)
    if steps_per_epoch:
        train_ds = train_ds.repeat()

    model = build_model(config, jit_compile)
    n_params = sum(int(tf.size(v)) for v in model.trainable_weights)
    devices = [d.name for d in tf.config.list_logical_devices()]
    print(
        f"model: {n_params:,} trainable parameters; devices: {devices}; "
        f"jit_compile: {model.jit_compile}; precision: {keras.mixed_precision.dtype_policy().name}"
    )
    callbacks = [
        # Kept after fit ends, so a rerun with more epochs continues instead of restarting.
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False),
    ]
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs or config.train.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
    model.save_weights(out / "model.weights.h5")
    return history
