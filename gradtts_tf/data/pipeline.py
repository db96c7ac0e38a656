"""Reads TTS corpora and builds the `tf.data` input pipeline for Grad-TTS.

Two corpus formats are understood:

* an LJSpeech-format folder: ``metadata.csv`` with ``id|text|normalized text`` lines
  and the audio in ``wavs/ID.wav``;
* a Grad-TTS filelist: a text file of ``path|text`` or ``path|text|speaker`` lines
  (paths relative to the filelist's folder or absolute).

A first pass (`prepare_corpus`) validates every utterance once: it loads the audio
(resampling when needed), converts the text to ids, computes the log-mel, and
records lengths, so padded shapes are known before training and graph mode/XLA see
static shapes. Its result (the manifest, and the mels when ``data.cache_mels``) is
cached beside the data and reused while the corpus and settings are unchanged. Bad
utterances are skipped with a reason naming the file and line, and summarised; the
summary is logged (logger ``gradtts_tf.data``: counts at INFO, each skipped utterance
at WARNING).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import tensorflow as tf

from gradtts_tf.audio import AudioError, load_audio, mel_from_config
from gradtts_tf.config import Config, as_config
from gradtts_tf.ops import fix_len_compatibility
from gradtts_tf.text import text_to_ids

logger = logging.getLogger("gradtts_tf.data")

MANIFEST_VERSION = 1


@dataclasses.dataclass
class Utterance:
    """One line of a corpus."""

    uid: str
    audio_path: str
    text: str
    speaker: int
    source: str  # "file:line" for error messages


@dataclasses.dataclass
class Manifest:
    """The validated corpus: usable utterances, what was skipped, padded shapes."""

    entries: list[dict]
    skipped: list[dict]
    max_text_len: int
    max_mel_len: int
    cache_dir: str
    resampled: dict[str, int] = dataclasses.field(default_factory=dict)

    def split(self, split: str, config: Config) -> list[dict]:
        """Returns the entries of ``split`` ("train", "val" or "all")."""
        if split == "all":
            return list(self.entries)
        fixed = set(config.data.val_ids)
        held = [e for e in self.entries if e["uid"] in fixed]
        if split == "val" and len(held) < len(fixed):
            missing = sorted(fixed - {e["uid"] for e in held})
            logger.warning(
                "data.val_ids: %d of %d ids are not usable utterances of this corpus "
                "(%s): check the ids against metadata.csv and the skipped rows",
                len(missing),
                len(fixed),
                ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
            )
        # The random part is drawn from the other utterances, as without val_ids.
        order = sorted((e for e in self.entries if e["uid"] not in fixed), key=lambda e: e["uid"])
        rng = np.random.default_rng(config.data.split_seed)
        perm = rng.permutation(len(order))
        n_val = config.data.n_val
        if config.data.val_fraction > 0:
            n_val = int(round(config.data.val_fraction * len(order)))
        n_val = min(n_val, max(len(order) - 1, 0))
        val_idx = set(perm[:n_val].tolist())
        if split == "val":
            return sorted(held + [order[i] for i in val_idx], key=lambda e: e["uid"])
        if split == "train":
            return [e for i, e in enumerate(order) if i not in val_idx]
        raise ValueError(f"unknown split '{split}': use 'train', 'val' or 'all'")

    def counts(self) -> list[str]:
        """The summary's count lines: usable/skipped totals, resampling, reasons."""
        lines = [
            f"data: {len(self.entries)} utterances usable, {len(self.skipped)} skipped; "
            f"padded shapes: text {self.max_text_len} ids, mel {self.max_mel_len} frames"
        ]
        for rate, n in self.resampled.items():
            lines.append(f"  resampled {n} files from {rate} Hz")
        for reason, n in Counter(s["reason"] for s in self.skipped).most_common():
            lines.append(f"  skipped {n} x {reason}")
        return lines

    @staticmethod
    def describe_skip(item: dict) -> str:
        """One skipped item as ``file:line (id): reason: detail``."""
        return f"{item['source']} ({item['uid']}): {item['reason']}: {item['detail']}"

    def summary(self) -> str:
        """A human-readable account of what was found and skipped."""
        lines = self.counts()
        lines += [f"    {self.describe_skip(s)}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(
                f"    ... and {len(self.skipped) - 20} more (see "
                f"{Path(self.cache_dir) / 'manifest.json'})"
            )
        return "\n".join(lines)

    def log_summary(self, log: logging.Logger = logger) -> None:
        """Logs the summary: the counts at INFO, then one WARNING per skipped item.

        Args:
            log: The logger to write to (default: ``gradtts_tf.data``).
        """
        log.info("%s", "\n".join(self.counts()))
        for item in self.skipped:
            log.warning("skipped %s", self.describe_skip(item))


