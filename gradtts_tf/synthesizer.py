"""Text to waveform with a trained Grad-TTS: `Synthesizer`.

``Synthesizer.from_pretrained(run_dir)`` reads ``config.yaml`` and
``model.weights.h5`` from a run folder (as written by ``train.py`` or
``python -m gradtts_tf.convert``). The vocoder is Griffin-Lim until a neural
vocoder is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from gradtts_tf.audio import griffin_lim
from gradtts_tf.config import Config, load_config
from gradtts_tf.model import GradTTS
from gradtts_tf.text import text_to_ids


class Synthesizer:
    """Grad-TTS acoustic model plus a vocoder, from text to float32 audio."""

    def __init__(self, model: GradTTS, config: Config, vocoder=None):
        self.model = model
        self.config = config
        self.vocoder = vocoder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, vocoder=None) -> Synthesizer:
        """Loads a run folder holding ``config.yaml`` and ``model.weights.h5``.

        Raises:
            FileNotFoundError: Naming the missing file and how to produce it.
        """
        path = Path(path)
        config_file, weights = path / "config.yaml", path / "model.weights.h5"
        for f in (config_file, weights):
            if not f.is_file():
                raise FileNotFoundError(
                    f"{f} not found: point to a run folder written by train.py or by "
                    "'python -m gradtts_tf.convert'"
                )
        config = load_config(config_file)
        model = GradTTS.from_config_tree(config)
        model.load_weights(weights)
        return cls(model, config, vocoder)

    def text_to_mel(
        self,
        texts: list[str],
        n_timesteps: int = 10,
        temperature: float = 1.5,
        length_scale: float = 1.0,
        speaker: int | None = None,
        seed: int | None = None,
        stoc: bool = False,
    ) -> list[np.ndarray]:
        """Synthesises one padded batch; returns each item's mel ``[T, n_mels]``."""
        seqs = [text_to_ids(t, add_blank=self.config.text.add_blank) for t in texts]
        lengths = np.array([len(s) for s in seqs], np.int32)
        x = np.zeros((len(seqs), lengths.max()), np.int32)  # [B, T_x]
        for i, s in enumerate(seqs):
            x[i, : len(s)] = s
        spk = None
        if self.model.n_spks > 1:
            spk = tf.fill([len(seqs)], int(speaker or 0))
        out = self.model.synthesise(
            x, lengths, n_timesteps=n_timesteps, temperature=temperature,
            length_scale=length_scale, spk=spk, stoc=stoc, seed=seed,
        )
        mel, mel_lengths = out["model_outputs"].numpy(), out["mel_lengths"].numpy()
        return [mel[i, : mel_lengths[i]] for i in range(len(seqs))]

    def mel_to_audio(self, mel: np.ndarray) -> np.ndarray:
        """Vocodes one mel ``[T, n_mels]`` to float32 audio ``[samples]`` in [-1, 1]."""
        if self.vocoder is not None:
            audio = np.asarray(self.vocoder(mel[None])[0], np.float32)
            return np.clip(audio, -1.0, 1.0)
        a = self.config.audio
        audio = griffin_lim(
            tf.constant(mel), sample_rate=a.sample_rate, n_fft=a.n_fft,
            hop_length=a.hop_length, win_length=a.win_length, f_min=a.f_min, f_max=a.f_max,
        )
        # Griffin-Lim keeps the mel's loudness; an untrained model's mel can exceed 0 dBFS.
        return np.clip(np.asarray(audio, np.float32), -1.0, 1.0)

    def tts(self, text: str, **kwargs) -> tuple[np.ndarray, int]:
        """Text to ``(waveform float32 [samples], sample_rate)``; see `text_to_mel` args."""
        mel = self.text_to_mel([text], **kwargs)[0]
        return self.mel_to_audio(mel), self.config.audio.sample_rate

    def tts_batch(self, texts: list[str], **kwargs) -> list[tuple[np.ndarray, int]]:
        """Synthesises several texts in one padded batch."""
        mels = self.text_to_mel(texts, **kwargs)
        return [(self.mel_to_audio(m), self.config.audio.sample_rate) for m in mels]
