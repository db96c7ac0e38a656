"""Waveform I/O, the HiFi-GAN / Grad-TTS log-mel spectrogram in TF ops, and Griffin-Lim.

The mel reproduces ``hifi-gan/meldataset.py::mel_spectrogram`` of the official code:
reflect-pad ``(n_fft - hop) / 2`` on both sides, ``torch.stft(center=False)`` with a
periodic Hann window, magnitude ``sqrt(re^2 + im^2 + 1e-9)``, librosa's Slaney mel
filters, ``log(clamp(x, 1e-5))``. Outputs are channels-last: ``[frames, n_mels]``.

Resampling in `load_audio` uses ``librosa.resample`` (its default ``soxr_hq`` filter).
"""

from __future__ import annotations

import functools
import logging
import os

import librosa
import numpy as np
import soundfile as sf
import tensorflow as tf

from gradtts_tf.config import AudioConfig, GriffinLimConfig

_GRIFFIN_LIM = GriffinLimConfig()  # the defaults, defined once in the config tree

logger = logging.getLogger(__name__)

_LOG_CLAMP = 1e-5
_MAG_EPS = 1e-9


class AudioError(ValueError):
    """An audio file that is missing, unreadable, corrupt or empty."""


# ---------------------------------------------------------------------------
# File I/O
# ---------------------------------------------------------------------------


def _read_soundfile(path: str) -> tuple[np.ndarray, int]:
    """Reads with libsndfile. Returns float32 ``[samples, channels]`` and the rate."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data, int(rate)


def _read_tfio(path: str) -> tuple[np.ndarray, int]:
    """Reads with tensorflow-io (FLAC/OGG/MP3/WAV). Returns float32 ``[samples, channels]``."""
    # Imported lazily: tensorflow_io is slow to import and only needed as a fallback.
    import tensorflow_io as tfio

    io_tensor = tfio.audio.AudioIOTensor(path)
    rate = int(io_tensor.rate.numpy())
    data = io_tensor.to_tensor().numpy()  # [samples, channels]
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        data = data.astype(np.float32) / 2147483648.0
    elif data.dtype == np.uint8:
        data = (data.astype(np.float32) - 128.0) / 128.0
    else:
        data = data.astype(np.float32)
    if data.ndim == 1:
        data = data[:, None]  # [samples, 1]
    return data, rate


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Loads an audio file as mono float32 at ``sample_rate``.

    WAV (and whatever libsndfile reads: FLAC, OGG, MP3, ...) goes through soundfile;
    files soundfile cannot read are retried with ``tfio.audio.AudioIOTensor``.
    Channels are averaged. A file at another rate is resampled with
    ``librosa.resample`` and an info message is logged.

    Args:
        path: Audio file.
        sample_rate: Target rate in Hz.

    Returns:
        float32 array ``[samples]`` with values in ``[-1, 1]``.

    Raises:
        AudioError: If the file is missing, unreadable/corrupt or holds no samples.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        data, rate = _read_soundfile(path)
    except Exception as sf_err:  # libsndfile raises several types for bad files
        try:
            data, rate = _read_tfio(path)
        except Exception as tfio_err:
            raise AudioError(
                f"cannot read audio file {path}: soundfile: {sf_err}; "
                f"tensorflow-io: {type(tfio_err).__name__}"
            ) from tfio_err
    if data.size == 0 or data.shape[0] == 0:
        raise AudioError(f"audio file has no samples: {path}")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"audio file contains NaN or inf samples: {path}")
    audio = data.mean(axis=1).astype(np.float32)  # [samples]
    if rate != sample_rate:
        logger.info("resampled %s from %d Hz to %d Hz", path, rate, sample_rate)
        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate).astype(np.float32)
        if audio.shape[0] == 0:
            raise AudioError(f"audio file too short to resample: {path}")
    # Float files and resampling overshoot can exceed full scale; the contract is [-1, 1].
    return np.clip(audio, -1.0, 1.0)


def save_audio(path: str | os.PathLike, audio: np.ndarray | tf.Tensor, sample_rate: int) -> None:
    """Writes mono audio as a 16-bit PCM WAV file.

    Args:
        path: Output ``.wav`` path.
        audio: ``[samples]`` float waveform (clipped to ``[-1, 1]``).
        sample_rate: Rate in Hz.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)  # [samples]
    sf.write(
        os.fspath(path), np.clip(audio, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV"
    )


# ---------------------------------------------------------------------------
# Mel spectrogram
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def mel_basis(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None
) -> np.ndarray:
    """librosa's Slaney mel filter bank, transposed for channels-last matmul.

    Returns:
        float32 ``[n_fft // 2 + 1, n_mels]`` (read-only, cached per settings).
    """
    basis = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max
    )  # [n_mels, n_fft // 2 + 1]
    out = np.ascontiguousarray(basis.T, dtype=np.float32)  # [bins, n_mels]
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=16)
def inverse_mel_basis(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None
) -> np.ndarray:
    """Pseudo-inverse of `mel_basis`, mapping mel back to linear bins.

    Returns:
        float32 ``[n_mels, n_fft // 2 + 1]`` (read-only, cached per settings).
    """
    basis = mel_basis(sample_rate, n_fft, n_mels, f_min, f_max)  # [bins, n_mels]
    inv = np.linalg.pinv(basis.astype(np.float64)).astype(np.float32)  # [n_mels, bins]
    inv.setflags(write=False)
    return inv