def _decode_lines(path: Path) -> list[tuple[int, str | None, str]]:
    """Reads ``path`` line by line; undecodable lines come back as ``None`` text."""
    out = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                out.append((lineno, raw.decode("utf-8"), ""))
            except UnicodeDecodeError as e:
                out.append((lineno, None, f"not UTF-8 ({e.reason} at byte {e.start})"))
    return out


def read_corpus(data_path: str | os.PathLike) -> tuple[list[Utterance], list[dict]]:
    """Parses an LJSpeech folder or a Grad-TTS filelist.

    Args:
        data_path: A folder holding ``metadata.csv`` and ``wavs/``, or a filelist file.

    Returns:
        ``(utterances, skipped)``; each skipped item is a dict with ``uid``,
        ``source`` (file:line), ``reason`` and ``detail``.

    Raises:
        FileNotFoundError: When ``data_path`` is neither a folder with metadata.csv
            nor a file.
    """
    path = Path(data_path)
    utterances: list[Utterance] = []
    skipped: list[dict] = []

    def skip(source: str, uid: str, reason: str, detail: str) -> None:
        skipped.append({"uid": uid, "source": source, "reason": reason, "detail": detail})

    if path.is_dir():
        meta = path / "metadata.csv"
        if not meta.is_file():
            raise FileNotFoundError(
                f"{path} is a folder without metadata.csv: expected an LJSpeech-format "
                "folder (metadata.csv + wavs/) or a filelist file"
            )
        for lineno, line, err in _decode_lines(meta):
            source = f"{meta}:{lineno}"
            if line is None:
                skip(source, "?", "non-UTF-8 line", err)
                continue
            parts = line.split("|")
            if len(parts) < 2 or not parts[0].strip():
                skip(source, "?", "malformed line", f"expected 'id|text|normalized', got {line!r}")
                continue
            uid = parts[0].strip()
            text = parts[2] if len(parts) >= 3 and parts[2].strip() else parts[1]
            audio = path / "wavs" / f"{uid}.wav"
            utterances.append(Utterance(uid, str(audio), text.strip(), 0, source))
    elif path.is_file():
        for lineno, line, err in _decode_lines(path):
            source = f"{path}:{lineno}"
            if line is None:
                skip(source, "?", "non-UTF-8 line", err)
                continue
            parts = line.split("|")
            if len(parts) not in (2, 3) or not parts[0].strip():
                skip(
                    source, "?", "malformed line",
                    f"expected 'path|text' or 'path|text|speaker', got {line!r}",
                )
                continue
            audio = Path(parts[0].strip())
            if not audio.is_absolute():
                audio = path.parent / audio
            speaker = 0
            if len(parts) == 3:
                try:
                    speaker = int(parts[2])
                except ValueError:
                    skip(source, audio.stem, "bad speaker id", f"not an integer: {parts[2]!r}")
                    continue
            utterances.append(Utterance(audio.stem, str(audio), parts[1].strip(), speaker, source))
    else:
        raise FileNotFoundError(f"data path not found: {path}")
    return utterances, skipped


