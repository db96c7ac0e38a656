"""Audio bytes for HTTP responses: WAV files, raw PCM and a streamable WAV header."""

from __future__ import annotations

import io
import wave

import numpy as np
import soundfile as sf

# The largest data size a RIFF header can state: a stream's header promises it, since
# the length is not known when the header is sent (players read until the stream ends).
_STREAM_FRAMES = (2**32 - 1 - 36) // 2

MEDIA_TYPES = {"wav": "audio/wav", "pcm": "application/octet-stream"}


def _int16(audio: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] as int16 (one conversion for files and streams)."""
    samples = np.clip(np.nan_to_num(audio), -1.0, 1.0)
    return np.round(samples * 32767.0).astype("<i2")


def pcm16(audio: np.ndarray) -> bytes:
    """float32 samples in [-1, 1] as 16-bit little-endian PCM bytes."""
    return _int16(audio).tobytes()


def wav_file(audio: np.ndarray, sample_rate: int) -> bytes:
    """A complete 16-bit mono WAV file of ``audio`` (the samples of `pcm16`)."""
    buffer = io.BytesIO()
    sf.write(buffer, _int16(audio), sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def wav_stream_header(sample_rate: int) -> bytes:
    """The 44-byte header of a 16-bit mono WAV stream of unknown length."""
    buffer = io.BytesIO()
    writer = wave.open(buffer, "wb")
    writer.setnchannels(1)
    writer.setsampwidth(2)
    writer.setframerate(sample_rate)
    writer.setnframes(_STREAM_FRAMES)
    writer.writeframesraw(b"")  # writes the header, promising _STREAM_FRAMES frames
    return buffer.getvalue()


def encode(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """``audio`` as a WAV file (``"wav"``) or raw 16-bit PCM (``"pcm"``)."""
    return wav_file(audio, sample_rate) if fmt == "wav" else pcm16(audio)
