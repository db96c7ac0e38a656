"""`GradTTSTrainer`: how `GradTTS`'s losses are optimised with `model.fit`.

The model (`gradtts_tf.model.GradTTS`) defines the losses; this subclass adds what
training needs around them and nothing else: the loss trackers, one `train_step` that
is the same on one device and under `tf.distribute` (each replica weighs its losses by
its share of the global batch), encoder and decoder gradients clipped separately as
the official trainer, gradient accumulation, dynamic loss scaling, and steps with a
non-finite loss or gradient skipped. It adds no weights: its weight files are
`GradTTS`'s.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from gradtts_tf.config import Config
from gradtts_tf.keras_internals import in_multi_worker_mode
from gradtts_tf.model import GradTTS

LOSS_NAMES = ("loss", "dur_loss", "prior_loss", "diff_loss")
# Training-only metrics: gradient norms before clipping, fraction of skipped steps.
STEP_NAMES = ("enc_grad_norm", "dec_grad_norm", "nonfinite")
LOSS_SCALE_INIT = 2.0**15
LOSS_SCALE_GROWTH_STEPS = 2000


@dataclasses.dataclass
class _TrainingState:
    """Optimizer-side variables of `GradTTSTrainer.train_step` (`configure_training`).

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


@keras.saving.register_keras_serializable(package="gradtts_tf")
class GradTTSTrainer(GradTTS):
    """`GradTTS` with the training mechanics `fit` calls.

    Args:
        grad_clip: Global-norm clip applied to the encoder's and the decoder's
            gradients separately, as the official trainer (0: no clipping).
        *args, **kwargs: `GradTTS`'s.
    """

    def __init__(self, *args, grad_clip: float = 1.0, **kwargs):
        # The model's name: weight paths (logs, warm start) read as the model's.
        kwargs.setdefault("name", "grad_tts")
        super().__init__(*args, **kwargs)
        self.grad_clip = grad_clip

    def build(self, input_shape=None):
        # Here, not in __init__: GradTTS builds (and Keras then locks the state) there.
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in LOSS_NAMES + STEP_NAMES
        }
        super().build(input_shape)

    @classmethod
    def from_config_tree(cls, config: Config, **overrides) -> GradTTSTrainer:
        """Builds the trainer of a `Config` (``train.grad_clip`` and the model)."""
        return super().from_config_tree(config, **{"grad_clip": config.train.grad_clip,
                                                   **overrides})

    def get_config(self):
        return {**super().get_config(), "grad_clip": self.grad_clip}

    @property
    def metrics(self):
        return list(self.trackers.values())

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
                # slot, all of it held in resident memory.
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