def _fingerprint(data_path: Path, config: Config, utterances: list[Utterance]) -> str:
    """Hashes the corpus listing, its audio files' sizes/mtimes and the settings."""
    h = hashlib.sha256()
    listing = data_path / "metadata.csv" if data_path.is_dir() else data_path
    h.update(listing.read_bytes())
    # Audio files added, replaced or removed since the last preparation invalidate it.
    for utt in utterances:
        try:
            st = os.stat(utt.audio_path)
            h.update(f"{utt.audio_path}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{utt.audio_path}:missing".encode())
    settings = {
        "audio": dataclasses.asdict(config.audio),
        "text": dataclasses.asdict(config.text),
        "max": [config.data.max_text_len, config.data.max_mel_len],
        "n_spks": config.model.n_spks,
        "version": MANIFEST_VERSION,
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _cache_dir(data_path: Path, config: Config, fingerprint: str) -> Path:
    if config.data.cache_dir:
        base = Path(config.data.cache_dir)
    else:
        base = (data_path if data_path.is_dir() else data_path.parent) / ".gradtts_cache"
    return base / fingerprint


def prepare_corpus(
    data_path: str | os.PathLike, config: Config | str | None = None, progress: bool = True
) -> Manifest:
    """Validates every utterance once, caching mels and the manifest beside the data.

    The outcome is logged (logger ``gradtts_tf.data``), also when the manifest comes
    from the cache: the counts (`Manifest.counts`) at INFO, and each skipped utterance
    at WARNING, naming its file, line, reason and detail.

    Args:
        data_path: LJSpeech folder or filelist.
        config: `Config`, YAML path or ``None`` for defaults.
        progress: Show a progress bar during the first pass.

    Returns:
        The `Manifest` (loaded from cache when the corpus and settings are unchanged).

    Raises:
        FileNotFoundError: When ``data_path`` is neither an LJSpeech folder nor a file.
        ValueError: When no utterance of the corpus is usable.
    """
    config = as_config(config)
    data_path = Path(data_path)
    utterances, skipped = read_corpus(data_path)
    fingerprint = _fingerprint(data_path, config, utterances)
    cache = _cache_dir(data_path, config, fingerprint)
    manifest_file = cache / "manifest.json"
    if manifest_file.is_file():
        stored = json.loads(manifest_file.read_text())
        manifest = Manifest(**stored)
        if not config.data.cache_mels or all(
            os.path.exists(e["mel_path"]) for e in manifest.entries
        ):
            manifest.log_summary()
            return manifest
    cache.mkdir(parents=True, exist_ok=True)

    audio_cfg = config.audio
    mel_fn = tf.function(
        lambda a: mel_from_config(a, audio_cfg),
        input_signature=[tf.TensorSpec([None], tf.float32)],
    )
    entries = []
    resampled: Counter[int] = Counter()
    seen: set[str] = set()
    iterator = utterances
    if progress:
        from tqdm import tqdm

        iterator = tqdm(utterances, desc="preparing corpus", unit="utt")
    for utt in iterator:
        def skip(reason: str, detail: str, utt: Utterance = utt) -> None:
            skipped.append(
                {"uid": utt.uid, "source": utt.source, "reason": reason, "detail": detail}
            )

        if utt.uid in seen:
            skip("duplicate id", f"'{utt.uid}' appears more than once; later line ignored")
            continue
        seen.add(utt.uid)
        if not (0 <= utt.speaker < config.model.n_spks):
            skip("bad speaker id", f"speaker {utt.speaker} not in [0, {config.model.n_spks})")
            continue
        try:
            ids = text_to_ids(utt.text, add_blank=config.text.add_blank)
        except ValueError as e:
            skip("unusable transcript", str(e))
            continue
        if config.data.max_text_len and len(ids) > config.data.max_text_len:
            skip("text too long", f"{len(ids)} ids > data.max_text_len")
            continue
        try:
            audio = load_audio(utt.audio_path, audio_cfg.sample_rate)
        except AudioError as e:
            skip("bad audio", str(e))
            continue
        if audio.shape[0] < audio_cfg.win_length:
            skip("audio too short", f"{audio.shape[0]} samples < one window")
            continue
        try:
            rate = sf.info(utt.audio_path).samplerate
        except Exception:  # noqa: BLE001 - read by tensorflow-io instead; rate unknown here
            rate = audio_cfg.sample_rate
        if rate != audio_cfg.sample_rate:
            resampled[rate] += 1
        mel = mel_fn(tf.constant(audio)).numpy()
        if config.data.max_mel_len and mel.shape[0] > config.data.max_mel_len:
            skip("audio too long", f"{mel.shape[0]} frames > data.max_mel_len")
            continue
        entry = {
            "uid": utt.uid,
            "audio_path": utt.audio_path,
            "ids": ids,
            "speaker": utt.speaker,
            "source": utt.source,
            "n_frames": int(mel.shape[0]),
            "mel_path": "",
        }
        if config.data.cache_mels:
            entry["mel_path"] = str(cache / f"{utt.uid}.npy")
            np.save(entry["mel_path"], mel.astype(np.float32))
        entries.append(entry)

    if not entries:
        for item in skipped:
            logger.warning("skipped %s", Manifest.describe_skip(item))
        raise ValueError(
            f"no usable utterance in {data_path}: all {len(skipped)} skipped; fix or remove "
            "the lines logged above. First reasons: "
            + "; ".join(Manifest.describe_skip(s) for s in skipped[:5])
        )
    max_text = config.data.max_text_len or max(len(e["ids"]) for e in entries)
    max_mel = config.data.max_mel_len or max(e["n_frames"] for e in entries)
    manifest = Manifest(
        entries=entries,
        skipped=skipped,
        max_text_len=int(max_text),
        max_mel_len=int(fix_len_compatibility(max_mel)),
        cache_dir=str(cache),
        resampled={str(rate): n for rate, n in resampled.items()},
    )
    tmp = manifest_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(manifest)))
    os.replace(tmp, manifest_file)
    manifest.log_summary()
    return manifest


