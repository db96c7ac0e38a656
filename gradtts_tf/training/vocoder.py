"""Trains HiFi-GAN with `model.fit` on an LJSpeech-format corpus (or fine-tunes it).

``gradtts-train-vocoder --config configs/hifigan_demo.yaml --data DATA
--out RUN`` trains on random ``vocoder.segment_size``-sample segments of the corpus
audio and the log-mels of those segments, as the official ``meldataset.py``: each
utterance is peak-normalised to 0.95, a segment is cut at a random offset (shorter
audio is zero-padded) and its mel computed with the ``audio`` settings; the mel-L1
loss uses ``vocoder.loss_f_max``.

Fine-tuning (``--fine-tune-mels DIR``): the generator input is read from
``DIR/{utterance id}.npy`` (``[T, n_mels]``, e.g. mels a trained Grad-TTS produced
for the corpus sentences, aligned to the real audio; `make_fine_tune_mels` writes
them), the audio is not peak-normalised, and the mel segment and the matching audio
are cut together, as the official ``fine_tuning`` mode.

The run folder is laid out as Grad-TTS's (`gradtts_tf.training.checkpoints`):
``config.yaml``, ``checkpoints/ckpt-<step>/`` (both networks, both optimizers, the
epoch), ``history.csv`` and, at every checkpoint (the end of each epoch, and Ctrl-C),
``generator.weights.h5`` (weight norm folded): the run folder itself is a vocoder
checkpoint for `load_vocoder`. Rerunning on the folder resumes at the start of the
epoch after the newest checkpoint; ``train.keep_last`` checkpoints are kept, as for
Grad-TTS.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gradtts_tf.audio import AudioError, load_audio, mel_spectrogram
from gradtts_tf.config import Config
from gradtts_tf.hifigan import ExponentialLRPerEpoch, HiFiGAN
from gradtts_tf.training.callbacks import GracefulInterrupt, StepCounter, TrainingInterrupted
from gradtts_tf.training.checkpoints import (
    Checkpointer,
    Progress,
    RunError,
    list_checkpoints,
    prepare_run_folder,
    restore_latest,
)

logger = logging.getLogger(__name__)


def _load_fine_tune_mel(path: Path, n_mels: int) -> np.ndarray:
    """Reads a ``[T, n_mels]`` mel (an official ``[1, n_mels, T]``/``[n_mels, T]`` too)."""
    mel = np.load(path).astype(np.float32)
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]  # [n_mels, T] (official layout)
    if mel.ndim != 2:
        raise ValueError(f"{path}: expected a [T, {n_mels}] mel, got shape {mel.shape}")
    if mel.shape[1] != n_mels and mel.shape[0] == n_mels:
        mel = mel.T  # [T, n_mels]
    if mel.shape[1] != n_mels:
        raise ValueError(f"{path}: expected a [T, {n_mels}] mel, got shape {mel.shape}")
    return mel


def vocoder_dataset(
    data_path: str | os.PathLike,
    config: Config,
    split: str = "train",
    fine_tune_mels: str | os.PathLike | None = None,
    manifest=None,
) -> tf.data.Dataset:
    """Batches of mel segments and their audio for HiFi-GAN.

    Args:
        data_path: LJSpeech folder or Grad-TTS filelist (read with
            `gradtts_tf.data.prepare_corpus`, which validates and caches the corpus).
        config: Config tree (``audio``, ``data`` split settings, ``vocoder``).
        split: "train" (shuffled, random segments, full batches), "val" (the middle
            segment of each utterance, in order) or "all".
        fine_tune_mels: Folder of ``{uid}.npy`` generator-input mels (fine-tuning).
        manifest: A prepared `gradtts_tf.data.Manifest`.

    Returns:
        Dataset of dicts: ``mel`` float32 ``[B, S / hop, n_mels]`` and ``audio``
        float32 ``[B, S]`` with ``S = vocoder.segment_size``.
    """
    from gradtts_tf.data import prepare_corpus

    a, v = config.audio, config.vocoder
    seg = v.segment_size
    if seg % a.hop_length:
        raise ValueError(
            f"vocoder.segment_size={seg} must be a multiple of audio.hop_length={a.hop_length}"
        )
    frames = seg // a.hop_length
    manifest = manifest or prepare_corpus(data_path, config)
    entries = manifest.split(split, config)
    if not entries:
        raise ValueError(f"split '{split}' of {data_path} is empty: adjust data.n_val")
    training = split == "train"
    ft_dir = Path(fine_tune_mels) if fine_tune_mels else None
    if ft_dir is not None and not ft_dir.is_dir():
        raise FileNotFoundError(f"fine-tuning mel folder not found: {ft_dir}")

    def generate():
        for e in entries:
            try:
                audio = load_audio(e["audio_path"], a.sample_rate)
                if ft_dir is None:
                    # Official: peak-normalise to 0.95 (not when fine-tuning).
                    audio = audio / max(float(np.max(np.abs(audio))), 1e-8) * 0.95
                    mel = np.zeros([0, a.n_mels], np.float32)
                else:
                    mel = _load_fine_tune_mel(ft_dir / f"{e['uid']}.npy", a.n_mels)
            except (AudioError, OSError, ValueError) as err:
                logger.warning("skipping %s (%s): %s", e["uid"], e["source"], err)
                continue
            yield audio.astype(np.float32), mel

    ds = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, a.n_mels], tf.float32),
        ),
    )
    if training:
        ds = ds.shuffle(
            min(config.data.shuffle_buffer, len(entries)), seed=v.seed,
            reshuffle_each_iteration=True,
        )

    def offset(max_start: tf.Tensor) -> tf.Tensor:
        """Start in ``[0, max_start]``: random for training, the middle otherwise."""
        max_start = tf.maximum(max_start, 0)
        if training:
            return tf.random.uniform([], 0, max_start + 1, dtype=tf.int32)
        return max_start // 2

    def cut_audio(audio, mel):
        n = tf.shape(audio)[0]
        start = offset(n - seg)
        audio = audio[start : start + seg]
        audio = tf.pad(audio, [[0, seg - tf.shape(audio)[0]]])  # [S]
        mel = mel_spectrogram(audio, a.sample_rate, a.n_fft, a.hop_length, a.win_length,
                              a.n_mels, a.f_min, a.f_max)  # [S / hop, n_mels]
        return {"mel": tf.ensure_shape(mel, [frames, a.n_mels]),
                "audio": tf.ensure_shape(audio, [seg])}

    def cut_pair(audio, mel):
        # Official fine-tuning: mel start in [0, T - frames - 1], audio cut to match.
        start = offset(tf.shape(mel)[0] - frames - 1)
        mel = mel[start : start + frames]
        mel = tf.pad(mel, [[0, frames - tf.shape(mel)[0]], [0, 0]])  # [S / hop, n_mels]
        audio = audio[start * a.hop_length : start * a.hop_length + seg]
        audio = tf.pad(audio, [[0, seg - tf.shape(audio)[0]]])  # [S]
        return {"mel": tf.ensure_shape(mel, [frames, a.n_mels]),
                "audio": tf.ensure_shape(audio, [seg])}

    ds = ds.map(cut_audio if ft_dir is None else cut_pair, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(v.batch_size, drop_remainder=training)
    return ds.prefetch(tf.data.AUTOTUNE)


def build_vocoder_model(config: Config, run_eagerly: bool = False,
                        jit_compile: bool | None = None) -> HiFiGAN:
    """Builds and compiles `HiFiGAN` with the config's optimizer settings."""
    from gradtts_tf.training.build import use_xla

    v = config.vocoder
    model = HiFiGAN.from_config_tree(config)
    model.compile(
        learning_rate=v.learning_rate, adam_b1=v.adam_b1, adam_b2=v.adam_b2,
        weight_decay=v.weight_decay, run_eagerly=run_eagerly,
        jit_compile=use_xla(config.train.jit_compile) if jit_compile is None else jit_compile,
    )
    return model


