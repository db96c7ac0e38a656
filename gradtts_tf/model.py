"""Grad-TTS as one `keras.Model`: training losses, `train_step`/`test_step`, synthesis.

Follows the official ``model/tts.py`` step by step, channels-last (``[B, T, C]``).
Intentional differences from the official code are marked "Differs:".
"""

from __future__ import annotations

import dataclasses
import math
import os

import keras
import tensorflow as tf

from gradtts_tf.config import Config, ModelConfig, load_config
from gradtts_tf.keras_internals import in_multi_worker_mode
from gradtts_tf.layers.diffusion import Diffusion
from gradtts_tf.layers.text_encoder import TextEncoder
from gradtts_tf.ops import (
    duration_loss,
    durations_to_path,
    maximum_path_frame_major,
    sequence_mask,
)
from gradtts_tf.voices import available_voices, resolve_voice

LOSS_NAMES = ("loss", "dur_loss", "prior_loss", "diff_loss")
# Training-only metrics: gradient norms before clipping, fraction of skipped steps.
STEP_NAMES = ("enc_grad_norm", "dec_grad_norm", "nonfinite")
LOSS_SCALE_INIT = 2.0**15
LOSS_SCALE_GROWTH_STEPS = 2000


@dataclasses.dataclass
class _TrainingState:
    """Optimizer-side variables of `GradTTS.train_step` (`configure_training`).

    A plain object, so Keras does not track these variables as model weights.
    """

    accum_steps: int = 1
    accumulators: list | None = None
    accum_count: keras.Variable | None = None
    loss_scale: keras.Variable | None = None
    good_steps: keras.Variable | None = None


def _logs(values: dict) -> dict:
    """Step outputs for Keras: shape ``[1]`` under multi-worker training, where Keras
    averages them over replicas along axis 0 (which a scalar does not have)."""
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        in_multi_worker_mode(strategy)
    ):
        return {name: value[None] for name, value in values.items()}
    return values


