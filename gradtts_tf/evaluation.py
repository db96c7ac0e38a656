"""Objective evaluation of a TTS voice: ASR word/character error rates, MCD, durations.

Every sentence is synthesised, transcribed offline with PocketSphinx (the US-English
acoustic model, dictionary and language model shipped inside the ``pocketsphinx``
wheel; nothing is downloaded) and scored against the normalised text. Where a
reference recording of the sentence exists (an LJSpeech folder, matched by text), the
mel-cepstral distortion after DTW alignment and the duration ratio are added.

The same figures are computed for two ceilings, so a model's numbers can be read
against what the recogniser and vocoder allow:

* ``recordings``: the reference recordings themselves;
* ``vocoded:<name>``: each recording's mel (`mel_from_config`) passed through a vocoder.

Definitions:

* text normalisation: `english_cleaners` (ASCII, lowercase, numbers and abbreviations
  spelled out), ``%`` / ``&`` read as words, every other non-alphanumeric character
  except word-internal apostrophes replaced by a space;
* WER / CER: Levenshtein distance over words / characters (spaces included) divided by
  the reference length; a corpus figure is total edits over total reference length;
* MCD: mel-cepstra ``c_1..c_D`` (``D = 24``; ``c_0``, the energy, excluded) are the real
  cepstrum of the natural-log amplitude mel spectrum (`mel_spectrogram`, i.e. the
  model's own features): ``c_d = (1/N) sum_n ln M_n cos(pi d (n + 1/2) / N)``. After
  trimming leading and trailing silence and aligning with DTW (Euclidean cost,
  ``librosa.sequence.dtw``), ``MCD = mean over the path of 10/ln(10) * sqrt(2 *
  sum_d (c_d - c'_d)^2)`` in dB;
* duration ratio: synthesised over reference duration, both with leading and trailing
  silence trimmed (more than 40 dB below the peak);
* RTF (real-time factor): wall-clock processing time over the duration of the audio
  produced (synthesis or vocoding; below 1 is faster than real time).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from gradtts_tf.audio import load_audio, mel_from_config, save_audio
from gradtts_tf.config import (
    AudioConfig,
    Config,
    GriffinLimConfig,
    SynthesisSettings,
    as_config,
    renamed_steps,
)
from gradtts_tf.text.cleaners import english_cleaners

ASR_SAMPLE_RATE = 16000
N_CEPSTRA = 24
TRIM_TOP_DB = 40.0
# 10 / ln(10) * sqrt(2): the MCD constant applied to a Euclidean cepstral distance.
_MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)

_NON_WORD_RE = re.compile(r"[^a-z0-9']+")
_EDGE_APOSTROPHE_RE = re.compile(r"(?<![a-z0-9])'|'(?![a-z0-9])")
_SYMBOL_WORDS = {"%": " percent ", "&": " and "}


# ---------------------------------------------------------------------------
# Text and error rates
# ---------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Normalises text for scoring: cleaners, no punctuation, single spaces.

    Args:
        text: Raw sentence or recogniser output.

    Returns:
        Lowercase words separated by single spaces, e.g. ``"Dr. Who paid $3!"`` ->
        ``"doctor who paid three dollars"``.
    """
    for symbol, word in _SYMBOL_WORDS.items():
        text = text.replace(symbol, word)
    text = english_cleaners(text)
    text = _NON_WORD_RE.sub(" ", text)
    text = _EDGE_APOSTROPHE_RE.sub(" ", text)
    return " ".join(text.split())


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1).

    Args:
        ref: Reference tokens (words, or a string for characters).
        hyp: Hypothesis tokens.

    Returns:
        The minimum number of edits turning ``hyp`` into ``ref``.
    """
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref  # the row runs over the shorter sequence
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (r != h),  # substitution or match
            )
        previous = current
    return previous[-1]


def _rate(errors: int, length: int) -> float:
    # An empty reference: no error if the hypothesis is empty too, else 100 %.
    if length == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / length


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Returns ``(word edits, reference words)`` after `normalize_text` on both."""
    ref = normalize_text(reference).split()
    return edit_distance(ref, normalize_text(hypothesis).split()), len(ref)


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Returns ``(character edits, reference characters)`` after `normalize_text`."""
    ref = normalize_text(reference)
    return edit_distance(ref, normalize_text(hypothesis)), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (both normalised).

    Example: ``wer("the cat sat", "the cat sat down") == 1 / 3``.
    """
    return _rate(*word_errors(reference, hypothesis))


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate (spaces count as characters), both texts normalised."""
    return _rate(*char_errors(reference, hypothesis))


# ---------------------------------------------------------------------------
# Recogniser
# ---------------------------------------------------------------------------


class Recognizer:
    """Offline US-English speech recognition with PocketSphinx 5.x.

    Uses the default configuration of the ``pocketsphinx`` package: the ``en-us``
    acoustic model, ``cmudict-en-us.dict`` and the ``en-us.lm.bin`` language model,
    all inside the wheel. Audio is converted to 16 kHz mono 16-bit PCM.
    """

    def __init__(self) -> None:
        # Imported here so `import gradtts_tf.evaluation` works without pocketsphinx.
        try:
            from pocketsphinx import Decoder
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "evaluation needs the 'pocketsphinx' package, a dependency of gradtts-tf: "
                "reinstall the package (pip install -e .) or pip install pocketsphinx==5.1.1"
            ) from e
        self._decoder = Decoder(loglevel="FATAL")

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        """Transcribes a waveform.

        Args:
            audio: float ``[samples]`` in ``[-1, 1]``.
            sample_rate: Its rate in Hz (resampled to 16 kHz with ``librosa.resample``).

        Returns:
            The recognised words in lowercase (``""`` when nothing is recognised).
        """
        audio = np.asarray(audio, np.float32).reshape(-1)  # [samples]
        if sample_rate != ASR_SAMPLE_RATE and audio.size:
            audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=ASR_SAMPLE_RATE)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        self._decoder.start_utt()
        self._decoder.process_raw(pcm.tobytes(), full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


# ---------------------------------------------------------------------------
# Signal measures
# ---------------------------------------------------------------------------


def trim_silence(audio: np.ndarray, top_db: float = TRIM_TOP_DB) -> np.ndarray:
    """Cuts leading and trailing audio more than ``top_db`` below the peak.

    Audio that is silent throughout (or would be trimmed to nothing) is returned whole.

    Args:
        audio: float ``[samples]``.
        top_db: Threshold in dB below the peak frame.

    Returns:
        float ``[samples']``.
    """
    audio = np.asarray(audio, np.float32).reshape(-1)  # [samples]
    if audio.size < 1024 or not np.any(audio):
        return audio
    trimmed, _ = librosa.effects.trim(audio, top_db=top_db, frame_length=1024, hop_length=256)
    return trimmed if trimmed.size >= 1024 else audio


def mel_cepstrum(
    audio: np.ndarray, audio_config: AudioConfig | None = None, n_cepstra: int = N_CEPSTRA
) -> np.ndarray:
    """Mel-cepstra ``c_1..c_D`` of a waveform (``c_0`` excluded).

    The real cepstrum of the natural-log amplitude mel spectrum
    (`mel_spectrogram` with ``audio_config``), scaled so that
    ``ln M_n = c_0 + 2 sum_d c_d cos(pi d (n + 1/2) / N)``.

    Args:
        audio: float ``[samples]`` at ``audio_config.sample_rate``.
        audio_config: Mel settings (default: `AudioConfig()`).
        n_cepstra: ``D``, at most ``n_mels - 1``.

    Returns:
        float64 ``[frames, n_cepstra]``.
    """
    import scipy.fft

    cfg = audio_config or AudioConfig()
    if not 1 <= n_cepstra < cfg.n_mels:
        raise ValueError(f"n_cepstra must be in [1, {cfg.n_mels}), got {n_cepstra}")
    audio = np.asarray(audio, np.float32).reshape(-1)  # [samples]
    # Reflect padding needs more than (n_fft - hop) / 2 samples.
    min_len = cfg.n_fft
    if audio.size < min_len:
        audio = np.pad(audio, (0, min_len - audio.size))
    log_mel = np.asarray(mel_from_config(audio, cfg), np.float64)  # [frames, n_mels]
    # Unnormalised DCT-II is 2 * sum_n x_n cos(...); the real cepstrum is that / (2N).
    ceps = scipy.fft.dct(log_mel, type=2, axis=-1) / (2.0 * cfg.n_mels)  # [frames, n_mels]
    return ceps[:, 1 : n_cepstra + 1]


def mel_cepstral_distortion(
    audio: np.ndarray,
    reference: np.ndarray,
    audio_config: AudioConfig | None = None,
    n_cepstra: int = N_CEPSTRA,
    trim: bool = True,
) -> float:
    """MCD in dB between two waveforms after DTW alignment.

    Args:
        audio: Synthesised float ``[samples]`` at ``audio_config.sample_rate``.
        reference: Reference float ``[samples']`` at the same rate.
        audio_config: Mel settings (default: `AudioConfig()`).
        n_cepstra: Cepstra compared (``c_1..c_D``).
        trim: Trim leading/trailing silence of both first (`trim_silence`).

    Returns:
        ``mean over the DTW path of 10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2)``.
    """
    if trim:
        audio, reference = trim_silence(audio), trim_silence(reference)
    a = mel_cepstrum(audio, audio_config, n_cepstra)  # [T_a, D]
    b = mel_cepstrum(reference, audio_config, n_cepstra)  # [T_b, D]
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")  # path: [L, 2]
    dist = np.linalg.norm(a[path[:, 0]] - b[path[:, 1]], axis=-1)  # [L]
    return float(_MCD_SCALE * dist.mean())


def duration_ratio(audio: np.ndarray, reference: np.ndarray, trim: bool = True) -> float:
    """Synthesised over reference duration (same sample rate), silence trimmed.

    Args:
        audio: float ``[samples]``.
        reference: float ``[samples']``.
        trim: Trim leading/trailing silence of both first (`trim_silence`).
    """
    if trim:
        audio, reference = trim_silence(audio), trim_silence(reference)
    return float(np.asarray(audio).size / max(np.asarray(reference).size, 1))


# ---------------------------------------------------------------------------
# References and sentences
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Reference:
    """A reference recording: id, its transcript, the audio file."""

    uid: str
    text: str
    audio_path: str


def load_references(
    path: str | os.PathLike,
    split: str | None = None,
    config: Config | str | os.PathLike | None = None,
) -> list[Reference]:
    """Reads the recordings of an LJSpeech folder (or Grad-TTS filelist).

    Args:
        path: Corpus folder (``metadata.csv`` + ``wavs/``) or filelist.
        split: ``None``/"all" for every line; "val" or "train" for the split that
            training used (`gradtts_tf.data.prepare_corpus(...).split`, which needs the
            training config: ``data.n_val``, ``data.split_seed``, audio settings).
        config: The config defining the split (`Config`, YAML path or ``None``).

    Returns:
        The references in corpus order.
    """
    from gradtts_tf.data import prepare_corpus, read_corpus

    utterances, _ = read_corpus(path)
    refs = [Reference(u.uid, u.text, u.audio_path) for u in utterances]
    if split in (None, "all"):
        return refs
    config = as_config(config)
    keep = {e["uid"] for e in prepare_corpus(path, config, progress=False).split(split, config)}
    return [r for r in refs if r.uid in keep]


def read_sentences(path: str | os.PathLike) -> list[str]:
    """Reads sentences, one a line; blank lines and ``#`` comments are skipped.

    Lines with ``|`` are taken as ``id|text[|normalized text]`` (LJSpeech metadata) and
    give their text field.
    """
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "|" in line:
            parts = line.split("|")
            line = parts[1].strip() if len(parts) > 1 else ""
        if line:
            out.append(line)
    return out


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class SentenceResult:
    """Scores of one utterance of one system. ``None`` where not measurable."""

    text: str
    normalized: str
    hypothesis: str
    wer: float
    cer: float
    word_errors: int
    n_words: int
    char_errors: int
    n_chars: int
    duration: float  # seconds of audio scored
    reference_id: str | None = None
    mcd: float | None = None
    duration_ratio: float | None = None
    rtf: float | None = None
    seconds: float | None = None  # processing wall time behind ``rtf``


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


@dataclasses.dataclass
class SystemReport:
    """All sentences of one system (the model, the recordings, a vocoder ceiling)."""

    name: str
    sentences: list[SentenceResult] = dataclasses.field(default_factory=list)

    @property
    def overall(self) -> dict[str, Any]:
        """Corpus WER/CER (total edits / total length), mean MCD and duration ratio,
        RTF as total processing time over total audio duration."""
        s = self.sentences
        seconds = [r.seconds for r in s if r.seconds is not None]
        timed = sum(r.duration for r in s if r.seconds is not None)
        return {
            "n_sentences": len(s),
            "wer": _rate(sum(r.word_errors for r in s), sum(r.n_words for r in s)) if s else None,
            "cer": _rate(sum(r.char_errors for r in s), sum(r.n_chars for r in s)) if s else None,
            "mcd": _mean(r.mcd for r in s),
            "duration_ratio": _mean(r.duration_ratio for r in s),
            "rtf": float(sum(seconds) / timed) if seconds and timed > 0 else None,
            "n_words": sum(r.n_words for r in s),
            "duration": float(sum(r.duration for r in s)),
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"overall": {...}, "sentences": [{...}, ...]}``."""
        return {
            "overall": self.overall,
            "sentences": [dataclasses.asdict(r) for r in self.sentences],
        }


@dataclasses.dataclass
class Report:
    """The evaluation: one `SystemReport` per system, keyed by name, and the settings.

    System names: ``"model"`` (the synthesiser), ``"recordings"`` (the references
    through the recogniser) and ``"vocoded:<vocoder>"`` (reference mels vocoded).
    """

    systems: dict[str, SystemReport] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> SystemReport:
        return self.systems[name]

    def to_dict(self) -> dict[str, Any]:
        """``{"settings": {...}, "systems": {name: {"overall", "sentences"}}}``."""
        return {
            "settings": self.settings,
            "systems": {name: s.to_dict() for name, s in self.systems.items()},
        }

    def save_json(self, path: str | os.PathLike) -> None:
        """Writes `to_dict` as indented JSON (missing values are ``null``)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def table(self, details: str | None = "model") -> str:
        """A plain-text summary table, plus per-sentence lines of system ``details``."""

        def fmt(v: float | None, spec: str, scale: float = 1.0) -> str:
            return "-" if v is None else format(scale * v, spec)

        header = (
            f"{'system':<24} {'n':>4} {'WER %':>7} {'CER %':>7} {'MCD dB':>7} "
            f"{'dur ratio':>9} {'RTF':>6}"
        )
        lines = [header, "-" * len(header)]
        for name, sys in self.systems.items():
            o = sys.overall
            lines.append(
                f"{name:<24} {o['n_sentences']:>4} "
                f"{fmt(o['wer'], '7.1f', 100)} {fmt(o['cer'], '7.1f', 100)} "
                f"{fmt(o['mcd'], '7.2f')} "
                f"{fmt(o['duration_ratio'], '9.2f')} {fmt(o['rtf'], '6.2f')}"
            )
        if details in self.systems:
            lines += ["", f"{details}: per sentence (WER %, CER %, MCD dB, text -> heard)"]
            for r in self.systems[details].sentences:
                lines.append(
                    f"  {100 * r.wer:5.0f} {100 * r.cer:5.0f} {fmt(r.mcd, '5.1f'):>5}  "
                    f"{r.normalized!r} -> {r.hypothesis!r}"
                )
        return "\n".join(lines)


def score(
    text: str,
    audio: np.ndarray,
    sample_rate: int,
    recognizer: Recognizer,
    reference: np.ndarray | None = None,
    audio_config: AudioConfig | None = None,
    seconds: float | None = None,
    reference_id: str | None = None,
) -> SentenceResult:
    """Scores one utterance.

    Args:
        text: What the audio should say.
        audio: float ``[samples]``.
        sample_rate: Its rate in Hz.
        recognizer: The ASR.
        reference: Optional reference recording ``[samples']`` at ``sample_rate``
            (adds MCD and the duration ratio).
        audio_config: Mel settings for MCD (its ``sample_rate`` must equal
            ``sample_rate``; default: `AudioConfig` at ``sample_rate``).
        seconds: Wall time spent producing ``audio`` (adds the RTF).
        reference_id: Id of the reference recording, for the report.

    Returns:
        The `SentenceResult`.
    """
    audio = np.asarray(audio, np.float32).reshape(-1)  # [samples]
    hyp = recognizer.transcribe(audio, sample_rate)
    w_err, n_w = word_errors(text, hyp)
    c_err, n_c = char_errors(text, hyp)
    duration = audio.size / sample_rate
    result = SentenceResult(
        text=text, normalized=normalize_text(text), hypothesis=normalize_text(hyp),
        wer=_rate(w_err, n_w), cer=_rate(c_err, n_c), word_errors=w_err, n_words=n_w,
        char_errors=c_err, n_chars=n_c, duration=float(duration), reference_id=reference_id,
    )
    if seconds is not None:
        result.seconds = float(seconds)
        result.rtf = float(seconds / duration) if duration > 0 else None
    if reference is not None:
        cfg = audio_config or AudioConfig(sample_rate=sample_rate)
        if cfg.sample_rate != sample_rate:
            raise ValueError(f"audio_config is at {cfg.sample_rate} Hz, audio at {sample_rate}")
        reference = np.asarray(reference, np.float32).reshape(-1)  # [samples']
        result.mcd = mel_cepstral_distortion(audio, reference, cfg)
        result.duration_ratio = duration_ratio(audio, reference)
    return result


# ---------------------------------------------------------------------------
# Vocoders
# ---------------------------------------------------------------------------


def vocoder_name(spec: str | os.PathLike | None) -> str:
    """``None``/"griffin-lim" -> ``"griffin-lim"``; a folder -> its name."""
    if spec is None or str(spec) == "griffin-lim":
        return "griffin-lim"
    return Path(spec).name or str(spec)


def load_vocoder(
    spec: str | os.PathLike | None,
    audio_config: AudioConfig,
    griffin_lim: GriffinLimConfig | None = None,
) -> Callable:
    """A vocoder ``mel [B, T, n_mels] -> audio [B, samples]`` from its spec
    (`gradtts_tf.vocoder.load_vocoder`: Griffin-Lim or a HiFi-GAN folder)."""
    from gradtts_tf.vocoder import load_vocoder as _load

    return _load(None if spec is None else str(spec), audio_config, griffin_lim)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="utt")


def match_references(
    sentences: Sequence[str], references: Sequence[Reference]
) -> list[Reference | None]:
    """For each sentence, the reference whose normalised text is the same (or ``None``)."""
    by_text: dict[str, Reference] = {}
    for r in references:
        by_text.setdefault(normalize_text(r.text), r)
    return [by_text.get(normalize_text(s)) for s in sentences]


def evaluate_recordings(
    references: Sequence[Reference],
    recognizer: Recognizer | None = None,
    sample_rate: int = 22050,
    progress: bool = False,
) -> SystemReport:
    """The ceiling of the recogniser: WER/CER of the reference recordings themselves.

    MCD is 0 and the duration ratio 1 by definition; there is no RTF.
    """
    recognizer = recognizer or Recognizer()
    report = SystemReport("recordings")
    for ref in _progress(list(references), progress, "recordings"):
        audio = load_audio(ref.audio_path, sample_rate)
        result = score(ref.text, audio, sample_rate, recognizer, reference_id=ref.uid)
        result.mcd, result.duration_ratio = 0.0, 1.0
        report.sentences.append(result)
    return report


def evaluate_vocoder(
    references: Sequence[Reference],
    vocoder: Callable,
    audio_config: AudioConfig | None = None,
    name: str = "griffin-lim",
    recognizer: Recognizer | None = None,
    progress: bool = False,
) -> SystemReport:
    """The ceiling of a vocoder: reference audio -> mel -> ``vocoder`` -> ASR.

    Args:
        references: Recordings.
        vocoder: ``mel [B, T, n_mels] -> audio [B, samples]``.
        audio_config: Mel settings the vocoder expects (default `AudioConfig()`).
        name: Reported as ``"vocoded:<name>"``.
        recognizer: The ASR (a new `Recognizer` by default).
        progress: Show a progress bar.
    """
    cfg = audio_config or AudioConfig()
    recognizer = recognizer or Recognizer()
    report = SystemReport(f"vocoded:{name}")
    refs = list(references)
    for i, ref in enumerate(_progress(refs, progress, f"vocoded:{name}")):
        audio = load_audio(ref.audio_path, cfg.sample_rate)
        mel = np.asarray(mel_from_config(audio, cfg))[None]  # [1, T, n_mels]
        if i == 0:
            vocoder(mel)  # warm-up: tracing or first-call costs are not the vocoder's speed
        start = time.perf_counter()
        out = np.clip(np.asarray(vocoder(mel), np.float32)[0], -1.0, 1.0)  # [samples]
        seconds = time.perf_counter() - start
        report.sentences.append(
            score(ref.text, out, cfg.sample_rate, recognizer, reference=audio, audio_config=cfg,
                  seconds=seconds, reference_id=ref.uid)
        )
    return report


def evaluate(
    synthesizer: Any | None,
    sentences: Sequence[str] | None = None,
    references: Sequence[Reference] | str | os.PathLike | None = None,
    *,
    vocoders: Sequence[str | os.PathLike | None] = (),
    recordings: bool = True,
    recognizer: Recognizer | None = None,
    audio_config: AudioConfig | None = None,
    steps: int | None = None,
    temperature: float | None = None,
    length_scale: float | None = None,
    speaker: int | None = None,
    seed: int | None = 0,
    progress: bool = False,
    audio_dir: str | os.PathLike | None = None,
    n_timesteps: int | None = None,
    solver: str | None = None,
) -> Report:
    """Evaluates a synthesiser and the ceilings on the same sentences.

    Args:
        synthesizer: Anything with ``tts(text, steps=, temperature=,
            length_scale=, speaker=, seed=) -> (audio float32 [samples], sample_rate)``
            (a `gradtts_tf.synthesizer.Synthesizer`), or ``None`` for the ceilings only.
        sentences: Texts to speak; ``None``: the texts of ``references``.
        references: Recordings (`load_references`) or a corpus path (all its lines).
            Matched to ``sentences`` by normalised text; matched sentences gain MCD and
            the duration ratio, and the ceilings are computed on the matched recordings.
        vocoders: Vocoder specs for ``vocoded:<name>`` ceilings (``None`` or
            "griffin-lim", or a HiFi-GAN folder; see `load_vocoder`).
        recordings: Add the ``recordings`` ceiling (when there are references).
        recognizer: The ASR (a new `Recognizer` by default).
        audio_config: Mel settings for MCD and vocoding (default: the synthesiser's
            ``config.audio``, else `AudioConfig()`).
        steps, temperature, length_scale, speaker, seed: Passed to ``tts`` (``None``:
            the synthesizer's ``synthesis_settings``, else `SynthesisSettings`' defaults).
        progress: Show progress bars.
        audio_dir: If given, the synthesised audio is also written there as
            ``model_NNN.wav`` (NNN: the sentence's position), the WAVs that were scored.
        n_timesteps: The earlier name of ``steps`` (deprecated).
        solver: Reverse-diffusion solver (``None``: the synthesizer's, else euler).

    Returns:
        The `Report` (``report["model"].overall["wer"]``, ``report.save_json(path)``).
    """
    if isinstance(references, str | os.PathLike):
        references = load_references(references)
    references = list(references or [])
    if sentences is None:
        if not references:
            raise ValueError("give sentences, references or both")
        sentences = [r.text for r in references]
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise ValueError("no sentence to evaluate")
    matched = match_references(sentences, references) if references else [None] * len(sentences)
    used_refs = [r for r in matched if r is not None]
    if audio_config is None:
        cfg = getattr(getattr(synthesizer, "config", None), "audio", None)
        audio_config = cfg if isinstance(cfg, AudioConfig) else AudioConfig()
    steps = renamed_steps(steps, n_timesteps)
    resolve = getattr(synthesizer, "synthesis_settings", None)
    if resolve is not None:
        settings = resolve(steps, temperature, length_scale, solver)
    else:
        settings = SynthesisSettings().override(steps, temperature, length_scale, solver)
    recognizer = recognizer or Recognizer()
    report = Report(settings={
        "recognizer": "pocketsphinx en-us (default acoustic model, dictionary and LM)",
        "n_cepstra": N_CEPSTRA,
        "trim_top_db": TRIM_TOP_DB,
        **dataclasses.asdict(settings),
        "speaker": speaker,
        "seed": seed,
        "n_sentences": len(sentences),
        "n_with_reference": len(used_refs),
    })

    if synthesizer is not None:
        kwargs: dict[str, Any] = {**dataclasses.asdict(settings), "seed": seed}
        if speaker is not None:
            kwargs["speaker"] = speaker
        synthesizer.tts(sentences[0], **kwargs)  # warm-up: graph tracing is not synthesis speed
        system = SystemReport("model")
        pairs = list(zip(sentences, matched, strict=True))
        if audio_dir is not None:
            Path(audio_dir).mkdir(parents=True, exist_ok=True)
        for i, (text, ref) in enumerate(_progress(pairs, progress, "model")):
            start = time.perf_counter()
            audio, sr = synthesizer.tts(text, **kwargs)
            seconds = time.perf_counter() - start
            if audio_dir is not None:
                save_audio(Path(audio_dir) / f"model_{i:03d}.wav", audio, sr)
            ref_audio = load_audio(ref.audio_path, sr) if ref is not None else None
            cfg = audio_config
            if cfg.sample_rate != sr:
                cfg = dataclasses.replace(audio_config, sample_rate=sr)
            system.sentences.append(
                score(text, audio, sr, recognizer, reference=ref_audio, audio_config=cfg,
                      seconds=seconds, reference_id=ref.uid if ref else None)
            )
        report.systems["model"] = system

    if used_refs and recordings:
        report.systems["recordings"] = evaluate_recordings(
            used_refs, recognizer, audio_config.sample_rate, progress
        )
    if used_refs:
        for spec in vocoders:
            name = vocoder_name(spec)
            report.systems[f"vocoded:{name}"] = evaluate_vocoder(
                used_refs, load_vocoder(spec, audio_config), audio_config, name,
                recognizer, progress,
            )
    return report
