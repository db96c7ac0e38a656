"""Grad-TTS as one `keras.Model`: architecture, training losses, alignment, synthesis.

Follows the official ``model/tts.py`` step by step, channels-last (``[B, T, C]``).
Intentional differences from the official code are marked "Differs:". How the losses
are optimised with `fit` (replicas, clipping, accumulation, loss scaling) is
`gradtts_tf.training.GradTTSTrainer`'s business.
"""

from __future__ import annotations

import dataclasses
import math
import os

import keras
import tensorflow as tf

from gradtts_tf.config import Config, ModelConfig, load_config
from gradtts_tf.layers.diffusion import Diffusion
from gradtts_tf.layers.text_encoder import TextEncoder
from gradtts_tf.ops import (
    duration_loss,
    durations_to_path,
    maximum_path_frame_major,
    sequence_mask,
)
from gradtts_tf.voices import available_voices, resolve_voice

# The architecture's arguments and defaults live in `ModelConfig` (the one list); the
# model adds what comes from other config sections or only exists at run time.
_DEFAULTS = ModelConfig()
_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_RUN_FIELDS = ("n_feats", "out_size", "seed", "decoder_dtype")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class GradTTS(keras.Model):
    """Grad-TTS: text encoder + duration predictor + score-based diffusion decoder.

    Constructor arguments are those of the official ``GradTTS`` (``params.py`` names),
    plus ``out_size`` (training crop in frames, ``None`` for no crop),
    ``spk_cond_encoder`` (condition the text encoder on the speaker; the official code
    does not), ``seed`` and ``decoder_dtype`` (a dtype
    policy name for the diffusion decoder alone, e.g. ``"mixed_bfloat16"`` for fast
    CPU synthesis, see `with_decoder_dtype`; ``None``: the global policy).
    """

    def __init__(
        self,
        n_vocab: int = _DEFAULTS.n_vocab,
        n_spks: int = _DEFAULTS.n_spks,
        spk_emb_dim: int = _DEFAULTS.spk_emb_dim,
        n_enc_channels: int = _DEFAULTS.n_enc_channels,
        filter_channels: int = _DEFAULTS.filter_channels,
        filter_channels_dp: int = _DEFAULTS.filter_channels_dp,
        n_heads: int = _DEFAULTS.n_heads,
        n_enc_layers: int = _DEFAULTS.n_enc_layers,
        enc_kernel: int = _DEFAULTS.enc_kernel,
        enc_dropout: float = _DEFAULTS.enc_dropout,
        window_size: int = _DEFAULTS.window_size,
        n_feats: int = 80,
        dec_dim: int = _DEFAULTS.dec_dim,
        beta_min: float = _DEFAULTS.beta_min,
        beta_max: float = _DEFAULTS.beta_max,
        pe_scale: int = _DEFAULTS.pe_scale,
        out_size: int | None = 172,
        spk_cond_encoder: bool = _DEFAULTS.spk_cond_encoder,
        seed: int | None = None,
        decoder_dtype: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_vocab = n_vocab
        self.n_spks = n_spks
        self.spk_emb_dim = spk_emb_dim
        self.n_enc_channels = n_enc_channels
        self.filter_channels = filter_channels
        self.filter_channels_dp = filter_channels_dp
        self.n_heads = n_heads
        self.n_enc_layers = n_enc_layers
        self.enc_kernel = enc_kernel
        self.enc_dropout = enc_dropout
        self.window_size = window_size
        self.n_feats = n_feats
        self.dec_dim = dec_dim
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.pe_scale = pe_scale
        self.out_size = out_size
        self.spk_cond_encoder = spk_cond_encoder
        self.seed = seed
        self.decoder_dtype = decoder_dtype

        if n_spks > 1:
            self.spk_emb = keras.layers.Embedding(n_spks, spk_emb_dim, name="spk_emb")
        self.encoder = TextEncoder(
            n_vocab, n_feats, n_enc_channels, filter_channels, filter_channels_dp,
            n_heads, n_enc_layers, enc_kernel, enc_dropout, window_size,
            spk_emb_dim=spk_emb_dim, n_spks=n_spks, spk_cond=spk_cond_encoder,
            name="encoder",
        )
        self.decoder = Diffusion(
            n_feats, dec_dim, n_spks=n_spks, spk_emb_dim=spk_emb_dim,
            beta_min=beta_min, beta_max=beta_max, pe_scale=pe_scale,
            seed=None if seed is None else seed + 1, dtype=decoder_dtype, name="decoder",
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.build()

    @classmethod
    def from_config_tree(cls, config: Config, **overrides) -> GradTTS:
        """Builds the model described by a `Config` (``n_feats`` is ``audio.n_mels``)."""
        kwargs = {name: getattr(config.model, name) for name in _MODEL_FIELDS}
        kwargs.update(
            n_feats=config.audio.n_mels, out_size=config.train.out_size or None,
            seed=config.train.seed,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    def build(self, input_shape=None):
        """Creates every weight from the constructor arguments (no data needed)."""
        if self.n_spks > 1:
            self.spk_emb.build((None,))
        self.encoder.build()
        self.decoder.build()
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in _MODEL_FIELDS + _RUN_FIELDS})
        return config

    def with_decoder_dtype(self, policy: str) -> GradTTS:
        """A copy of this model (same weights) whose diffusion decoder computes in ``policy``.

        ``"mixed_bfloat16"`` keeps float32 weights and the float32 ODE state but runs the
        U-Net's convolutions and activations in bfloat16, to synthesise faster than
        ``--cpu-math bfloat16`` alone on AMX CPUs (BENCHMARKS.md, ``keras-bf16``, with
        the weights frozen in by `gradtts_tf.runtime.freeze`, as `Synthesizer` runs it).
        The text encoder and durations stay as they are. The weights
        are copied now: later changes to this model are not seen by the copy.
        """
        # GradTTS.get_config, not a subclass's: the twin is a plain model.
        twin = GradTTS.from_config({**GradTTS.get_config(self), "decoder_dtype": policy})
        twin.set_weights(self.get_weights())
        return twin

    def _speaker(self, spk):
        """Speaker id ``[B]`` -> embedding ``[B, spk_emb_dim]`` (``None`` if single)."""
        if self.n_spks <= 1 or spk is None:
            return None
        # One-hot matmul instead of a gather: a dense gradient, as torch's nn.Embedding
        # gives, with no IndexedSlices crossing the conditional update.
        one_hot = tf.one_hot(tf.cast(spk, "int32"), self.n_spks)  # [B, n_spks]
        table = tf.cast(self.spk_emb.embeddings, one_hot.dtype)  # [n_spks, spk_emb_dim]
        return tf.matmul(one_hot, table)  # [B, spk_emb_dim]

    def _encode(self, x, x_lengths, spk_emb, training):
        """Runs the text encoder; returns float32 ``mu_x, logw, x_mask`` (``[B, T_x, *]``)."""
        enc_spk = spk_emb if self.spk_cond_encoder else None
        mu_x, logw, x_mask = self.encoder(x, x_lengths, spk_emb=enc_spk, training=training)
        # Differs: cast to float32 so MAS, losses and the SDE stay exact under mixed_float16.
        return tf.cast(mu_x, "float32"), tf.cast(logw, "float32"), tf.cast(x_mask, "float32")

    def compute_losses(self, batch, training=False, out_size="default", t=None, z=None):
        """The three Grad-TTS losses of one batch.

        Args:
            batch: Dict with ``x`` ``[B, T_x]``, ``x_lengths`` ``[B]``, ``y``
                ``[B, T_y, n_feats]``, ``y_lengths`` ``[B]`` and optionally ``spk`` ``[B]``.
            training: Dropout on/off.
            out_size: Frames of the random decoder crop; "default" uses the model's,
                ``None`` disables cropping.
            t: Optional diffusion times ``[B]`` (drawn when ``None``).
            z: Optional forward-diffusion noise ``[B, T, n_feats]`` (drawn when ``None``).

        Returns:
            Dict with ``loss`` (the sum), ``dur_loss``, ``prior_loss``, ``diff_loss``.
        """
        if out_size == "default":
            out_size = self.out_size
        x, x_lengths = batch["x"], tf.cast(batch["x_lengths"], "int32")
        y, y_lengths = tf.cast(batch["y"], "float32"), tf.cast(batch["y_lengths"], "int32")
        spk_emb = self._speaker(batch.get("spk"))

        # Encode text: prior means and log-durations.
        mu_x, logw, x_mask = self._encode(x, x_lengths, spk_emb, training)
        y_mask = sequence_mask(y_lengths, tf.shape(y)[1])[:, :, None]  # [B, T_y, 1]

        # Align text and mel with MAS on the Gaussian log-likelihood (no gradient).
        attn = self._align(mu_x, x_mask, y, y_mask)  # [B, T_y, T_x]

        # Duration loss against the log of the aligned frame counts.
        durations = tf.reduce_sum(attn, 1)[:, :, None]  # [B, T_x, 1]
        logw_ = tf.math.log(1e-8 + durations) * x_mask
        dur_loss = duration_loss(logw, logw_, x_lengths)

        # Random out_size crop of mel and alignment for the decoder.
        if out_size is not None:
            y, attn, y_mask = self._random_crop(y, y_lengths, attn, out_size)

        # Align encoder outputs to mel frames.
        mu_y = tf.matmul(attn, mu_x)  # [B, T_y, n_feats]

        # Diffusion loss on the (cropped) mel; prior loss of mel under N(mu_y, I).
        if t is None:
            diff_loss = self.decoder.compute_loss(y, y_mask, mu_y, spk_emb=spk_emb)
        else:
            diff_loss = self.decoder.loss_t(y, y_mask, mu_y, t, z, spk_emb=spk_emb)
        prior = 0.5 * (tf.square(y - mu_y) + math.log(2 * math.pi)) * y_mask
        prior_loss = tf.reduce_sum(prior) / (tf.reduce_sum(y_mask) * self.n_feats)
        diff_loss = tf.cast(diff_loss, "float32")
        return {
            "loss": dur_loss + prior_loss + diff_loss,
            "dur_loss": dur_loss,
            "prior_loss": prior_loss,
            "diff_loss": diff_loss,
        }

    def _align(self, mu_x, x_mask, y, y_mask):
        """MAS alignment of mel frames to tokens, frame-major ``[B, T_y, T_x]`` (no gradient).

        Frame-major because MAS walks frames: this layout spares it a transpose.
        """
        attn_mask = y_mask * tf.transpose(x_mask, [0, 2, 1])  # [B, T_y, T_x]
        log_prior = self._log_prior(tf.stop_gradient(mu_x), y)  # [B, T_y, T_x]
        return tf.stop_gradient(maximum_path_frame_major(log_prior, attn_mask))

    def _log_prior(self, mu_x, y):
        """Log N(y_j; mu_i, I) for every mel/text pair: ``[B, T_y, T_x]``, float32."""
        const = -0.5 * math.log(2 * math.pi) * self.n_feats
        y_square = -0.5 * tf.reduce_sum(tf.square(y), -1)[:, :, None]  # [B, T_y, 1]
        y_mu_double = tf.matmul(y, mu_x, transpose_b=True)  # [B, T_y, T_x]
        mu_square = -0.5 * tf.reduce_sum(tf.square(mu_x), -1)[:, None, :]  # [B, 1, T_x]
        return y_square + y_mu_double + mu_square + const

    def _random_crop(self, y, y_lengths, attn, out_size):
        """Crops ``out_size`` frames at a random offset per item (zero-padded if shorter).

        ``y`` is ``[B, T_y, n_feats]`` and ``attn`` frame-major ``[B, T_y, T_x]``; both
        are cut on their frame axis. Differs: the mask is always ``out_size`` long; the
        official code breaks when every item in the batch is shorter than ``out_size``.
        """
        batch = tf.shape(y)[0]
        max_offset = tf.maximum(y_lengths - out_size, 0)  # [B]
        # random.choice(range(0, max_offset)) as official: offsets in [0, max_offset - 1].
        u = keras.random.uniform([batch], seed=self.seed_generator)
        offset = tf.cast(tf.floor(u * tf.cast(max_offset, "float32")), "int32")
        offset = tf.minimum(offset, tf.maximum(max_offset - 1, 0))
        idx = offset[:, None] + tf.range(out_size)[None, :]  # [B, out_size]
        cut_lengths = tf.minimum(y_lengths, out_size)
        cut_mask = sequence_mask(cut_lengths, out_size)  # [B, out_size]
        # Pad the time axis so that out-of-range indices read zeros.
        pad = tf.maximum(out_size - tf.shape(y)[1], 0)
        y_pad = tf.pad(y, [[0, 0], [0, pad], [0, 0]])  # [B, T_y + pad, n_feats]
        attn_pad = tf.pad(attn, [[0, 0], [0, pad], [0, 0]])  # [B, T_y + pad, T_x]
        y_cut = tf.gather(y_pad, idx, batch_dims=1) * cut_mask[:, :, None]
        attn_cut = tf.gather(attn_pad, idx, batch_dims=1) * cut_mask[:, :, None]  # [B, out, T_x]
        return y_cut, attn_cut, cut_mask[:, :, None]

    def call(self, inputs, training=False):
        """Returns the loss dict of a batch (see `compute_losses`)."""
        return self.compute_losses(inputs, training=training)

    def synthesise(
        self,
        x,
        x_lengths,
        n_timesteps: int = 10,
        temperature: float = 1.5,
        length_scale: float = 1.0,
        spk=None,
        stoc: bool = False,
        noise=None,
        seed: int | None = None,
        solver: str = "euler",
        step_noise=None,
    ):
        """Text ids to mel by the reverse diffusion (official ``GradTTS.forward``).

        Args:
            x: Token ids ``[B, T_x]``.
            x_lengths: ``[B]``.
            n_timesteps: Reverse-diffusion steps.
            temperature: Noise divisor: ``z = mu_y + eps / temperature``.
            length_scale: Multiplies predicted durations (> 1 is slower speech).
            spk: Speaker ids ``[B]`` (multi-speaker models).
            stoc: The official stochastic sampler (``solver="euler-sde"``).
            noise: Gaussian ``eps`` ``[B, T, n_feats]`` with ``T >= fix_len(max length)``;
                drawn when ``None``.
            seed: When ``noise`` is ``None``, draw it statelessly from this seed (same
                seed, same batch shape: same output); otherwise from the model's
                seed generator.
            solver: Reverse-diffusion solver (`gradtts_tf.solvers.SOLVERS`).
            step_noise: A stochastic solver's per-step draws ``[steps, B, T, n_feats]``
                (``T`` as ``noise``); drawn from the model's seed generator when ``None``.

        Returns:
            Dict with ``model_outputs`` (decoder mel ``[B, T_y, n_feats]``),
            ``encoder_outputs`` (aligned ``mu_y`` ``[B, T_y, n_feats]``), ``attn``
            ``[B, T_x, T_y_padded]`` and ``mel_lengths`` ``[B]``; ``T_y`` is the
            longest predicted length and frames past each item's length are zero.
        """
        aligned = self.align(x, x_lengths, length_scale=length_scale, spk=spk)
        mu_y, y_mask, y_lengths = aligned["mu_y"], aligned["y_mask"], aligned["y_lengths"]
        y_max_length = tf.reduce_max(y_lengths)

        # Start from mu_y plus scaled noise and run the reverse diffusion.
        if noise is None and seed is not None:
            noise = tf.random.stateless_normal(tf.shape(mu_y), seed=[seed, 0])
        elif noise is None:
            noise = keras.random.normal(tf.shape(mu_y), seed=self.seed_generator)
        else:
            noise = tf.cast(noise, "float32")[:, : tf.shape(mu_y)[1]]
        z = mu_y + noise / temperature
        if step_noise is not None:
            step_noise = tf.cast(step_noise, "float32")[:, :, : tf.shape(mu_y)[1]]
        mel = self.decoder.reverse_diffusion(
            z, y_mask, mu_y, n_timesteps, stoc=stoc, spk_emb=self._speaker(spk),
            noise=step_noise, solver=solver,
        )
        mel = tf.cast(mel, "float32")
        return {
            "model_outputs": mel[:, :y_max_length],
            "encoder_outputs": mu_y[:, :y_max_length],
            "attn": aligned["attn"],
            "mel_lengths": y_lengths,
        }

    def align(self, x, x_lengths, length_scale=1.0, spk=None):
        """Text encoder, duration predictor and length regulation (no diffusion).

        Args:
            x: Token ids ``[B, T_x]``.
            x_lengths: ``[B]``.
            length_scale: Multiplies predicted durations (scalar).
            spk: Speaker ids ``[B]`` (multi-speaker models).

        Returns:
            Dict with ``mu_y`` ``[B, T_y, n_feats]`` (``T_y`` = longest length rounded
            up to a multiple of 4 for the U-Net), ``y_mask`` ``[B, T_y, 1]``,
            ``y_lengths`` ``[B]`` int32 and ``attn`` ``[B, T_x, T_y]``.
        """
        x = tf.convert_to_tensor(x)
        x_lengths = tf.cast(x_lengths, "int32")
        mu_x, logw, x_mask = self._encode(x, x_lengths, self._speaker(spk), training=False)

        y_lengths, y_mask, attn = durations_to_path(logw, x_mask, length_scale)
        mu_y = tf.matmul(attn, mu_x, transpose_a=True)  # [B, T_y, n_feats]
        return {"mu_y": mu_y, "y_mask": y_mask, "y_lengths": y_lengths, "attn": attn}


def load_checkpoint(path: str | os.PathLike) -> tuple[GradTTS, Config]:
    """Loads a run folder holding ``config.yaml`` and ``model.weights.h5``.

    Args:
        path: A ``train.py`` run folder, a ``python -m gradtts_tf.convert`` output or
            the name of a voice installed with the package (``"demo"``).

    Returns:
        ``(model, config)``.

    Raises:
        FileNotFoundError: Naming the missing file and how to produce it.
    """
    path = resolve_voice(path)
    config_file, weights = path / "config.yaml", path / "model.weights.h5"
    for f in (config_file, weights):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found: point to a run folder written by train.py or by "
                "'python -m gradtts_tf.convert', or name an installed voice "
                f"({', '.join(available_voices())})"
            )
    config = load_config(config_file)
    model = GradTTS.from_config_tree(config)
    model.load_weights(weights)
    return model, config