def init_generator_from(model: HiFiGAN, folder: str | os.PathLike) -> None:
    """Starts the generator from a vocoder checkpoint folder (folded weights).

    The plain kernels become ``kernel_v`` with ``kernel_g = ||kernel||``, which is
    the same function; the layouts must match.
    """
    from gradtts_tf.vocoder import load_hifigan

    source = load_hifigan(folder, None).generator
    for src, dst in zip(source.conv_layers(), model.generator.conv_layers(), strict=True):
        kernel = src.kernel_raw
        if tuple(kernel.shape) != tuple(dst.kernel_v.shape):
            raise ValueError(
                f"{folder}: generator layout differs from the config ({src.path} "
                f"{tuple(kernel.shape)} vs {tuple(dst.kernel_v.shape)})"
            )
        dst.kernel_v.assign(kernel)
        dst.kernel_g.assign(tf.sqrt(tf.reduce_sum(tf.square(kernel), axis=[0, 1])))
        dst.bias.assign(src.bias)


def train_vocoder(
    config: Config,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    fine_tune_mels: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    run_eagerly: bool = False,
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """Trains HiFi-GAN, resuming when ``out_dir`` holds checkpoints.

    Args:
        config: Config tree (``audio``, ``data``, ``vocoder``).
        data_path: LJSpeech folder or Grad-TTS filelist.
        out_dir: Run folder (created; reused to resume).
        epochs: Overrides ``vocoder.epochs``.
        steps_per_epoch: Batches per epoch (the data repeats); overrides
            ``vocoder.steps_per_epoch``; 0/None: one pass.
        fine_tune_mels: Folder of ``{uid}.npy`` generator-input mels.
        init_from: Vocoder checkpoint folder to start the generator from (ignored on
            resume, where the checkpoint wins).
        run_eagerly: Run the train step eagerly (debugging, tiny tests).
        verbose: Passed to `fit`.

    Returns:
        The Keras `History`, with the extra attribute ``interrupted`` (Ctrl-C/SIGTERM).

    Raises:
        RunError: ``out_dir`` holds a run whose checkpoints ``config`` cannot resume.
    """
    from gradtts_tf.data import prepare_corpus
    from gradtts_tf.vocoder import save_hifigan

    out = Path(out_dir)
    prepare_run_folder(out, config, "vocoder")
    tf.random.set_seed(config.vocoder.seed)

    manifest = prepare_corpus(data_path, config)
    train_ds = vocoder_dataset(data_path, config, "train", fine_tune_mels, manifest)
    val_ds, val_steps = None, None
    n_val = len(manifest.split("val", config))
    if n_val:
        val_ds = vocoder_dataset(data_path, config, "val", fine_tune_mels, manifest)
        # Known length: Keras otherwise warns when the validation pass exhausts it.
        val_steps = math.ceil(n_val / config.vocoder.batch_size)
    steps = steps_per_epoch or config.vocoder.steps_per_epoch or None
    if steps:
        train_ds = train_ds.repeat()

    model = build_vocoder_model(config, run_eagerly=run_eagerly)
    progress = Progress(batch_size=config.vocoder.batch_size)
    restored = restore_latest(model, out)
    if restored is not None:
        progress.step, progress.epoch = restored[1]["step"], restored[1]["epoch"]
        progress.start_step = progress.step
        print(f"resuming from {restored[0]}: step {progress.step}, epoch {progress.epoch}")
    elif list_checkpoints(out):
        raise RunError(f"no checkpoint in {out / 'checkpoints'} loads (see the warnings above)")
    elif init_from:
        init_generator_from(model, init_from)
    n_g = sum(int(np.prod(v.shape)) for v in model.generator_variables)
    n_d = sum(int(np.prod(v.shape)) for v in model.discriminator_variables)
    print(f"HiFi-GAN: generator {n_g:,} parameters, discriminators {n_d:,}")
    v = config.vocoder
    checkpointer = Checkpointer(
        out, progress, keep_last=config.train.keep_last,
        export=lambda m: save_hifigan(m.generator, config, out),
    )
    interrupt = GracefulInterrupt(checkpointer)
    csv_logger = keras.callbacks.CSVLogger(str(out / "history.csv"), append=True)
    callbacks = [StepCounter(progress), ExponentialLRPerEpoch(v.learning_rate, v.lr_decay),
                 csv_logger, checkpointer, interrupt]
    interrupted = False
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            validation_steps=val_steps,
            epochs=epochs or v.epochs,
            initial_epoch=progress.epoch,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=verbose,
        )
    except TrainingInterrupted as e:
        interrupted = True
        print(f"\ninterrupted at step {e.step}; rerun the same command to resume from the "
              "start of the epoch.", flush=True)
    finally:
        interrupt.uninstall()
        if getattr(csv_logger, "csv_file", None) is not None:
            csv_logger.csv_file.close()  # fit closes it only when it ends normally
    history = model.history
    history.interrupted = interrupted
    return history


