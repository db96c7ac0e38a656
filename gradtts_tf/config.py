"""One typed configuration tree for data, model and training, loaded from YAML.

Defaults equal the official Grad-TTS ``params.py``. Unknown keys are an error that
names the key and the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gradtts_tf.runtime import CPU_MATH
from gradtts_tf.solvers import SOLVERS


class ConfigError(ValueError):
    """A configuration file or override that does not fit the config tree."""


@dataclass
class AudioConfig:
    """Waveform and log-mel settings (HiFi-GAN / Grad-TTS mel)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0


@dataclass
class TextConfig:
    """Text front end settings."""

    add_blank: bool = True


@dataclass
class ModelConfig:
    """Grad-TTS constructor arguments, named as in the official ``params.py``.

    ``n_feats`` is not here: it is ``audio.n_mels``, so the two can never disagree.
    """

    n_vocab: int = 149
    n_spks: int = 1
    spk_emb_dim: int = 64
    n_enc_channels: int = 192
    filter_channels: int = 768
    filter_channels_dp: int = 256
    n_heads: int = 2
    n_enc_layers: int = 6
    enc_kernel: int = 3
    enc_dropout: float = 0.1
    window_size: int = 4
    dec_dim: int = 64
    beta_min: float = 0.05
    beta_max: float = 20.0
    pe_scale: int = 1000
    # Official code does not condition the text encoder on the speaker; this adds it.
    spk_cond_encoder: bool = False


@dataclass
class DataConfig:
    """Dataset reading, splitting, padding and caching."""

    n_val: int = 100
    val_fraction: float = 0.0
    split_seed: int = 1234
    # Utterance ids always in the validation split (never trained on), besides the n_val
    # (or val_fraction) drawn at random from the rest: e.g. an earlier voice's held-out
    # sentences, so that a new voice can be compared with it on them.
    val_ids: list[str] = field(default_factory=list)
    max_text_len: int = 0
    max_mel_len: int = 0
    bucketing: bool = False
    n_buckets: int = 4
    cache_mels: bool = True
    cache_dir: str = ""
    shuffle_buffer: int = 1000


