"""Grad-TTS as one `keras.Model`: training losses, `train_step`/`test_step`, synthesis.

Follows the official ``model/tts.py`` step by step, channels-last (``[B, T, C]``).
Intentional differences from the official code are marked "Differs:".
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from gradtts_tf.config import Config
from gradtts_tf.layers.diffusion import Diffusion
from gradtts_tf.layers.text_encoder import TextEncoder
from gradtts_tf.ops import (
    duration_loss,
    fix_len_compatibility,
    generate_path,
    maximum_path,
    sequence_mask,
)

LOSS_NAMES = ("loss", "dur_loss", "prior_loss", "diff_loss")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class GradTTS(keras.Model):
    """Grad-TTS: text encoder + duration predictor + score-based diffusion decoder.

    Constructor arguments are those of the official ``GradTTS`` (``params.py`` names),
    plus ``out_size`` (training crop in frames, ``None`` for no crop), ``grad_clip``
    (global-norm clip applied to encoder and decoder gradients separately, as the
    official trainer), ``spk_cond_encoder`` (condition the text encoder on the
    speaker; the official code does not) and ``seed``.
    """

    def __init__(
        self,
        n_vocab: int = 149,
        n_spks: int = 1,
        spk_emb_dim: int = 64,
        n_enc_channels: int = 192,
        filter_channels: int = 768,
        filter_channels_dp: int = 256,
        n_heads: int = 2,
        n_enc_layers: int = 6,
        enc_kernel: int = 3,
        enc_dropout: float = 0.1,
        window_size: int = 4,
        n_feats: int = 80,
        dec_dim: int = 64,
        beta_min: float = 0.05,
        beta_max: float = 20.0,
        pe_scale: int = 1000,
        out_size: int | None = 172,
        grad_clip: float = 1.0,
        spk_cond_encoder: bool = False,
        seed: int | None = None,
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
        self.grad_clip = grad_clip
        self.spk_cond_encoder = spk_cond_encoder
        self.seed = seed

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
            seed=None if seed is None else seed + 1, name="decoder",
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        self.build()

    @classmethod
    def from_config_tree(cls, config: Config, **overrides) -> GradTTS:
        """Builds the model described by a `Config` (``n_feats`` is ``audio.n_mels``)."""
        m = config.model
        kwargs = dict(
            n_vocab=m.n_vocab, n_spks=m.n_spks, spk_emb_dim=m.spk_emb_dim,
            n_enc_channels=m.n_enc_channels, filter_channels=m.filter_channels,
            filter_channels_dp=m.filter_channels_dp, n_heads=m.n_heads,
            n_enc_layers=m.n_enc_layers, enc_kernel=m.enc_kernel, enc_dropout=m.enc_dropout,
            window_size=m.window_size, n_feats=config.audio.n_mels, dec_dim=m.dec_dim,
            beta_min=m.beta_min, beta_max=m.beta_max, pe_scale=m.pe_scale,
            out_size=config.train.out_size or None, grad_clip=config.train.grad_clip,
            spk_cond_encoder=m.spk_cond_encoder, seed=config.train.seed,
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
        config.update(
            {
                name: getattr(self, name)
                for name in (
                    "n_vocab", "n_spks", "spk_emb_dim", "n_enc_channels", "filter_channels",
                    "filter_channels_dp", "n_heads", "n_enc_layers", "enc_kernel",
                    "enc_dropout", "window_size", "n_feats", "dec_dim", "beta_min",
                    "beta_max", "pe_scale", "out_size", "grad_clip", "spk_cond_encoder", "seed",
                )
            }
        )
        return config

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _speaker(self, spk):
        """Speaker id ``[B]`` -> embedding ``[B, spk_emb_dim]`` (``None`` if single)."""
        if self.n_spks <= 1 or spk is None:
            return None
        return self.spk_emb(tf.cast(spk, "int32"))

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
        attn_mask = x_mask * tf.transpose(y_mask, [0, 2, 1])  # [B, T_x, T_y]

        # Align text and mel with MAS on the Gaussian log-likelihood (no gradient).
        log_prior = self._log_prior(tf.stop_gradient(mu_x), y)  # [B, T_x, T_y]
        attn = tf.stop_gradient(maximum_path(log_prior, attn_mask))  # [B, T_x, T_y]

        # Duration loss against the log of the aligned frame counts.
        logw_ = tf.math.log(1e-8 + tf.reduce_sum(attn, -1, keepdims=True)) * x_mask
        dur_loss = duration_loss(logw, logw_, x_lengths)

        # Random out_size crop of mel and alignment for the decoder.
        if out_size is not None:
            y, attn, y_mask = self._random_crop(y, y_lengths, attn, out_size)

        # Align encoder outputs to mel frames.
        mu_y = tf.matmul(attn, mu_x, transpose_a=True)  # [B, T_y, n_feats]

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

    def _log_prior(self, mu_x, y):
        """Log N(y_j; mu_i, I) for every text/mel pair: ``[B, T_x, T_y]``, float32."""
        const = -0.5 * math.log(2 * math.pi) * self.n_feats
        y_square = -0.5 * tf.reduce_sum(tf.square(y), -1)[:, None, :]  # [B, 1, T_y]
        y_mu_double = tf.matmul(mu_x, y, transpose_b=True)  # [B, T_x, T_y]
        mu_square = -0.5 * tf.reduce_sum(tf.square(mu_x), -1)[:, :, None]  # [B, T_x, 1]
        return y_square + y_mu_double + mu_square + const

    def _random_crop(self, y, y_lengths, attn, out_size):
        """Crops ``out_size`` frames at a random offset per item (zero-padded if shorter).

        Differs: the mask is always ``out_size`` long; the official code breaks when
        every item in the batch is shorter than ``out_size``.
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
        attn_pad = tf.pad(attn, [[0, 0], [0, 0], [0, pad]])  # [B, T_x, T_y + pad]
        y_cut = tf.gather(y_pad, idx, batch_dims=1) * cut_mask[:, :, None]
        attn_t = tf.transpose(attn_pad, [0, 2, 1])  # [B, T_y + pad, T_x]
        attn_cut = tf.gather(attn_t, idx, batch_dims=1) * cut_mask[:, :, None]
        attn_cut = tf.transpose(attn_cut, [0, 2, 1])  # [B, T_x, out_size]
        return y_cut, attn_cut, cut_mask[:, :, None]

    def call(self, inputs, training=False):
        """Returns the loss dict of a batch (see `compute_losses`)."""
        return self.compute_losses(inputs, training=training)

    def train_step(self, data):
        # fit() passes the batch dict; train_on_batch() wraps it as (x,).
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True)
            scaled = self.optimizer.scale_loss(losses["loss"])
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        grads = self._clip(grads, variables)
        self.optimizer.apply(grads, variables)
        return self._update_metrics(losses)

    def test_step(self, data):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._update_metrics(self.compute_losses(batch, training=False))

    def _update_metrics(self, losses):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _clip(self, grads, variables):
        """Clips encoder and decoder gradients to ``grad_clip`` global norm, separately.

        Under loss scaling the gradients are scaled by ``s``; clipping them at
        ``grad_clip * s`` equals clipping the unscaled ones at ``grad_clip``.
        """
        if not self.grad_clip:
            return grads
        scale = getattr(self.optimizer, "dynamic_scale", None)
        clip = self.grad_clip * (tf.cast(scale, "float32") if scale is not None else 1.0)
        grads = list(grads)
        for layer in (self.encoder, self.decoder):
            ids = {id(v) for v in layer.trainable_variables}
            pos = [i for i, v in enumerate(variables) if id(v) in ids]
            clipped, _ = tf.clip_by_global_norm([grads[i] for i in pos], clip)
            for i, g in zip(pos, clipped, strict=True):
                grads[i] = g
        return grads

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
    ):
        """Text ids to mel by the reverse diffusion (official ``GradTTS.forward``).

        Args:
            x: Token ids ``[B, T_x]``.
            x_lengths: ``[B]``.
            n_timesteps: Reverse-diffusion steps.
            temperature: Noise divisor: ``z = mu_y + eps / temperature``.
            length_scale: Multiplies predicted durations (> 1 is slower speech).
            spk: Speaker ids ``[B]`` (multi-speaker models).
            stoc: Stochastic reverse SDE instead of the probability-flow ODE.
            noise: Gaussian ``eps`` ``[B, T, n_feats]`` with ``T >= fix_len(max length)``;
                drawn when ``None``.
            seed: When ``noise`` is ``None``, draw it statelessly from this seed (same
                seed, same batch shape: same output); otherwise from the model's
                seed generator.

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
        mel = self.decoder.reverse_diffusion(
            z, y_mask, mu_y, n_timesteps, stoc=stoc, spk_emb=self._speaker(spk)
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

        # Durations: ceil(exp(logw)) * length_scale frames per token.
        w_ceil = tf.math.ceil(tf.exp(logw) * x_mask) * length_scale  # [B, T_x, 1]
        # The total as a running sum (as generate_path's cumsum) rounds like the
        # official float32 sum; reduce_sum's tree order can differ by one frame.
        total = tf.cumsum(w_ceil[:, :, 0], axis=1)[:, -1]  # [B]
        y_lengths = tf.cast(tf.maximum(total, 1.0), "int32")
        y_max_padded = fix_len_compatibility(tf.reduce_max(y_lengths))
        y_mask = sequence_mask(y_lengths, y_max_padded)[:, :, None]  # [B, T_y, 1]
        attn_mask = x_mask * tf.transpose(y_mask, [0, 2, 1])  # [B, T_x, T_y]
        attn = generate_path(w_ceil[:, :, 0], attn_mask)  # [B, T_x, T_y]
        mu_y = tf.matmul(attn, mu_x, transpose_a=True)  # [B, T_y, n_feats]
        return {"mu_y": mu_y, "y_mask": y_mask, "y_lengths": y_lengths, "attn": attn}