def _bucket_boundaries(lengths: list[int], n_buckets: int, max_len: int) -> list[int]:
    """Mel-length bucket edges at quantiles, rounded up to multiples of 4."""
    qs = np.quantile(np.asarray(lengths), np.linspace(0, 1, n_buckets + 1)[1:-1])
    edges = sorted({int(fix_len_compatibility(int(q))) for q in qs} | {max_len})
    return [e for e in edges if e <= max_len]


def _bucket_sizes(n_frames: list[int], edges: list[int], max_mel_len: int) -> list[int]:
    """How many utterances fall in each `build_dataset` length bucket of ``edges``.

    Mirrors ``tf.data.Dataset.bucket_by_sequence_length`` with the boundaries
    ``edge + 1`` that `build_dataset` uses, on mels truncated to ``max_mel_len``.
    """
    boundaries = [e + 1 for e in edges]
    sizes = [0] * (len(boundaries) + 1)
    for n in n_frames:
        sizes[bisect.bisect_right(boundaries, min(n, max_mel_len))] += 1
    return sizes


def _check_full_batches(
    entries: list[dict],
    edges: list[int],
    batch: int,
    data_path: str | os.PathLike,
    config: Config,
    manifest: Manifest,
) -> None:
    """Raises if a full-batches-only "train" split would yield no batch at all.

    Args:
        entries: The split's usable entries.
        edges: Bucket edges when ``data.bucketing`` (else empty).
        batch: ``train.batch_size``.
        data_path: The corpus, for the message.
        config: The configuration, for the message.
        manifest: The prepared corpus, for the message.

    Raises:
        ValueError: When fewer than ``batch`` utterances are usable (with bucketing:
            in every length bucket).
    """
    n = len(entries)
    n_val = len(manifest.split("val", config))
    sources = []
    if n_val:
        sources.append(
            f"lower data.n_val (now {config.data.n_val}) or data.val_fraction (now "
            f"{config.data.val_fraction}): the 'val' split holds {n_val}"
        )
    if manifest.skipped:
        sources.append(
            f"fix the {len(manifest.skipped)} skipped utterances of the corpus (logged as "
            "warnings by prepare_corpus)"
        )
    sources.append("add utterances to the corpus")
    more = "or give the 'train' split more utterances: " + "; ".join(sources)
    if not edges:
        if n < batch:
            raise ValueError(
                f"split 'train' of {data_path} has {n} usable utterances, fewer than one "
                f"batch of train.batch_size={batch}; the 'train' split gives full batches "
                f"only, so it would yield no batch at all. Set train.batch_size to {n} or "
                f"less (train.py: --set train.batch_size={n}), {more}."
            )
        return
    sizes = _bucket_sizes([e["n_frames"] for e in entries], edges, manifest.max_mel_len)
    if max(sizes) < batch:
        raise ValueError(
            f"split 'train' of {data_path} has {n} usable utterances in {len(sizes)} "
            f"length buckets of {sizes} utterances, none of which fills one batch of "
            f"train.batch_size={batch}; with data.bucketing each batch comes from one bucket "
            f"and holds full batches only, so it would yield no batch at all. Set "
            f"train.batch_size to {max(sizes)} or less, lower data.n_buckets (now "
            f"{config.data.n_buckets}), set data.bucketing=false, {more}."
        )
    small = [size for size in sizes if 0 < size < batch]
    if small:
        logger.warning(
            "split 'train' of %s: %d utterances are in length buckets holding fewer than one "
            "batch of train.batch_size=%d (bucket sizes %s) and never reach a batch; lower "
            "data.n_buckets or train.batch_size to use them",
            data_path, sum(small), batch, sizes,
        )