@dataclass
class TrainConfig:
    """Optimisation, checkpointing and logging (defaults: the official trainer's).

    Steps count batches; one fit "epoch" is ``checkpoint_every_steps`` steps (0: one
    pass over the training split), and a checkpoint is written at the end of each.
    """

    # Global batch: split across replicas under a distribution strategy.
    batch_size: int = 16
    learning_rate: float = 1e-4
    # Adam at torch's defaults, as the official train.py.
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    # "constant", "exponential" (lr * rate ** (s / decay_steps)) or "step"
    # (lr * rate ** floor(s / decay_steps)), after `warmup_steps` of linear warm-up.
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_decay_rate: float = 0.5
    lr_decay_steps: int = 100000
    min_learning_rate: float = 0.0
    out_size: int = 172
    epochs: int = 10000
    grad_clip: float = 1.0
    # Batches whose gradients are averaged into one update (1: off).
    grad_accum_steps: int = 1
    # Exponential moving average of the weights (0: off); used for validation,
    # logged samples and the exported model.weights.h5.
    ema_decay: float = 0.0
    seed: int = 37
    # "auto": XLA on GPUs only (on CPU, XLA compiles for minutes and runs slower than
    # TF's oneDNN kernels); "on" or "off" to force.
    jit_compile: str = "auto"
    checkpoint_every_steps: int = 0
    keep_last: int = 3
    # 0: validate at every checkpoint; else every N steps (a multiple of the interval).
    val_every_steps: int = 0
    log_every_steps: int = 50
    # Mel/alignment images and Griffin-Lim audio every N validations (0: never).
    log_images_every: int = 1
    n_log_samples: int = 2
    log_synth_timesteps: int = 10
    png_logs: bool = False
    # "float32", "mixed_float16" (dynamic loss scaling) or "mixed_bfloat16".
    precision: str = "float32"
    # Convolutions and matmuls on x86 CPUs: "float32" or "bfloat16" (oneDNN fpmath
    # mode: bfloat16 inputs, float32 accumulation; see gradtts_tf.runtime).
    cpu_math: str = "float32"
    # "default" (one device), "mirrored" (all local GPUs) or "multiworker" (TF_CONFIG).
    strategy: str = "default"
    # Consecutive non-finite (skipped) steps before training stops.
    max_nonfinite_steps: int = 100

    def __post_init__(self):
        choices = {
            "jit_compile": ("auto", "on", "off"),
            "lr_schedule": ("constant", "exponential", "step"),
            "precision": ("float32", "mixed_float16", "mixed_bfloat16"),
            "cpu_math": CPU_MATH,
            "strategy": ("default", "mirrored", "multiworker"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"train.{key}: expected one of {', '.join(map(repr, allowed))}, "
                    f"got {getattr(self, key)!r}"
                )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay: expected 0 <= value < 1, got {self.ema_decay}")
        for key in ("batch_size", "grad_accum_steps", "keep_last", "lr_decay_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key}: expected >= 1, got {getattr(self, key)}")


@dataclass
class VocoderConfig:
    """HiFi-GAN generator layout and GAN training settings (defaults: official V1).

    The layout keys are named as in the official HiFi-GAN JSON configs
    (``config_v1.json``); ``resblock`` is ``"1"`` (V1/V2) or ``"2"`` (V3).
    ``prod(upsample_rates)`` must equal ``audio.hop_length``.
    """

    # "1" or "2"; YAML's unquoted 1/2 is accepted too.
    resblock: str | int = "1"
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    )
    # Discriminator widths (official; smaller values make CPU runs and tests cheaper).
    mpd_periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    mpd_channels: list[int] = field(default_factory=lambda: [32, 128, 512, 1024, 1024])
    msd_channels: list[int] = field(
        default_factory=lambda: [128, 128, 256, 512, 1024, 1024, 1024]
    )
    msd_groups: list[int] = field(default_factory=lambda: [1, 4, 16, 16, 16, 16, 1])
    segment_size: int = 8192
    batch_size: int = 16
    learning_rate: float = 2e-4
    adam_b1: float = 0.8
    adam_b2: float = 0.99
    # The official optimiser is torch AdamW with its default weight decay.
    weight_decay: float = 0.01
    lr_decay: float = 0.999
    epochs: int = 3100
    # 0: one pass over the data per epoch (the LR decays once per epoch, as official).
    steps_per_epoch: int = 0
    seed: int = 1234
    # Upper mel edge of the mel-L1 loss; None: Nyquist (official ``fmax_for_loss``).
    loss_f_max: float | None = None

    def __post_init__(self):
        if self.loss_f_max is not None:
            self.loss_f_max = float(self.loss_f_max)
        if isinstance(self.resblock, int) and not isinstance(self.resblock, bool):
            self.resblock = str(self.resblock)
        if self.resblock not in ("1", "2"):
            raise ConfigError(f"vocoder.resblock: expected '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError(
                "vocoder.upsample_rates and vocoder.upsample_kernel_sizes differ in length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError(
                "vocoder.resblock_kernel_sizes and vocoder.resblock_dilation_sizes differ "
                "in length"
            )


