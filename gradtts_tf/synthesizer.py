"""Text to waveform with a trained Grad-TTS and a vocoder: `Synthesizer`.

``Synthesizer.from_pretrained(path, vocoder=None)`` reads ``config.yaml`` and
``model.weights.h5`` from a run folder (written by ``train.py``) or from a converted
official checkpoint (``python -m gradtts_tf.convert``); ``vocoder`` is ``None`` or
``"griffin-lim"`` (Griffin-Lim), a HiFi-GAN checkpoint folder, or a `Vocoder`.

Synthesis runs in three stages, each timed for real-time factors:

1. **encoder + alignment** (`GradTTS.align`): text pieces sorted by length and padded
   into batches; the text encoder is padding-invariant.
2. **decoder** (reverse diffusion): pieces that share a padded mel length
   (``fix_len_compatibility``) are decoded together. The official U-Net is *not*
   padding-invariant -- its GroupNorm statistics and linear attention run over every
   frame, padded ones included -- so padding a piece beyond its own padded length
   would change its output. Grouping keeps batched results equal to unbatched ones
   (and, on CPU, avoids computing on padding at all); ``max_padding`` > 0 trades that
   for fuller batches.
3. **vocoder**: pieces of equal mel length are vocoded together (with ``max_padding``,
   a decoder batch at once, shorter mels padded with silence).

Every piece draws its noise from its own seed and its own length with the portable
generator of `gradtts_tf.noise` (which the LiteRT runner and the TF.js page share, so
a seed gives the same utterance in every runtime), so its result does not depend on
what else is in the batch: item ``k`` of ``tts_batch(texts, seed=s)`` equals
``tts(texts[k], seed=s + k)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from gradtts_tf import runtime
from gradtts_tf.config import Config, SynthesisSettings, renamed_steps
from gradtts_tf.model import GradTTS, load_checkpoint
from gradtts_tf.noise import piece_noise
from gradtts_tf.ops import fix_len_compatibility, sequence_mask
from gradtts_tf.solvers import STOCHASTIC_SOLVERS
from gradtts_tf.text import text_to_ids
from gradtts_tf.text.segment import DEFAULT_MAX_TOKENS, DEFAULT_SENTENCE_PAUSE, segment

SILENCE_LOG_MEL = math.log(1e-5)  # the log-mel floor of `gradtts_tf.audio.mel_spectrogram`
# Log-mels of real audio stay far below this; an untrained model's can reach 100+, and
# exp() of that overflows Griffin-Lim into NaN.
MAX_LOG_MEL = 10.0
DECODER_DTYPES = ("float32", "bfloat16")


@dataclass
class Timings:
    """Wall-clock seconds per synthesis stage and the seconds of audio produced."""

    encoder: float = 0.0
    decoder: float = 0.0
    vocoder: float = 0.0
    audio: float = 0.0

    @property
    def total(self) -> float:
        return self.encoder + self.decoder + self.vocoder

    def rtf(self, seconds: float) -> float:
        """Real-time factor of ``seconds`` of compute (< 1 is faster than real time)."""
        return seconds / self.audio if self.audio > 0 else float("nan")

    def add(self, other: Timings) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def report(self) -> str:
        """A small table: seconds and real-time factor of each stage and overall."""
        rows = [
            ("encoder + alignment", self.encoder),
            ("decoder", self.decoder),
            ("vocoder", self.vocoder),
            ("overall", self.total),
        ]
        lines = [f"{name:<20} {secs:8.2f} s   RTF {self.rtf(secs):.3f}" for name, secs in rows]
        return "\n".join([*lines, f"{'audio':<20} {self.audio:8.2f} s"])


@dataclass
class Utterance:
    """One input text and its synthesis result.

    Attributes:
        index: Position of the text in the input (its noise seed is ``seed + index``).
        text: The input text.
        pieces: The sentences (or clauses) it was split into.
        mel: Joined decoder mel ``[frames, n_mels]``, silence frames between pieces.
        audio: float32 waveform ``[frames * hop_length]`` in [-1, 1].
        mel_lengths: Frames of each piece (predicted durations).
        error: Why the text was not synthesised (``None`` if it was).
    """

    index: int
    text: str
    pieces: list[str] = field(default_factory=list)
    mel: np.ndarray | None = None
    audio: np.ndarray | None = None
    mel_lengths: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Piece:
    utt: int  # position in the `synthesize` call's list
    pos: int  # position within its utterance
    seed: int  # the utterance's seed
    ids: list[int]
    mu: np.ndarray | None = None  # [y_len, n_feats]
    y_len: int = 0
    mel: np.ndarray | None = None  # [y_len, n_feats]
    audio: np.ndarray | None = None  # [y_len * hop]


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _grouped(pieces: list[_Piece], key, size: int) -> list[list[_Piece]]:
    """Pieces with equal ``key(piece)``, in batches of at most ``size``, shortest first."""
    groups: dict[int, list[_Piece]] = defaultdict(list)
    for p in pieces:
        groups[key(p)].append(p)
    return [b for k in sorted(groups) for b in _batches(groups[k], size)]


def _padded_groups(pieces: list[_Piece], size: int, max_padding: float) -> list[list[_Piece]]:
    """Batches of at most ``size`` pieces, shortest first, whose longest padded length
    is at most ``1 + max_padding`` times their shortest's."""
    ordered = sorted(pieces, key=lambda p: p.y_len)
    batches: list[list[_Piece]] = []
    for p in ordered:
        if batches and len(batches[-1]) < size and fix_len_compatibility(p.y_len) <= (
            fix_len_compatibility(batches[-1][0].y_len) * (1 + max_padding)
        ):
            batches[-1].append(p)
        else:
            batches.append([p])
    return batches


