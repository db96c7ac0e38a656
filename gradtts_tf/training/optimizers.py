"""Adam with TensorFlow's in-place update kernel."""

from __future__ import annotations

import keras
import tensorflow as tf

from gradtts_tf.keras_internals import variable_index


@keras.saving.register_keras_serializable(package="gradtts_tf")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update runs as one in-place kernel per variable.

    Keras' Adam writes its update as separate tensor ops (``g - m``, ``g^2 - v``,
    ``sqrt(v) + eps``, ...); in a graph-mode training step TensorFlow runs the updates of
    all variables concurrently, so every variable's temporaries are alive at once and
    raise a training step's peak memory (`BENCHMARKS.md`, "Training step", measures
    the step with this optimizer). Here each update is
    TensorFlow's ``ResourceApplyAdam``, which updates ``m``, ``v`` and the variable in
    place with the same formula::

        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        m += (g - m) (1 - beta_1);  v += (g^2 - v) (1 - beta_2)
        var -= alpha m / (sqrt(v) + epsilon)

    The optimizer's variables, arguments, checkpoints, EMA and gradient accumulation
    are Adam's (its name too, so its variables' paths are Adam's); ``amsgrad`` and
    backends other than TensorFlow fall back to Adam's ops.
    """

    def __init__(self, *args, name: str = "adam", **kwargs):
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        """Applies one Adam update to ``variable`` (same signature as Keras' Adam)."""
        if self.amsgrad or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = variable_index(self, variable)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        # A sparse gradient (an embedding's IndexedSlices) is made dense: the kernel
        # takes a dense one, as Keras' Adam effectively does.
        gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=gradient,
            use_locking=False,
        )