def _stft_magnitude(
    frames_signal: tf.Tensor, n_fft: int, hop_length: int, win_length: int
) -> tf.Tensor:
    """``|STFT|`` matching ``torch.stft(center=False)`` on an already padded signal.

    torch centres a ``win_length`` window inside each ``n_fft`` frame while
    tf.signal.stft puts it at the frame start and zero-pads the end. Dropping
    ``(n_fft - win_length) // 2`` samples in front (and the rest at the back) makes
    both see the same samples; the shift inside the FFT buffer only changes phase.
    Frame counts then agree: ``1 + (N - n_fft) // hop`` for both, since neither pads
    the end (``pad_end=False``).

    Args:
        frames_signal: float32 ``[B, N]``, already reflect-padded.

    Returns:
        float32 ``[B, frames, n_fft // 2 + 1]``.
    """
    left = (n_fft - win_length) // 2
    right = n_fft - win_length - left
    if left or right:
        frames_signal = frames_signal[:, left : tf.shape(frames_signal)[1] - right]  # [B, N']
    spec = tf.signal.stft(
        frames_signal,
        frame_length=win_length,
        frame_step=hop_length,
        fft_length=n_fft,
        window_fn=functools.partial(tf.signal.hann_window, periodic=True),
        pad_end=False,
    )  # [B, frames, bins] complex64
    re = tf.math.real(spec)
    im = tf.math.imag(spec)
    return tf.sqrt(re * re + im * im + _MAG_EPS)


