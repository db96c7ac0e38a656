"""Mel-to-waveform vocoders behind one interface: Griffin-Lim or a HiFi-GAN checkpoint.

``load_vocoder(spec, audio)`` returns a `Vocoder`; calling it on a batch of log-mels
``[B, T, n_mels]`` gives float32 audio ``[B, T * hop_length]``.

A HiFi-GAN checkpoint is a folder holding ``generator.weights.h5`` (the generator
with weight normalisation folded, as written by ``gradtts-train-vocoder``
and by ``python -m gradtts_tf.convert --vocoder-config``) and its configuration, either our
``config.yaml`` (``audio`` + ``vocoder`` sections) or an official HiFi-GAN
``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from gradtts_tf.audio import griffin_lim
from gradtts_tf.config import AudioConfig, Config, GriffinLimConfig, VocoderConfig, load_config
from gradtts_tf.runtime import freeze

logger = logging.getLogger(__name__)

GENERATOR_WEIGHTS = "generator.weights.h5"
GRIFFIN_LIM_NAMES = ("griffin-lim", "griffin_lim", "griffinlim", "gl")


class Vocoder:
    """Turns log-mel spectrograms into waveforms.

    Attributes:
        name: Human-readable name (for logs and reports).
        sample_rate: Rate of the produced audio in Hz.
        hop_length: Samples per mel frame.
    """

    name: str = "vocoder"
    sample_rate: int
    hop_length: int

    def __call__(
        self, mel: np.ndarray | tf.Tensor, lengths: np.ndarray | tf.Tensor | None = None
    ) -> np.ndarray:
        """Vocodes a batch of log-mels.

        Args:
            mel: float log-mel ``[B, T, n_mels]`` (a single ``[T, n_mels]`` is accepted
                and gives ``[T * hop]``).
            lengths: Optional int ``[B]`` valid frames of a padded batch. Each item is
                then vocoded as if alone (padding does not leak into it) and samples
                past ``lengths * hop_length`` are zero.

        Returns:
            float32 ``[B, T * hop_length]`` in ``[-1, 1]``.
        """
        mel = tf.convert_to_tensor(mel, tf.float32)
        if mel.shape.rank == 2:
            return self._vocode(mel[tf.newaxis], None)[0]  # [T * hop]
        if mel.shape.rank != 3:
            raise ValueError(f"mel must be [B, T, n_mels] or [T, n_mels], got {mel.shape}")
        if lengths is not None:
            lengths = np.asarray(lengths, np.int32).reshape(-1)  # [B]
            if lengths.shape[0] != mel.shape[0]:
                raise ValueError(f"{lengths.shape[0]} lengths for a batch of {mel.shape[0]}")
        return self._vocode(mel, lengths)

    def _vocode(self, mel: tf.Tensor, lengths: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.sample_rate} Hz hop {self.hop_length}>"


class GriffinLimVocoder(Vocoder):
    """Griffin-Lim phase reconstruction (`gradtts_tf.audio.griffin_lim`), no weights:
    the one Griffin-Lim wrapper (synthesis, evaluation, training logs)."""

    def __init__(self, audio: AudioConfig, griffin_lim: GriffinLimConfig | None = None):
        self.audio = audio
        self.settings = griffin_lim or GriffinLimConfig()
        self.name = "griffin-lim"
        self.sample_rate = audio.sample_rate
        self.hop_length = audio.hop_length

    def _vocode(self, mel: tf.Tensor, lengths: np.ndarray | None) -> np.ndarray:
        a = self.audio
        if mel.shape[-1] != a.n_mels:
            raise ValueError(f"mel has {mel.shape[-1]} channels, the audio config {a.n_mels}")
        total = int(mel.shape[1])
        if lengths is not None and np.any(lengths < total):
            # STFT frames overlap, so padded frames would leak: run each item alone.
            out = np.zeros((mel.shape[0], total * a.hop_length), np.float32)
            for i, n in enumerate(lengths):
                n = int(min(n, total))
                if n > 0:
                    out[i, : n * a.hop_length] = self._vocode(mel[i : i + 1, :n], None)[0]
            return out
        wav = griffin_lim(
            mel,
            sample_rate=a.sample_rate,
            n_fft=a.n_fft,
            hop_length=a.hop_length,
            win_length=a.win_length,
            f_min=a.f_min,
            f_max=a.f_max,
            n_iter=self.settings.n_iter,
            power=self.settings.power,
            momentum=self.settings.momentum,
            mel_clamp=self.settings.mel_clamp,
        )  # [B, T * hop]
        return np.clip(wav.numpy(), -1.0, 1.0).astype(np.float32)


class HiFiGANVocoder(Vocoder):
    """A HiFi-GAN generator (weight norm folded) run as a graph with its weights frozen in
    (`gradtts_tf.runtime.freeze`: read at the first call)."""

    def __init__(
        self,
        generator: Any,
        sample_rate: int,
        n_mels: int,
        name: str = "hifigan",
    ):
        self.generator = generator
        self.sample_rate = int(sample_rate)
        self.hop_length = int(generator.hop_length)
        self.n_mels = int(n_mels)
        self.name = name
        self._run = None  # traced at the first call, with the weights frozen in

    def _vocode(self, mel: tf.Tensor, lengths: np.ndarray | None) -> np.ndarray:
        if mel.shape[-1] != self.n_mels:
            raise ValueError(f"mel has {mel.shape[-1]} channels, the vocoder expects {self.n_mels}")
        if lengths is None:
            lengths = np.full([mel.shape[0]], mel.shape[1], np.int32)  # [B]
        if self._run is None:
            self._run = freeze(
                lambda m, n: self.generator(m, lengths=n, training=False),
                [tf.TensorSpec([None, None, self.n_mels], tf.float32),  # mel [B, T, n_mels]
                 tf.TensorSpec([None], tf.int32)],  # lengths [B]
            )
        return self._run(mel, tf.constant(lengths)).numpy().astype(np.float32)  # [B, T * hop]


def _read_checkpoint_config(folder: Path) -> tuple[VocoderConfig, dict[str, Any]]:
    """Reads a checkpoint folder's ``config.yaml`` (ours) or ``config.json`` (official).

    Returns:
        The generator layout and the audio settings the checkpoint states (our
        `AudioConfig` field names; only those present).
    """
    yaml_file, json_file = folder / "config.yaml", folder / "config.json"
    if yaml_file.is_file():
        config = load_config(yaml_file)
        return config.vocoder, dataclasses.asdict(config.audio)
    if json_file.is_file():
        from gradtts_tf.config import vocoder_config_from_official

        return vocoder_config_from_official(json.loads(json_file.read_text()))
    raise FileNotFoundError(
        f"{folder} holds neither config.yaml nor config.json: point --vocoder to a folder "
        "written by 'gradtts-train-vocoder' or "
        "'python -m gradtts_tf.convert --vocoder-config', or use 'griffin-lim'"
    )


def _check_audio(stated: dict[str, Any], audio: AudioConfig, folder: Path) -> AudioConfig:
    """Merges the checkpoint's audio settings with the caller's and checks they agree."""
    merged = dataclasses.replace(
        audio, **{k: v for k, v in stated.items() if k in AudioConfig.__dataclass_fields__}
    )
    for key in ("n_mels", "hop_length"):
        if getattr(merged, key) != getattr(audio, key):
            raise ValueError(
                f"vocoder {folder} was trained with {key}={getattr(merged, key)}, "
                f"the acoustic model uses {key}={getattr(audio, key)}"
            )
    for key in ("sample_rate", "n_fft", "win_length", "f_min", "f_max"):
        mine, theirs = getattr(audio, key), getattr(merged, key)
        if mine != theirs and not (mine is not None and theirs is not None
                                   and float(mine) == float(theirs)):
            logger.warning(
                "vocoder %s was trained with %s=%s, the acoustic model uses %s: quality may drop",
                folder, key, theirs, mine,
            )
    return merged


def load_hifigan(folder: str | os.PathLike, audio: AudioConfig | None = None) -> HiFiGANVocoder:
    """Loads a HiFi-GAN checkpoint folder (``generator.weights.h5`` + config).

    Args:
        folder: The checkpoint folder (or its ``generator.weights.h5`` file).
        audio: The acoustic model's audio settings, checked against the vocoder's;
            ``None`` trusts the checkpoint (missing keys take the defaults).

    Raises:
        FileNotFoundError: If the weights or the config are missing.
        ValueError: If ``n_mels`` or ``hop_length`` disagree with ``audio``.
    """
    from gradtts_tf.layers.hifigan import HiFiGANGenerator

    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    weights = folder / GENERATOR_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} not found: a HiFi-GAN checkpoint folder holds {GENERATOR_WEIGHTS} "
            "and config.yaml or config.json"
        )
    vcfg, stated = _read_checkpoint_config(folder)
    if audio is None:
        fields = AudioConfig.__dataclass_fields__
        merged = dataclasses.replace(AudioConfig(), **{k: v for k, v in stated.items()
                                                       if k in fields})
    else:
        merged = _check_audio(stated, audio, folder)
    generator = HiFiGANGenerator.from_vocoder_config(vcfg, n_mels=merged.n_mels, weight_norm=False)
    generator.load_weights(weights)
    if generator.hop_length != merged.hop_length:
        raise ValueError(
            f"vocoder {folder}: prod(upsample_rates)={generator.hop_length} differs from "
            f"hop_length={merged.hop_length}"
        )
    return HiFiGANVocoder(generator, merged.sample_rate, merged.n_mels, name=f"hifigan:{folder}")


def save_hifigan(
    generator: Any, config: Config, folder: str | os.PathLike
) -> Path:
    """Writes a HiFi-GAN checkpoint folder that `load_vocoder` reads.

    Args:
        generator: A `HiFiGANGenerator`; weight norm is folded first if present.
        config: The config tree whose ``audio`` and ``vocoder`` sections describe it
            (written as ``config.yaml``).
        folder: Output folder (created).

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if generator.weight_norm:
        generator = generator.fold_weight_norm()
    generator.save_weights(folder / GENERATOR_WEIGHTS)
    config.save(folder / "config.yaml")
    return folder


def load_vocoder(
    spec: str | os.PathLike | None,
    audio: AudioConfig,
    griffin_lim: GriffinLimConfig | None = None,
) -> Vocoder:
    """Returns the vocoder named by ``spec``.

    Args:
        spec: ``None`` or ``"griffin-lim"`` for Griffin-Lim with ``audio``'s settings,
            or a HiFi-GAN checkpoint folder (see `load_hifigan`).
        audio: The acoustic model's audio settings (mel layout the vocoder receives).
        griffin_lim: Griffin-Lim's settings (the voice's ``griffin_lim`` config section;
            default: `GriffinLimConfig`'s).

    Returns:
        A `Vocoder`: ``vocoder(mel [B, T, n_mels]) -> float32 [B, T * hop]``.
    """
    if spec is None or (isinstance(spec, str) and spec.lower() in GRIFFIN_LIM_NAMES):
        return GriffinLimVocoder(audio, griffin_lim)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"vocoder {spec!r} not found: give a HiFi-GAN checkpoint folder or 'griffin-lim'"
        )
    return load_hifigan(path, audio)