# The architecture's arguments and defaults live in `ModelConfig` (the one list); the
# model adds what comes from other config sections or only exists at run time.
_DEFAULTS = ModelConfig()
_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_RUN_FIELDS = ("n_feats", "out_size", "grad_clip", "seed", "decoder_dtype")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class GradTTS(keras.Model):
    """Grad-TTS: text encoder + duration predictor + score-based diffusion decoder.

    Constructor arguments are those of the official ``GradTTS`` (``params.py`` names),
    plus ``out_size`` (training crop in frames, ``None`` for no crop), ``grad_clip``
    (global-norm clip applied to encoder and decoder gradients separately, as the
    official trainer), ``spk_cond_encoder`` (condition the text encoder on the
    speaker; the official code does not), ``seed`` and ``decoder_dtype`` (a dtype
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
        grad_clip: float = 1.0,
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
        self.grad_clip = grad_clip
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
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in LOSS_NAMES + STEP_NAMES
        }
        self.build()

    @classmethod
    def from_config_tree(cls, config: Config, **overrides) -> GradTTS:
        """Builds the model described by a `Config` (``n_feats`` is ``audio.n_mels``)."""
        kwargs = {name: getattr(config.model, name) for name in _MODEL_FIELDS}
        kwargs.update(
            n_feats=config.audio.n_mels, out_size=config.train.out_size or None,
            grad_clip=config.train.grad_clip, seed=config.train.seed,
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
        U-Net's convolutions and activations in bfloat16: with the weights frozen in
        (`gradtts_tf.runtime.freeze`, as `Synthesizer` runs it) a full-size U-Net call at
        batch 1 takes about 0.63x the time of ``--cpu-math bfloat16`` alone on AMX CPUs
        (BENCHMARKS.md). The text encoder and durations stay as they are. The weights
        are copied now: later changes to this model are not seen by the copy.
        """
        twin = GradTTS.from_config({**self.get_config(), "decoder_dtype": policy})
        twin.set_weights(self.get_weights())
        return twin

    @property
    def metrics(self):
        return list(self.trackers.values())

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

    def configure_training(self, grad_accum_steps: int = 1, loss_scaling: bool = False) -> None:
        """Creates the optimizer-side state of `train_step`; call once after `compile`.

        The variables live in the optimizer, so they are saved and restored with its
        state (``model.save_weights`` / ``load_weights``) and under a distribution
        strategy they are created in its scope like the optimizer's own.

        Args:
            grad_accum_steps: Batches whose gradients are averaged into one update.
            loss_scaling: Dynamic loss scaling (for ``mixed_float16``): the loss is
                multiplied by a scale that halves when gradients overflow and doubles
                after 2000 finite steps; overflowing steps are skipped.
        """
        opt = self.optimizer
        if not opt.built:
            opt.build(self.trainable_variables)
        state = _TrainingState(accum_steps=grad_accum_steps)
        if grad_accum_steps > 1:
            state.accumulators = [
                opt.add_variable_from_reference(v, name="grad_accumulator")
                for v in self.trainable_variables
            ]
            state.accum_count = opt.add_variable(
                (), initializer="zeros", dtype="int32", name="grad_accum_count"
            )
        if loss_scaling:
            state.loss_scale = opt.add_variable(
                (), initializer=keras.initializers.Constant(LOSS_SCALE_INIT),
                dtype="float32", name="loss_scale",
            )
            state.good_steps = opt.add_variable(
                (), initializer="zeros", dtype="int32", name="loss_scale_good_steps"
            )
        self._training_state = state

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras pulls a batch to build the model under a distribution strategy (and
        # fails to reduce dict batches under MultiWorkerMirroredStrategy); there is
        # nothing to build once the model and its optimizer are.
        if self.built and self.optimizer is not None:
            if not self.optimizer.built:
                # Now, not when the step is traced: Keras otherwise builds the optimizer
                # there (without a strategy), and variables created while tracing make
                # TensorFlow trace the step twice and keep an initialiser function per
                # slot: ~300 MiB more resident memory for the full-size model.
                with self.distribute_strategy.scope():
                    self.optimizer.build(self.trainable_variables)
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        """One optimisation step, identical on one device and under `tf.distribute`.

        A batch may carry ``t`` ``[B]`` and ``z`` ``[B, T, n_feats]`` to fix the
        diffusion times and noise. The gradients of all replicas are summed before
        clipping, so clipping sees the global batch's gradient as on one device. A
        step whose loss (or, without loss scaling, gradient) is NaN/Inf changes no
        weight and no optimizer state; the ``nonfinite`` metric is the fraction of
        such steps in the epoch.
        """
        # fit() passes the batch dict; train_on_batch() wraps it as (x,).
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        if not self.optimizer.built:
            # Here, not inside the conditional update: no variable creation in a branch.
            self.optimizer.build(variables)
        state = getattr(self, "_training_state", None) or _TrainingState()
        ctx = tf.distribute.get_replica_context()
        t, z = batch.get("t"), batch.get("z")
        if ctx.num_replicas_in_sync > 1 and t is None:
            t, z = self._replica_noise(batch, ctx)
        # Keras' LossScaleOptimizer (compile() under mixed_float16) or our own scale.
        scale = state.loss_scale if state.loss_scale is not None else getattr(
            self.optimizer, "dynamic_scale", None
        )
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True, t=t, z=z)
            objective, parts = self._replica_objective(losses, batch, ctx)
            if scale is not None:
                objective = objective * tf.cast(scale, objective.dtype)
        # Dense gradients, as torch's nn.Embedding gives: Keras' Adam squares the
        # rows of an IndexedSlices gradient before summing repeated token ids, which
        # inflates the step of frequent tokens (and norms/clipping would see the same).
        grads = [
            tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g in tape.gradient(objective, variables)
        ]
        live = [i for i, g in enumerate(grads) if g is not None]
        if ctx.num_replicas_in_sync > 1:
            summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in live])
            losses = self._global_losses(parts, ctx)
            grads = list(grads)
            for i, g in zip(live, summed, strict=True):
                grads[i] = g
        if scale is not None:
            grads = [None if g is None else g / tf.cast(scale, g.dtype) for g in grads]
        norms = self._grad_norms(grads, variables)
        loss_ok = tf.math.is_finite(losses["loss"])
        grads_ok = tf.math.is_finite(norms["enc_grad_norm"]) & tf.math.is_finite(
            norms["dec_grad_norm"]
        )
        ctx.merge_call(self._update, args=(grads, loss_ok, grads_ok))

        # With loss scaling, overflowing gradients are routine and not counted.
        bad = ~loss_ok if scale is not None else ~(loss_ok & grads_ok)
        self._track(losses, loss_ok)
        self._track(norms, grads_ok)
        self.trackers["nonfinite"].update_state(tf.cast(bad, "float32"))
        return _logs({name: tracker.result() for name, tracker in self.trackers.items()})

    def test_step(self, data):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        ctx = tf.distribute.get_replica_context()
        losses = self.compute_losses(batch, training=False)
        if ctx.num_replicas_in_sync > 1:
            _, parts = self._replica_objective(losses, batch, ctx)
            losses = self._global_losses(parts, ctx)
        self._track(losses, tf.math.is_finite(losses["loss"]))
        return _logs({name: self.trackers[name].result() for name in LOSS_NAMES})

    def _track(self, values, ok):
        """Adds finite values to their mean trackers (a skipped step adds nothing)."""
        weight = tf.cast(ok, "float32")
        for name, value in values.items():
            self.trackers[name].update_state(tf.where(ok, value, 0.0), sample_weight=weight)

    def _replica_noise(self, batch, ctx):
        """This replica's rows of diffusion times ``[b]`` and noise drawn for the global batch.

        Every replica draws the global batch's ``t`` and ``z`` from the same seed
        generator state, exactly as `Diffusion.compute_loss` does on one device, and
        keeps its own rows: replicas get different noise, and a distributed step is
        the single-device step on the global batch.
        """
        n = ctx.num_replicas_in_sync
        b = batch["x"].shape[0] or tf.shape(batch["x"])[0]
        frames = self.out_size or batch["y"].shape[1] or tf.shape(batch["y"])[1]
        gen = self.decoder.seed_generator
        t = keras.random.uniform((b * n,), 0.0, 1.0, dtype="float32", seed=gen)
        t = tf.clip_by_value(t, 1e-5, 1.0 - 1e-5)
        z = keras.random.normal((b * n, frames, self.n_feats), dtype="float32", seed=gen)
        first = ctx.replica_id_in_sync_group * b
        return t[first : first + b], z[first : first + b]

    def _replica_objective(self, losses, batch, ctx):
        """The replica's objective, whose gradients summed over replicas are the global ones.

        Keras divides each replica's mean loss by the number of replicas. Grad-TTS'
        losses are sums over the batch divided by its token (duration) or frame
        (prior, diffusion) count, so each replica instead weighs them by its share
        of the global count; with one replica this is the plain sum of the losses.

        Returns:
            ``(objective, parts)``: parts are the weighted losses whose sums over
            replicas are the global batch's losses.
        """
        if ctx.num_replicas_in_sync == 1:
            return losses["loss"], losses
        x_count = tf.reduce_sum(tf.cast(batch["x_lengths"], "float32"))
        y_lengths = tf.cast(batch["y_lengths"], "float32")
        if self.out_size is not None:
            y_lengths = tf.minimum(y_lengths, float(self.out_size))
        y_count = tf.reduce_sum(y_lengths)
        totals = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack([x_count, y_count]))
        # An empty replica batch (a short last validation batch) contributes nothing.
        parts = {
            "dur_loss": tf.where(x_count > 0, losses["dur_loss"] * x_count / totals[0], 0.0),
            "prior_loss": tf.where(y_count > 0, losses["prior_loss"] * y_count / totals[1], 0.0),
            "diff_loss": tf.where(y_count > 0, losses["diff_loss"] * y_count / totals[1], 0.0),
        }
        return parts["dur_loss"] + parts["prior_loss"] + parts["diff_loss"], parts

    @staticmethod
    def _global_losses(parts, ctx):
        """Sums the weighted per-replica losses into the global batch's losses."""
        names = ("dur_loss", "prior_loss", "diff_loss")
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [parts[n] for n in names])
        losses = dict(zip(names, summed, strict=True))
        losses["loss"] = losses["dur_loss"] + losses["prior_loss"] + losses["diff_loss"]
        return {name: losses[name] for name in LOSS_NAMES}

    def _groups(self, variables):
        """Positions of the encoder's and the decoder's variables in ``variables``."""
        groups = {}
        for name, layer in (("enc", self.encoder), ("dec", self.decoder)):
            ids = {id(v) for v in layer.trainable_variables}
            groups[name] = [i for i, v in enumerate(variables) if id(v) in ids]
        return groups

    def _grad_norms(self, grads, variables):
        """Global norms of the encoder's and the decoder's gradients (as official logs)."""
        norms = {}
        for name, pos in self._groups(variables).items():
            parts = [grads[i] for i in pos if grads[i] is not None]
            norms[f"{name}_grad_norm"] = tf.linalg.global_norm(parts) if parts else tf.zeros(())
        return norms

    def _update(self, distribution, grads, loss_ok, grads_ok):
        """Cross-replica part of `train_step`: skip, accumulate or apply the update.

        The conditions are evaluated in cross-replica context because a branch that
        reaches a `tf.distribute` synchronisation point (the optimizer's gradient
        all-reduce) is not allowed inside a replica's control flow (as in Keras'
        LossScaleOptimizer). The flags are equal on every replica.
        """
        state = getattr(self, "_training_state", None) or _TrainingState()
        loss_ok = distribution.experimental_local_results(loss_ok)[0]
        grads_ok = distribution.experimental_local_results(grads_ok)[0]
        keras_scaling = hasattr(self.optimizer, "dynamic_scale")
        # Keras' LossScaleOptimizer must see overflowing gradients to lower its scale.
        ok = loss_ok if keras_scaling else loss_ok & grads_ok

        def assign(var, value, fn="assign"):
            distribution.extended.update(
                var.value, lambda v, x: getattr(v, fn)(x), args=(value,), group=False
            )

        if state.loss_scale is not None:
            finite = loss_ok & grads_ok
            scale = tf.convert_to_tensor(state.loss_scale.value)
            good = tf.where(finite, tf.convert_to_tensor(state.good_steps.value) + 1, 0)
            grow = good >= LOSS_SCALE_GROWTH_STEPS
            scale = tf.where(finite, tf.where(grow, scale * 2.0, scale), tf.maximum(scale / 2, 1.0))
            assign(state.loss_scale, scale)
            assign(state.good_steps, tf.where(grow, 0, good))

        if state.accum_steps == 1:
            tf.cond(
                ok,
                lambda: distribution.extended.call_for_each_replica(self._apply, args=(grads,)),
                lambda: None,
            )
            return

        def accumulate():
            for acc, g in zip(state.accumulators, grads, strict=True):
                if g is not None:
                    assign(acc, g, "assign_add")
            assign(state.accum_count, tf.constant(1, "int32"), "assign_add")

        def apply_accumulated():
            distribution.extended.call_for_each_replica(self._apply_accumulated)
            for acc in state.accumulators:
                assign(acc, tf.zeros(acc.shape, acc.dtype))
            assign(state.accum_count, tf.constant(0, "int32"))

        tf.cond(ok, accumulate, lambda: None)
        count = tf.convert_to_tensor(state.accum_count.value)
        tf.cond(count >= state.accum_steps, apply_accumulated, lambda: None)

    def _apply_accumulated(self):
        state = self._training_state
        self._apply([acc / float(state.accum_steps) for acc in state.accumulators])

    def _apply(self, grads):
        """Clips the global (unscaled) gradients and applies them (replica context)."""
        grads = self._clip(grads, self.trainable_variables)
        n = tf.distribute.get_replica_context().num_replicas_in_sync
        scale = getattr(self.optimizer, "dynamic_scale", None)
        factor = 1.0 / n
        if scale is not None:
            # Keras' LossScaleOptimizer divides by its scale (a power of two: exact).
            factor = tf.cast(scale, "float32") / n
        if n > 1 or scale is not None:
            # The optimizer sums over replicas; each one already holds the global sum.
            grads = [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]
        self.optimizer.apply(grads, self.trainable_variables)

    def _clip(self, grads, variables):
        """Clips encoder and decoder gradients to ``grad_clip`` global norm, separately.

        As the official trainer; the speaker embedding (multi-speaker) is not clipped.
        """
        # identity: every gradient becomes a tensor of the calling (cond-branch) graph;
        # an unclipped outer-graph tensor (the speaker table's) breaks optimizer.apply.
        grads = [None if g is None else tf.identity(g) for g in grads]
        if not self.grad_clip:
            return grads
        for pos in self._groups(variables).values():
            pos = [i for i in pos if grads[i] is not None]
            clipped, _ = tf.clip_by_global_norm([grads[i] for i in pos], self.grad_clip)
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