def make_fine_tune_mels(
    gradtts_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    steps: int | None = None,
    temperature: float | None = None,
    seed: int = 0,
    solver: str | None = None,
) -> int:
    """Writes Grad-TTS mels aligned to the real audio, for vocoder fine-tuning.

    For each utterance the text is encoded, aligned to the real mel with monotonic
    alignment search (as in training), and the decoder runs ``steps`` reverse
    steps from ``mu_y + eps / temperature`` over the real number of frames, so the
    result lines up with the audio frame by frame.

    Args:
        gradtts_dir: Grad-TTS run folder (``config.yaml`` + ``model.weights.h5``).
        data_path: The corpus (LJSpeech folder or filelist).
        out_dir: Output folder for ``{uid}.npy`` (``[T, n_mels]``).
        steps: Reverse diffusion steps (``None``: the voice's ``inference`` setting).
        temperature: Prior temperature (likewise).
        seed: Noise seed.
        solver: Reverse-diffusion solver (likewise).

    Returns:
        Number of files written.
    """
    from gradtts_tf.audio import mel_from_config
    from gradtts_tf.config import load_config
    from gradtts_tf.data import prepare_corpus
    from gradtts_tf.model import GradTTS
    from gradtts_tf.ops import fix_len_compatibility

    run = Path(gradtts_dir)
    config = load_config(run / "config.yaml")
    model = GradTTS.from_config_tree(config)
    model.load_weights(run / "model.weights.h5")
    settings = config.inference.override(steps, temperature, solver=solver)
    manifest = prepare_corpus(data_path, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = 0
    for e in manifest.entries:
        audio = load_audio(e["audio_path"], config.audio.sample_rate)
        y = mel_from_config(audio, config.audio).numpy()  # [T_y, n_mels]
        t_y = y.shape[0]
        t_pad = int(fix_len_compatibility(t_y))
        y_pad = np.zeros([1, t_pad, y.shape[1]], np.float32)  # [1, T_pad, n_mels]
        y_pad[0, :t_y] = y
        x = tf.constant([e["ids"]], tf.int32)  # [1, T_x]
        spk = tf.constant([e["speaker"]], tf.int32) if model.n_spks > 1 else None
        mu_x, _, x_mask = model._encode(x, tf.constant([x.shape[1]]), model._speaker(spk), False)
        y_mask = tf.cast(tf.sequence_mask([t_y], t_pad), tf.float32)[:, :, None]  # [1, T_pad, 1]
        attn = model._align(mu_x, x_mask, y_pad, y_mask)  # [1, T_pad, T_x]
        mu_y = tf.matmul(attn, mu_x)  # [1, T_pad, n_mels]
        eps = rng.standard_normal(mu_y.shape).astype(np.float32)
        z = mu_y + eps / settings.temperature
        mel = model.decoder.reverse_diffusion(
            z, y_mask, mu_y, settings.steps, solver=settings.solver,
            spk_emb=None if spk is None else model._speaker(spk),
        )
        np.save(out / f"{e['uid']}.npy", mel.numpy()[0, :t_y].astype(np.float32))
        written += 1
    return written