class Synthesizer:
    """Grad-TTS acoustic model plus a vocoder, from text to float32 audio.

    Args:
        model: A built `GradTTS` with its weights.
        config: The config it was trained with (audio and text settings).
        vocoder: ``None``/``"griffin-lim"``, a HiFi-GAN checkpoint folder, or a
            `gradtts_tf.vocoder.Vocoder` (any callable ``mel [B, T, n_mels] ->
            [B, T * hop]`` with ``sample_rate`` and ``hop_length``).
        freeze: Run graphs with the weights frozen in as constants (faster on CPU,
            see `gradtts_tf.runtime.freeze`); they are read at the first synthesis,
            so a model still being trained needs ``freeze=False`` to be heard as it is.
        decoder_dtype: ``"float32"`` or ``"bfloat16"``: the diffusion decoder's U-Net
            computes in bfloat16 (`GradTTS.with_decoder_dtype`; float32 weights and ODE
            state). Faster on CPUs with AMX, about 3 significant digits
            per activation; needs ``freeze`` (it runs a copy of the weights made here).
    """

    def __init__(
        self,
        model: GradTTS,
        config: Config,
        vocoder=None,
        freeze: bool = True,
        decoder_dtype: str = "float32",
    ):
        if decoder_dtype not in DECODER_DTYPES:
            raise ValueError(
                f"decoder_dtype: expected one of {', '.join(DECODER_DTYPES)}, got "
                f"{decoder_dtype!r}"
            )
        if decoder_dtype == "bfloat16":
            if not freeze:
                raise ValueError(
                    "decoder_dtype 'bfloat16' runs a copy of the weights and needs "
                    "freeze=True; use float32 to hear a model while it trains"
                )
            model = model.with_decoder_dtype("mixed_bfloat16")
        self.decoder_dtype = decoder_dtype
        self.model = model
        self.config = config
        self.freeze = freeze
        if vocoder is None or isinstance(vocoder, str | os.PathLike):
            from gradtts_tf.vocoder import load_vocoder

            vocoder = load_vocoder(vocoder, config.audio, config.griffin_lim)
        self.vocoder = vocoder
        audio = config.audio
        self.sample_rate = int(getattr(vocoder, "sample_rate", audio.sample_rate))
        self.hop_length = int(getattr(vocoder, "hop_length", audio.hop_length))
        if self.hop_length != audio.hop_length:
            raise ValueError(
                f"vocoder hop_length {self.hop_length} differs from the model's "
                f"audio.hop_length {audio.hop_length}"
            )
        self._align_fn = None
        self._decode_fns: dict[tuple[int, bool], Callable] = {}

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, vocoder=None, decoder_dtype: str = "float32"
    ) -> Synthesizer:
        """Loads a run folder holding ``config.yaml`` and ``model.weights.h5``.

        Args:
            path: A ``train.py`` run folder, a ``python -m gradtts_tf.convert`` output or
                the name of an installed voice (``"demo"``).
            vocoder: As in the constructor.
            decoder_dtype: As in the constructor.

        Raises:
            FileNotFoundError: Naming the missing file and how to produce it.
        """
        model, config = load_checkpoint(path)
        return cls(model, config, vocoder, decoder_dtype=decoder_dtype)

    # ------------------------------------------------------------------ text

    def _ids(self, text: str) -> list[int]:
        return text_to_ids(text, add_blank=self.config.text.add_blank)

    def prepare(
        self,
        text: str,
        split_sentences: bool = True,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> list[tuple[str, list[int]]]:
        """Splits text into pieces and converts each to encoder ids.

        Pieces with nothing pronounceable (e.g. a stray ``"?!"``) are dropped.

        Args:
            text: Raw text.
            split_sentences: Split into sentences (and over-long ones at clauses).
            max_tokens: Longest piece in encoder ids.

        Returns:
            ``(piece text, ids)`` pairs in order.

        Raises:
            ValueError: If the text is empty, has nothing pronounceable, or a piece
                stays over ``max_tokens``.
        """
        if not text or not text.strip():
            raise ValueError("empty text")
        cache: dict[str, list[int]] = {}

        def count(piece: str) -> int:
            if piece not in cache:
                try:
                    cache[piece] = self._ids(piece)
                except ValueError:
                    cache[piece] = []
            return len(cache[piece])

        if count(text) == 0:
            self._ids(text)  # raises the front end's explanation
        pieces = segment(text, max_tokens, count, split=split_sentences)
        return [(p, cache[p]) for p in pieces if count(p) > 0]

    # ----------------------------------------------------------- graph parts

    @property
    def tracing_count(self) -> int:
        """How often the synthesis graphs were traced (stays flat across lengths)."""
        fns = [self._align_fn, *self._decode_fns.values()]
        return sum(f.experimental_get_tracing_count() for f in fns if f is not None)

    def _speaker_emb(self, spk):
        if self.model.n_spks <= 1:
            return None
        return self.model.spk_emb(spk)  # [B, spk_emb_dim]

    def _compile(self, fn, signature):
        """``fn`` as a graph: weights frozen in (`freeze`) or read from the variables."""
        if self.freeze:
            return runtime.freeze(fn, signature)
        return tf.function(fn, input_signature=signature)

    def _get_align_fn(self):
        if self._align_fn is None:
            multi = self.model.n_spks > 1

            def align(x, x_lengths, length_scale, spk):
                out = self.model.align(
                    x, x_lengths, length_scale=length_scale, spk=spk if multi else None
                )
                return out["mu_y"], out["y_lengths"]

            self._align_fn = self._compile(
                align,
                [
                    tf.TensorSpec([None, None], tf.int32),  # x [B, T_x]
                    tf.TensorSpec([None], tf.int32),  # x_lengths [B]
                    tf.TensorSpec([], tf.float32),  # length_scale
                    tf.TensorSpec([None], tf.int32),  # spk [B]
                ],
            )
        return self._align_fn

    def _get_decode_fn(self, steps: int, solver: str):
        key = (steps, solver)
        stoc = solver in STOCHASTIC_SOLVERS
        if key not in self._decode_fns:
            n_feats = self.model.n_feats
            seq = tf.TensorSpec([None, None, n_feats], tf.float32)  # [B, T, n_feats]
            signature = [
                seq,  # mu
                tf.TensorSpec([None, None, 1], tf.float32),  # mask [B, T, 1]
                seq,  # eps
                tf.TensorSpec([], tf.float32),  # temperature
                tf.TensorSpec([None], tf.int32),  # spk [B]
                tf.TensorSpec([None, None, None, n_feats], tf.float32),  # [n, B, T, n_feats]
            ]

            def decode(mu, mask, eps, temperature, spk, noise):
                z = mu + eps / temperature
                return self.model.decoder.reverse_diffusion(
                    z, mask, mu, steps, spk_emb=self._speaker_emb(spk),
                    noise=noise if stoc else None, solver=solver,
                )

            self._decode_fns[key] = self._compile(decode, signature)
        return self._decode_fns[key]

    def check_speaker(self, speaker: int | None) -> int:
        """Validates a speaker id for this model; returns it (0 when ``None``).

        Raises:
            ValueError: If out of range, or given for a single-speaker model.
        """
        n_spks = self.model.n_spks
        if n_spks <= 1:
            if speaker not in (None, 0):
                raise ValueError(f"speaker {speaker} given, but the model has one speaker")
            return 0
        speaker = 0 if speaker is None else int(speaker)
        if not 0 <= speaker < n_spks:
            raise ValueError(
                f"speaker {speaker} out of range: the model has {n_spks} (0..{n_spks - 1})"
            )
        return speaker

    # ---------------------------------------------------------------- stages

    def _encode(self, pieces: list[_Piece], length_scale: float, spk: int, batch_size: int):
        """Stage 1: fills ``mu`` and ``y_len`` of every piece."""
        align = self._get_align_fn()
        ordered = sorted(pieces, key=lambda p: len(p.ids))
        for batch in _batches(ordered, batch_size):
            lengths = np.array([len(p.ids) for p in batch], np.int32)
            x = np.zeros((len(batch), lengths.max()), np.int32)  # [B, T_x]
            for i, p in enumerate(batch):
                x[i, : len(p.ids)] = p.ids
            spks = np.full(len(batch), spk, np.int32)
            mu_y, y_lengths = align(x, lengths, tf.constant(length_scale, tf.float32), spks)
            mu_y, y_lengths = mu_y.numpy(), y_lengths.numpy()
            for i, p in enumerate(batch):
                p.y_len = int(y_lengths[i])
                p.mu = mu_y[i, : p.y_len]  # [y_len, n_feats]

    def _decode(self, batch: list[_Piece], steps: int, temperature: float, solver: str,
                spk: int):
        """Stage 2 for pieces of one padded length: fills ``mel``."""
        stoc = solver in STOCHASTIC_SOLVERS
        n_feats = self.model.n_feats
        t_pad = int(fix_len_compatibility(max(p.y_len for p in batch)))
        mu = np.zeros((len(batch), t_pad, n_feats), np.float32)  # [B, T, n_feats]
        eps = np.zeros_like(mu)  # [B, T, n_feats]
        noise = np.zeros((steps if stoc else 0, len(batch), t_pad, n_feats), np.float32)
        for i, p in enumerate(batch):
            mu[i, : p.y_len] = p.mu
            eps[i, : p.y_len] = piece_noise(p.seed, p.pos, [p.y_len, n_feats])
            if stoc:
                noise[:, i, : p.y_len] = piece_noise(
                    p.seed, p.pos, [steps, p.y_len, n_feats], stochastic=True
                )
        y_lengths = np.array([p.y_len for p in batch], np.int32)
        mask = sequence_mask(y_lengths, t_pad)[:, :, None]  # [B, T, 1]
        spks = np.full(len(batch), spk, np.int32)
        decode = self._get_decode_fn(steps, solver)
        mel = decode(mu, mask, eps, tf.constant(temperature, tf.float32), spks, noise).numpy()
        for i, p in enumerate(batch):
            p.mel = mel[i, : p.y_len]  # [y_len, n_feats]

    def _vocode(self, batch: list[_Piece]):
        """Stage 3: fills ``audio`` (mels shorter than the batch's longest are padded
        with silence, their audio cut back to their own length)."""
        t_max = max(p.y_len for p in batch)
        mels = np.full((len(batch), t_max, self.model.n_feats), SILENCE_LOG_MEL,
                       np.float32)  # [B, T, n_feats]
        for i, p in enumerate(batch):
            mels[i, : p.y_len] = p.mel
        mels = np.clip(mels, SILENCE_LOG_MEL, MAX_LOG_MEL)
        audio = np.asarray(self.vocoder(mels), np.float32)  # [B, T * hop]
        expected = mels.shape[1] * self.hop_length
        if audio.shape != (len(batch), expected):
            raise ValueError(
                f"vocoder returned {audio.shape} for mels {mels.shape}; expected "
                f"{(len(batch), expected)}"
            )
        for i, p in enumerate(batch):
            p.audio = np.clip(audio[i, : p.y_len * self.hop_length], -1.0, 1.0)

    # ------------------------------------------------------------------- API

    def synthesize(
        self,
        texts: Sequence[str],
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        speaker: int | None = None,
        seed: int | Sequence[int] | None = None,
        stoc: bool = False,
        batch_size: int = 16,
        split_sentences: bool = True,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        sentence_pause: float = DEFAULT_SENTENCE_PAUSE,
        first_index: int = 0,
        skip_errors: bool = True,
        progress: bool = False,
        n_timesteps: int | None = None,
        first_piece: Sequence[int] | None = None,
        max_padding: float = 0.0,
        solver: str | None = None,
    ) -> tuple[list[Utterance], Timings]:
        """Synthesises several texts in batches; the workhorse of `tts`, `tts_batch`
        and ``inference.py``.

        Args:
            texts: Input texts.
            steps: Reverse-diffusion steps (``None``: the voice's ``inference.steps``;
                likewise for the next two; see `SynthesisSettings`).
            temperature: Noise divisor: ``z = mu_y + eps / temperature``.
            length_scale: Multiplies predicted durations (> 1 is slower speech).
            speaker: Speaker id of a multi-speaker model (default 0).
            seed: Base seed; text ``k`` uses ``seed + first_index + k``. ``None``
                draws a random one. A sequence gives each text its own seed.
            stoc: The official stochastic sampler: ``solver="euler-sde"``.
            batch_size: Most pieces per encoder/decoder/vocoder call.
            split_sentences: Speak each sentence separately and join them.
            max_tokens: Longest piece in encoder ids (longer sentences are split at
                clause punctuation; if that is not enough the text is not spoken).
            sentence_pause: Seconds of silence between joined pieces.
            first_index: Index of ``texts[0]`` (for seeds and `Utterance.index`).
            skip_errors: Report unspeakable texts in `Utterance.error` and go on;
                ``False`` raises before any synthesis.
            progress: Show a tqdm progress bar (over pieces).
            n_timesteps: The earlier name of ``steps`` (deprecated).
            first_piece: Per text, the position of its first piece within a longer
                text it was cut from (default 0). A piece's noise depends on its seed
                and position, so speaking sentence ``j`` of a text alone, with the
                text's seed and ``first_piece=[j]``, gives the same audio as that
                sentence within the whole text (how a stream is spoken).
            max_padding: 0 (default) decodes together only pieces of one padded length,
                so every piece's audio is what it would be alone. Above 0, pieces up to
                ``1 + max_padding`` times longer share a batch, padded: fewer, fuller
                batches (throughput on a busy server), at the price of results that
                depend slightly on the batch (the U-Net's GroupNorm and attention see
                the padding, more of it the more it moves the mel).
            solver: Reverse-diffusion solver, one of `gradtts_tf.solvers.SOLVERS`
                (``None``: the voice's ``inference.solver``). The stochastic ones draw
                their per-step noise from each text's seed as well.

        Returns:
            One `Utterance` per text and the `Timings` of the call.

        Raises:
            ValueError: On bad arguments, or (``skip_errors=False``) naming each text
                that cannot be spoken.
        """
        steps = renamed_steps(steps, n_timesteps)
        if stoc:
            if solver not in (None, "euler", "euler-sde"):
                raise ValueError(f"stoc=True is the euler-sde solver; got solver={solver!r}")
            solver = "euler-sde"
        settings = self.synthesis_settings(steps, temperature, length_scale, solver)
        if sentence_pause < 0:
            raise ValueError(f"sentence_pause must be >= 0, got {sentence_pause}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not max_padding >= 0:
            raise ValueError(f"max_padding must be >= 0, got {max_padding}")
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; use tts() for one text")
        spk = self.check_speaker(speaker)
        if seed is None:
            seed = secrets.randbelow(2**31)
        if isinstance(seed, int | np.integer):
            seeds = [int(seed) + first_index + k for k in range(len(texts))]
        else:
            seeds = [int(s) for s in seed]
        offsets = [0] * len(texts) if first_piece is None else [int(j) for j in first_piece]
        if len(seeds) != len(texts) or len(offsets) != len(texts):
            raise ValueError(
                f"{len(texts)} texts but {len(seeds)} seeds and {len(offsets)} first pieces"
            )

        utts, pieces = [], []
        for k, text in enumerate(texts):
            utt = Utterance(first_index + k, text)
            try:
                prepared = self.prepare(text, split_sentences, max_tokens)
            except ValueError as e:
                utt.error = str(e)
            else:
                utt.pieces = [p for p, _ in prepared]
                for j, (_, ids) in enumerate(prepared):
                    pieces.append(_Piece(k, offsets[k] + j, seeds[k], ids))
            utts.append(utt)
        if not skip_errors and any(u.error for u in utts):
            raise ValueError(
                "; ".join(f"text {u.index}: {u.error}" for u in utts if u.error)
            )

        timings = Timings()
        start = time.perf_counter()
        self._encode(pieces, settings.length_scale, spk, batch_size)
        timings.encoder = time.perf_counter() - start

        from tqdm.auto import tqdm

        with tqdm(total=len(pieces), unit="sentence", desc="synthesis",
                  disable=not progress) as bar:
            if max_padding > 0:
                batches = _padded_groups(pieces, batch_size, max_padding)
            else:
                batches = _grouped(pieces, lambda p: fix_len_compatibility(p.y_len), batch_size)
            for batch in batches:
                start = time.perf_counter()
                self._decode(batch, settings.steps, settings.temperature, settings.solver,
                             spk)
                timings.decoder += time.perf_counter() - start
                start = time.perf_counter()
                for same in ([batch] if max_padding > 0 else
                             _grouped(batch, lambda p: p.y_len, batch_size)):
                    self._vocode(same)
                timings.vocoder += time.perf_counter() - start
                bar.update(len(batch))

        self._join(utts, pieces, sentence_pause)
        timings.audio = sum(len(u.audio) for u in utts if u.audio is not None) / self.sample_rate
        return utts, timings

    def _join(self, utts: list[Utterance], pieces: list[_Piece], sentence_pause: float):
        """Concatenates each utterance's pieces with silent frames in between."""
        silent_audio = self.pause(sentence_pause)
        frames = len(silent_audio) // self.hop_length
        silent_mel = np.full((frames, self.model.n_feats), SILENCE_LOG_MEL, np.float32)
        by_utt: dict[int, list[_Piece]] = defaultdict(list)
        for p in pieces:
            by_utt[p.utt].append(p)
        for k, ps in by_utt.items():
            ps.sort(key=lambda p: p.pos)
            mels, audios = [], []
            for j, p in enumerate(ps):
                if j:
                    mels.append(silent_mel)
                    audios.append(silent_audio)
                mels.append(p.mel)
                audios.append(p.audio)
            utts[k].mel = np.concatenate(mels)  # [frames, n_feats]
            utts[k].audio = np.concatenate(audios)  # [frames * hop]
            utts[k].mel_lengths = [p.y_len for p in ps]

    def pause(self, seconds: float = DEFAULT_SENTENCE_PAUSE) -> np.ndarray:
        """The silence put between joined pieces: whole mel frames of zeros.

        Returns:
            float32 zeros ``[round(seconds * sample_rate / hop) * hop]``.
        """
        frames = round(seconds * self.sample_rate / self.hop_length)
        return np.zeros(frames * self.hop_length, np.float32)

    def synthesis_settings(
        self,
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        solver: str | None = None,
    ) -> SynthesisSettings:
        """The voice's settings (``config.inference``) with each given one in place.

        Raises:
            ValueError: A setting out of range.
        """
        return self.config.inference.override(steps, temperature, length_scale, solver)

    def warmup(self, steps: int | None = None, stoc: bool = False, speaker: int | None = None,
               solver: str | None = None):
        """Traces the synthesis graphs on a short text (so timings exclude tracing).

        Returns:
            Seconds it took.
        """
        start = time.perf_counter()
        self.synthesize(["A."], steps=steps, stoc=stoc, speaker=speaker, seed=0, solver=solver)
        return time.perf_counter() - start

    def tts(
        self,
        text: str,
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        speaker: int | None = None,
        seed: int | None = None,
        n_timesteps: int | None = None,
        solver: str | None = None,
        **kwargs,
    ) -> tuple[np.ndarray, int]:
        """Text to speech.

        Args:
            text: Any length of English text; sentences are spoken one by one and
                joined with a short pause.
            steps: Reverse-diffusion steps (more: cleaner, slower).
            temperature: Noise divisor (official default 1.5).
            length_scale: Speaking-time factor (> 1 is slower).
                ``None`` for any of these three: the voice's ``inference`` config.
            speaker: Speaker id of a multi-speaker model.
            seed: Same seed, same audio; ``None`` for a random draw.
            n_timesteps: The earlier name of ``steps`` (deprecated).
            solver: Reverse-diffusion solver (``None``: the voice's; see `synthesize`).
            **kwargs: ``split_sentences``, ``max_tokens``, ``sentence_pause``, ``stoc``
                (see `synthesize`).

        Returns:
            ``(waveform float32 [samples] in [-1, 1], sample_rate)``.

        Raises:
            ValueError: If the text is empty, has nothing pronounceable or is too long.
        """
        (utt,), _ = self.synthesize(
            [text], steps=renamed_steps(steps, n_timesteps), temperature=temperature,
            length_scale=length_scale, speaker=speaker, seed=seed, skip_errors=False,
            solver=solver, **kwargs,
        )
        return utt.audio, self.sample_rate

    def tts_batch(
        self,
        texts: Sequence[str],
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        speaker: int | None = None,
        seed: int | None = None,
        batch_size: int = 16,
        **kwargs,
    ) -> list[tuple[np.ndarray, int]]:
        """Several texts in batches; item ``k`` equals ``tts(texts[k], seed=seed + k)``.

        Args:
            texts: Input texts.
            batch_size: Most pieces per model call.
            steps, temperature, length_scale, speaker, seed, **kwargs: As in `tts`.

        Returns:
            ``(waveform, sample_rate)`` per text, in input order.

        Raises:
            ValueError: Naming every text that cannot be spoken (nothing is synthesised).
        """
        utts, _ = self.synthesize(
            texts, steps=steps, temperature=temperature,
            length_scale=length_scale, speaker=speaker, seed=seed, batch_size=batch_size,
            skip_errors=False, **kwargs,
        )
        return [(u.audio, self.sample_rate) for u in utts]