@dataclass
class SynthesisSettings:
    """How a voice speaks unless told otherwise: the ``inference`` section of a config,
    ``sampling`` in an export's ``model_info.json``. One set of names everywhere: the
    `Synthesizer`, the LiteRT runner, the programs' ``--steps``/``--temperature``/
    ``--length-scale``, the exporters, the sample logger and the browser page.

    The official defaults: 10 reverse-diffusion steps of the ``euler`` solver,
    temperature 1.5 (the start sample is ``mu_y + eps / temperature``), length scale 1
    (> 1 speaks slower). ``solver`` is one of `gradtts_tf.solvers.SOLVERS`.
    """

    steps: int = 10
    temperature: float = 1.5
    length_scale: float = 1.0
    solver: str = "euler"

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps: expected an integer >= 1, got {self.steps!r}")
        if self.solver not in SOLVERS:
            raise ConfigError(
                f"solver: expected one of {', '.join(SOLVERS)}, got {self.solver!r}"
            )
        for key in ("temperature", "length_scale"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{key}: expected a number > 0, got {value!r}")
            setattr(self, key, float(value))

    def override(
        self,
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        solver: str | None = None,
    ) -> SynthesisSettings:
        """A copy with every setting that is not ``None`` replaced (and checked).

        Raises:
            ConfigError: A value out of range (a `ValueError`).
        """
        given = {
            "steps": steps, "temperature": temperature, "length_scale": length_scale,
            "solver": solver,
        }
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SynthesisSettings:
        """From a manifest's ``sampling`` mapping (missing keys: the official defaults)."""
        values = dict(values or {})
        if "n_timesteps" in values:  # the key's earlier name
            values.setdefault("steps", values.pop("n_timesteps"))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# The section's earlier name, kept for one release.
InferenceConfig = SynthesisSettings


def renamed_steps(steps: int | None, n_timesteps: int | None) -> int | None:
    """``steps``, or ``n_timesteps`` (its earlier name, deprecated) given in its place."""
    if n_timesteps is None:
        return steps
    warnings.warn("n_timesteps is now called steps", DeprecationWarning, stacklevel=3)
    return n_timesteps if steps is None else steps


@dataclass
class GriffinLimConfig:
    """Griffin-Lim phase reconstruction, the vocoder without weights (Keras, the LiteRT
    runner and the browser page all run these settings, written into exports)."""

    n_iter: int = 32
    momentum: float = 0.99  # "fast" Griffin-Lim (Perraudin et al. 2013); 0: classic
    power: float = 1.0  # the exponent the mel magnitudes were computed with
    # |log-mel| limit before exp(): speech stays below ~3; a diverged (e.g. untrained)
    # model's mel would otherwise overflow into NaN audio.
    mel_clamp: float = 20.0

    def __post_init__(self):
        if self.n_iter < 1 or not 0 <= self.momentum < 1 or not self.power > 0:
            raise ConfigError(
                f"griffin_lim: expected n_iter >= 1, 0 <= momentum < 1, power > 0; got "
                f"{self.n_iter}, {self.momentum}, {self.power}"
            )


@dataclass
class Config:
    """The whole configuration tree."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)
    inference: SynthesisSettings = field(default_factory=SynthesisSettings)
    griffin_lim: GriffinLimConfig = field(default_factory=GriffinLimConfig)

    def to_dict(self) -> dict[str, Any]:
        """Returns the tree as nested plain dicts (YAML-serialisable)."""
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the tree as YAML to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Checks and converts one leaf value to the dataclass field type."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if typ == list[str]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(names))})"
            )
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _build(typ, value or {}, f"{where}.{key}" if where else key)
        else:
            kwargs[key] = _coerce(value, typ, f"{where}.{key}")
    if cls is SynthesisSettings:
        try:
            return cls(**kwargs)
        except ConfigError as e:  # its checks name the key; say where it is
            raise ConfigError(f"{where}.{e}") from None
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any], source: str = "<dict>") -> Config:
    """Builds a `Config` from nested dicts, rejecting unknown keys.

    Args:
        values: Nested mapping, e.g. ``{"train": {"batch_size": 8}}``.
        source: Name used in error messages (usually the YAML path).

    Raises:
        ConfigError: On an unknown key or a value of the wrong type.
    """
    values = dict(values or {})
    inference = values.get("inference")
    if isinstance(inference, dict) and "n_timesteps" in inference:
        # The key's earlier name (configs of runs trained before it was renamed).
        inference = dict(inference)
        inference.setdefault("steps", inference.pop("n_timesteps"))
        values["inference"] = inference
    return _build(Config, values, source)


_PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def packaged_configs() -> list[str]:
    """Names of the configs installed with the package (``configs/NAME.yaml``)."""
    return sorted(p.stem for p in _PACKAGED_CONFIGS.glob("*.yaml"))


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> Config:
    """Loads a YAML config file and applies ``section.key=value`` overrides.

    Args:
        path: YAML file, or the name of a config installed with the package
            (`packaged_configs`: ``"demo"``, ``"ljspeech"``, ...); ``None`` gives the
            defaults.
        overrides: Strings like ``"train.batch_size=8"``; values are parsed as YAML.

    Returns:
        The validated `Config`.
    """
    values: dict[str, Any] = {}
    if path is not None and not os.path.exists(path) and str(path) in packaged_configs():
        path = _PACKAGED_CONFIGS / f"{path}.yaml"
    source = str(path) if path is not None else "<defaults>"
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                values = yaml.safe_load(f) or {}
        except FileNotFoundError as e:
            raise ConfigError(
                f"config file not found: {path} (installed configs, usable by name: "
                f"{', '.join(packaged_configs())})"
            ) from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
    for item in overrides or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override '{item}': expected section.key=value")
        dotted, raw = item.split("=", 1)
        section, key = dotted.split(".", 1)
        values.setdefault(section, {})
        if not isinstance(values[section], dict):
            raise ConfigError(f"override '{item}': '{section}' is not a section")
        values[section][key] = yaml.safe_load(raw)
    return config_from_dict(values, source)


def as_config(config: Config | str | os.PathLike | None) -> Config:
    """Accepts a `Config`, a YAML path or ``None`` (defaults) and returns a `Config`."""
    if isinstance(config, Config):
        return config
    return load_config(config)


# Official HiFi-GAN JSON key -> our AudioConfig field.
_AUDIO_KEYS = {
    "num_mels": "n_mels",
    "sampling_rate": "sample_rate",
    "hop_size": "hop_length",
    "n_fft": "n_fft",
    "win_size": "win_length",
    "fmin": "f_min",
    "fmax": "f_max",
}
# Official HiFi-GAN JSON key -> our VocoderConfig field.
_VOCODER_KEYS = {
    "resblock": "resblock",
    "upsample_rates": "upsample_rates",
    "upsample_kernel_sizes": "upsample_kernel_sizes",
    "upsample_initial_channel": "upsample_initial_channel",
    "resblock_kernel_sizes": "resblock_kernel_sizes",
    "resblock_dilation_sizes": "resblock_dilation_sizes",
    "segment_size": "segment_size",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "adam_b1": "adam_b1",
    "adam_b2": "adam_b2",
    "lr_decay": "lr_decay",
    "seed": "seed",
    "fmax_for_loss": "loss_f_max",
}


def vocoder_config_from_official(
    config: Mapping[str, Any] | str | os.PathLike,
) -> tuple[VocoderConfig, dict[str, Any]]:
    """Reads an official HiFi-GAN JSON config (e.g. ``config_v1.json``).

    It lives with the config tree (not with the checkpoint converter) because loading a
    vocoder folder that carries an official ``config.json`` needs it at run time.

    Args:
        config: The parsed JSON or its path.

    Returns:
        ``(VocoderConfig, audio)``: the generator layout/training settings, and the
        audio settings it states as our `AudioConfig` field names (only those present).
        Other keys (``num_gpus``, ``dist_config``, ...) are ignored.
    """
    if not isinstance(config, Mapping):
        config = json.loads(Path(config).read_text())
    values = {ours: config[theirs] for theirs, ours in _VOCODER_KEYS.items() if theirs in config}
    if "resblock" in values:
        values["resblock"] = str(values["resblock"])
    for key in ("learning_rate", "adam_b1", "adam_b2", "lr_decay"):
        if key in values:
            values[key] = float(values[key])
    audio = {ours: config[theirs] for theirs, ours in _AUDIO_KEYS.items() if theirs in config}
    for key in ("f_min", "f_max"):
        if audio.get(key) is not None:
            audio[key] = float(audio[key])
    return VocoderConfig(**values), audio