def mel_spectrogram(
    audio: tf.Tensor | np.ndarray,
    sample_rate: int = 22050,
    n_fft: int = 1024,
    hop_length: int = 256,
    win_length: int = 1024,
    n_mels: int = 80,
    f_min: float = 0.0,
    f_max: float | None = 8000.0,
) -> tf.Tensor:
    """HiFi-GAN / Grad-TTS log-mel spectrogram, channels-last, in TF ops.

    Works eagerly and inside ``tf.function`` / ``tf.data`` maps. The input rank must
    be static. Frames: ``1 + (samples + 2 * ((n_fft - hop) // 2) - n_fft) // hop``
    (``samples // hop`` for the defaults).

    Args:
        audio: float waveform ``[samples]`` or ``[B, samples]``, values in ``[-1, 1]``;
            needs more than ``(n_fft - hop_length) // 2`` samples (reflect padding).
        sample_rate: Rate in Hz.
        n_fft: FFT size.
        hop_length: Frame step.
        win_length: Hann window length (``<= n_fft``).
        n_mels: Mel channels.
        f_min: Lowest mel filter edge in Hz.
        f_max: Highest mel filter edge in Hz (``None``: Nyquist).

    Returns:
        float32 log-mel ``[frames, n_mels]`` or ``[B, frames, n_mels]``.
    """
    audio = tf.convert_to_tensor(audio)
    audio = tf.cast(audio, tf.float32)
    rank = audio.shape.rank
    if rank not in (1, 2):
        raise ValueError(f"audio must be [samples] or [B, samples], got shape {audio.shape}")
    if rank == 1:
        audio = audio[tf.newaxis, :]  # [1, samples]
    pad = (n_fft - hop_length) // 2
    padded = tf.pad(audio, [[0, 0], [pad, pad]], mode="REFLECT")  # [B, samples + 2 * pad]
    mag = _stft_magnitude(padded, n_fft, hop_length, win_length)  # [B, frames, bins]
    basis = tf.constant(mel_basis(sample_rate, n_fft, n_mels, f_min, f_max))  # [bins, n_mels]
    batch = tf.shape(mag)[0]
    frames = tf.shape(mag)[1]
    # A 2-D matmul (no broadcasting batch matmul, no einsum) keeps this portable.
    flat = tf.reshape(mag, [-1, n_fft // 2 + 1])  # [B * frames, bins]
    mel = tf.reshape(tf.matmul(flat, basis), [batch, frames, n_mels])  # [B, frames, n_mels]
    mel = tf.math.log(tf.maximum(mel, _LOG_CLAMP))
    if rank == 1:
        mel = mel[0]  # [frames, n_mels]
    return mel


def mel_from_config(audio: tf.Tensor | np.ndarray, cfg: AudioConfig) -> tf.Tensor:
    """`mel_spectrogram` with the settings of an `AudioConfig`.

    Args:
        audio: ``[samples]`` or ``[B, samples]`` waveform.
        cfg: Audio settings.

    Returns:
        float32 ``[frames, n_mels]`` or ``[B, frames, n_mels]``.
    """
    return mel_spectrogram(
        audio,
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        f_min=cfg.f_min,
        f_max=cfg.f_max,
    )


def griffin_lim(
    mel: tf.Tensor | np.ndarray,
    sample_rate: int = 22050,
    n_fft: int = 1024,
    hop_length: int = 256,
    win_length: int = 1024,
    f_min: float = 0.0,
    f_max: float | None = 8000.0,
    n_iter: int = _GRIFFIN_LIM.n_iter,
    power: float = _GRIFFIN_LIM.power,
    momentum: float = _GRIFFIN_LIM.momentum,
    init_angles: tf.Tensor | np.ndarray | None = None,
    mel_clamp: float = _GRIFFIN_LIM.mel_clamp,
) -> tf.Tensor:
    """Inverts a log-mel spectrogram to a waveform with (fast) Griffin-Lim, in TF ops.

    The mel is exponentiated, mapped to linear bins with the pseudo-inverse of the
    mel basis (clamped at 0) and raised to ``1 / power``. Phases start at zero (or at
    ``init_angles``), so the result is deterministic; there is no random op. The
    update uses the momentum of Perraudin et al. 2013 ("fast Griffin-Lim", as in
    ``librosa.griffinlim``); ``momentum=0`` is the classic algorithm.

    The STFT here frames the *padded* signal like `mel_spectrogram`, and the
    reflect padding is cut off the result, so ``samples = frames * hop_length``.

    Args:
        mel: float log-mel ``[frames, n_mels]`` or ``[B, frames, n_mels]``.
        sample_rate: Rate in Hz.
        n_fft: FFT size.
        hop_length: Frame step.
        win_length: Hann window length (``hop_length <= win_length <= n_fft``).
        f_min: Lowest mel filter edge in Hz.
        f_max: Highest mel filter edge in Hz.
        n_iter: Griffin-Lim iterations (a Python int; the loop is unrolled when traced).
        power: Exponent the mel was computed with (1: magnitude, 2: power).
        momentum: Fast Griffin-Lim momentum in ``[0, 1)``.
        init_angles: Optional complex64 unit phases ``[B, frames, n_fft // 2 + 1]``
            (or without ``B``); default all ones (zero phase).
        mel_clamp: ``|log-mel|`` limit before ``exp`` (`GriffinLimConfig.mel_clamp`).

    Returns:
        float32 waveform ``[samples]`` or ``[B, samples]``, ``samples = frames * hop``.
    """
    mel = tf.cast(tf.convert_to_tensor(mel), tf.float32)
    rank = mel.shape.rank
    if rank not in (2, 3):
        raise ValueError(f"mel must be [frames, n_mels] or [B, frames, n_mels], got {mel.shape}")
    if rank == 2:
        mel = mel[tf.newaxis]  # [1, frames, n_mels]
    n_mels = mel.shape[-1]
    n_bins = n_fft // 2 + 1
    inv = tf.constant(inverse_mel_basis(sample_rate, n_fft, n_mels, f_min, f_max))
    batch = tf.shape(mel)[0]
    frames = tf.shape(mel)[1]
    mel = tf.clip_by_value(mel, -mel_clamp, mel_clamp)
    flat = tf.reshape(tf.exp(mel), [-1, n_mels])  # [B * frames, n_mels]
    lin = tf.reshape(tf.matmul(flat, inv), [batch, frames, n_bins])  # [B, frames, bins]
    mag = tf.maximum(lin, 0.0)
    if power != 1.0:
        mag = tf.pow(mag, 1.0 / power)
    mag_c = tf.complex(mag, tf.zeros_like(mag))

    window_fn = functools.partial(tf.signal.hann_window, periodic=True)
    inv_window_fn = tf.signal.inverse_stft_window_fn(hop_length, forward_window_fn=window_fn)

    def istft(spec: tf.Tensor) -> tf.Tensor:
        # [B, frames, bins] -> [B, (frames - 1) * hop + win_length]
        return tf.signal.inverse_stft(
            spec,
            frame_length=win_length,
            frame_step=hop_length,
            fft_length=n_fft,
            window_fn=inv_window_fn,
        )

    def stft(signal: tf.Tensor) -> tf.Tensor:
        # [B, (frames - 1) * hop + win_length] -> [B, frames, bins]
        return tf.signal.stft(
            signal,
            frame_length=win_length,
            frame_step=hop_length,
            fft_length=n_fft,
            window_fn=window_fn,
            pad_end=False,
        )

    if init_angles is None:
        angles = tf.ones_like(mag_c)
    else:
        angles = tf.cast(tf.convert_to_tensor(init_angles), tf.complex64)
        if angles.shape.rank == 2:
            angles = angles[tf.newaxis]  # [1, frames, bins]
        angles = angles * tf.ones_like(mag_c)
    rebuilt = tf.zeros_like(mag_c)
    alpha = tf.complex(tf.constant(momentum / (1.0 + momentum), tf.float32), 0.0)
    for _ in range(n_iter):
        previous = rebuilt
        rebuilt = stft(istft(mag_c * angles))  # [B, frames, bins]
        accel = rebuilt - alpha * previous
        norm = tf.cast(tf.abs(accel), tf.complex64)
        angles = accel / (norm + 1e-16)
    signal = istft(mag_c * angles)  # [B, (frames - 1) * hop + win_length]

    # tf frames start at the window start; the mel's torch frames centre a win_length
    # window in n_fft after (n_fft - hop) // 2 samples of padding. Map back to the
    # unpadded signal: sample s here is sample s - left of the original.
    left = (n_fft - hop_length) // 2 - (n_fft - win_length) // 2
    left = max(left, 0)
    signal = signal[:, left : left + frames * hop_length]  # [B, frames * hop]
    if rank == 2:
        signal = signal[0]  # [samples]
    return signal