def stream_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` of a resumable stream visits ``n`` items."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def build_dataset(
    data_path: str | os.PathLike,
    config: Config | str | os.PathLike | None = None,
    split: str = "train",
    manifest: Manifest | None = None,
    start: int | None = None,
) -> tf.data.Dataset:
    """Builds batched Grad-TTS inputs from a corpus.

    Args:
        data_path: LJSpeech folder or Grad-TTS filelist.
        config: `Config`, YAML path or ``None`` for defaults.
        split: "train" (shuffled, full batches only), "val" or "all" (in order).
        manifest: A prepared `Manifest` (skips re-reading the cache).
        start: Makes the split an endless, resumable stream: epoch ``e`` visits it
            in the order `stream_order(len(split), train.seed, e)`, and the stream
            begins at its ``start``-th item (``start = e * len(split) + i``), so
            training can continue exactly where a checkpoint left off. Batches may
            span two epochs; no item is dropped.

    Without ``manifest``, the corpus is prepared by `prepare_corpus`, which logs
    what it found and skipped (logger ``gradtts_tf.data``); a given ``manifest`` was
    logged when it was prepared and is not logged again.

    Returns:
        A dataset of dicts: ``x`` int32 ``[B, T_x]``, ``x_lengths`` int32 ``[B]``,
        ``y`` float32 ``[B, T_y, n_mels]``, ``y_lengths`` int32 ``[B]``,
        ``spk`` int32 ``[B]``. ``T_x``/``T_y`` are the corpus-wide padded maxima
        (static), or one of a few bucket lengths when ``data.bucketing``.

    Raises:
        ValueError: When the split is empty, or when it is "train" without ``start``
            (full batches only) and holds fewer usable utterances than one batch of
            ``train.batch_size`` (with ``data.bucketing``: no length bucket does), so
            the dataset would yield no batch at all.
    """
    config = as_config(config)
    if manifest is None:
        manifest = prepare_corpus(data_path, config)
    entries = manifest.split(split, config)
    if not entries:
        raise ValueError(
            f"split '{split}' of {data_path} is empty ({len(manifest.entries)} usable "
            f"utterances in the corpus, {len(manifest.skipped)} skipped; "
            f"data.n_val={config.data.n_val}, data.val_fraction={config.data.val_fraction}): "
            + (
                "set data.n_val or data.val_fraction above 0 to hold out validation utterances"
                if split == "val"
                else "add usable utterances to the corpus"
            )
        )
    training = split == "train"
    batch = config.train.batch_size
    edges: list[int] = []
    if config.data.bucketing and training:
        edges = _bucket_boundaries(
            [e["n_frames"] for e in entries], config.data.n_buckets, manifest.max_mel_len
        )
    if training and start is None:
        # Full batches only, and no endless stream to fill them across epochs.
        _check_full_batches(entries, edges, batch, data_path, config, manifest)
    n_mels = config.audio.n_mels
    audio_cfg = config.audio

    def ordered():
        if start is None:
            yield from entries
            return
        epoch, i = divmod(start, len(entries))
        while True:
            for j in stream_order(len(entries), config.train.seed, epoch)[i:]:
                yield entries[j]
            epoch, i = epoch + 1, 0

    def generate():
        for e in ordered():
            try:
                if config.data.cache_mels:
                    feats = np.load(e["mel_path"])
                    if feats.shape != (e["n_frames"], n_mels):
                        raise ValueError(f"cached mel {e['mel_path']} has shape {feats.shape}")
                else:
                    feats = load_audio(e["audio_path"], audio_cfg.sample_rate)
            except Exception as err:  # noqa: BLE001 - any bad file must not end the epoch
                # The corpus or cache changed since preparation: skip, don't crash mid-epoch.
                logger.warning(
                    "skipping %s (%s, %s): %s; delete %s to re-prepare the corpus",
                    e["uid"], e["source"], e["audio_path"], err, manifest.cache_dir,
                )
                continue
            yield np.asarray(e["ids"], np.int32), feats.astype(np.float32), np.int32(e["speaker"])

    feat_spec = (
        tf.TensorSpec([None, n_mels], tf.float32)
        if config.data.cache_mels
        else tf.TensorSpec([None], tf.float32)
    )
    ds = tf.data.Dataset.from_generator(
        generate,
        output_signature=(tf.TensorSpec([None], tf.int32), feat_spec, tf.TensorSpec([], tf.int32)),
    )
    if training and start is None:
        ds = ds.shuffle(
            min(config.data.shuffle_buffer, len(entries)),
            seed=config.train.seed,
            reshuffle_each_iteration=True,
        )

    def to_example(ids, feats, spk):
        mel = feats if config.data.cache_mels else mel_from_config(feats, audio_cfg)
        mel = mel[: manifest.max_mel_len]  # [T_y, n_mels]
        return {
            "x": ids,
            "x_lengths": tf.shape(ids)[0],
            "y": mel,
            "y_lengths": tf.shape(mel)[0],
            "spk": spk,
        }

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if config.data.bucketing and training:
        padded = {
            "x": [manifest.max_text_len], "x_lengths": [], "y": [None, n_mels],
            "y_lengths": [], "spk": [],
        }
        # pad_to_bucket_boundary pads to (edge - 1), so edges are shifted by one.
        ds = ds.bucket_by_sequence_length(
            lambda ex: ex["y_lengths"],
            bucket_boundaries=[e + 1 for e in edges],
            bucket_batch_sizes=[batch] * (len(edges) + 1),
            padded_shapes=padded,
            pad_to_bucket_boundary=True,
            drop_remainder=True,
        )
    else:
        padded = {
            "x": [manifest.max_text_len], "x_lengths": [], "y": [manifest.max_mel_len, n_mels],
            "y_lengths": [], "spk": [],
        }
        ds = ds.padded_batch(
            batch, padded_shapes=padded, drop_remainder=training or start is not None
        )
    return ds.prefetch(tf.data.AUTOTUNE)
