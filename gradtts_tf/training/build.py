"""The model as training builds it: strategy, precision, optimizer and its schedule."""

from __future__ import annotations

import contextlib
import os

import keras
import tensorflow as tf

from gradtts_tf.config import Config, TrainConfig
from gradtts_tf.training.checkpoints import RunError
from gradtts_tf.training.optimizers import FusedAdam
from gradtts_tf.training.trainer import GradTTSTrainer


def use_xla(setting: str) -> bool:
    """Resolves ``train.jit_compile`` ("auto" means: only when a GPU is visible)."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """Creates the `tf.distribute` strategy named by ``train.strategy``.

    ``mirrored`` uses every local GPU, or every logical CPU device when there is no
    GPU (one, unless split with `tf.config.set_logical_device_configuration`).
    ``multiworker`` reads the cluster from the ``TF_CONFIG`` environment variable and
    must be created before TensorFlow runs any op.
    """
    if name == "default":
        return None
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise RunError(
                "--strategy multiworker needs the TF_CONFIG environment variable, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant, exponential or step decay, floored at ``min_lr``.

    ``lr(s) = max(lr * d(s - warmup), min_lr) * min(1, (s + 1) / warmup)`` with
    ``d(u) = 1``, ``rate ** (u / decay_steps)`` or ``rate ** floor(u / decay_steps)``;
    ``s`` counts optimizer updates.
    """

    def __init__(
        self,
        learning_rate: float,
        kind: str = "constant",
        warmup_steps: int = 0,
        decay_rate: float = 0.5,
        decay_steps: int = 100000,
        min_lr: float = 0.0,
    ):
        self.learning_rate = learning_rate
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.min_lr = min_lr

    def __call__(self, step):
        step = tf.cast(step, "float32")
        after = tf.maximum(step - float(self.warmup_steps), 0.0) / float(self.decay_steps)
        if self.kind == "exponential":
            lr = self.learning_rate * tf.pow(self.decay_rate, after)
        elif self.kind == "step":
            lr = self.learning_rate * tf.pow(self.decay_rate, tf.floor(after))
        else:
            lr = tf.constant(self.learning_rate, "float32")
        lr = tf.maximum(lr, self.min_lr)
        if self.warmup_steps > 0:
            lr = lr * tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate, "kind": self.kind,
            "warmup_steps": self.warmup_steps, "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps, "min_lr": self.min_lr,
        }


def learning_rate(train: TrainConfig) -> float | WarmupDecay:
    """The optimizer's learning rate: a float when constant, else a `WarmupDecay`."""
    if train.lr_schedule == "constant" and not train.warmup_steps:
        return train.learning_rate
    return WarmupDecay(
        train.learning_rate, train.lr_schedule, train.warmup_steps, train.lr_decay_rate,
        train.lr_decay_steps, train.min_learning_rate,
    )


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets Keras' global dtype policy while a model is built, then restores it."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(
    config: Config,
    jit_compile: bool | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> GradTTSTrainer:
    """Builds and compiles `GradTTSTrainer`, with its optimizer state created.

    Adam (`FusedAdam`: Keras' Adam with an in-place update kernel) at the official
    settings (torch defaults: betas 0.9/0.999, eps 1e-8) and
    ``train.learning_rate`` with the configured schedule; EMA of the weights when
    ``train.ema_decay > 0`` (Keras' ``use_ema``); gradient accumulation and dynamic
    loss scaling (``mixed_float16``) by `GradTTSTrainer.configure_training`. Built in
    ``strategy``'s scope when given, under ``train.precision``.
    """
    t = config.train
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope, dtype_policy(t.precision):
        model = GradTTSTrainer.from_config_tree(config)
        optimizer = FusedAdam(
            learning_rate=learning_rate(t), beta_1=t.adam_beta1, beta_2=t.adam_beta2,
            epsilon=t.adam_epsilon, use_ema=t.ema_decay > 0,
            ema_momentum=t.ema_decay if t.ema_decay > 0 else 0.99,
        )
        model.compile(
            optimizer=optimizer,
            jit_compile=use_xla(t.jit_compile) if jit_compile is None else jit_compile,
            # train_step scales the loss itself (GradTTSTrainer.configure_training).
            auto_scale_loss=False,
        )
        model.configure_training(
            grad_accum_steps=t.grad_accum_steps, loss_scaling=t.precision == "mixed_float16"
        )
    return model
