"""Every private Keras / TensorFlow attribute the project relies on, in one place.

Keras and TensorFlow have no public API for these needs; each accessor says why it is
needed. ``tests/test_keras_internals.py`` checks that every name in `PRIVATE_NAMES`
still exists in the installed versions and fails with a message naming the one that
went away, so an upgrade breaks one test, not training in the middle of a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no import at run time: `eager_context_started` must not start TF
    import keras

# (owner, attribute): what a Keras/TensorFlow upgrade must keep, checked by the test.
PRIVATE_NAMES = (
    ("keras.optimizers.Optimizer", "_trainable_variables"),
    ("keras.optimizers.Optimizer", "_model_variables_moving_average"),
    ("keras.optimizers.Optimizer", "_get_variable_index"),
    ("keras.optimizers.Optimizer", "_distribution_strategy"),
    ("keras.Model", "_maybe_symbolic_build"),  # overridden by GradTTSTrainer
    ("keras.Model", "_eval_epoch_iterator"),
    ("tf.distribute.MultiWorkerMirroredStrategy.extended", "_in_multi_worker_mode"),
    ("tensorflow.python.eager.context.Context", "_context_handle"),
)


def ema_pairs(optimizer: keras.optimizers.Optimizer) -> Iterator[tuple]:
    """``(trainable variable, its moving average)`` of an optimizer built with
    ``use_ema=True`` (Keras' own `keras.callbacks.SwapEMAWeights` reads the same)."""
    return zip(optimizer._trainable_variables, optimizer._model_variables_moving_average,
               strict=True)


def optimizer_strategy(optimizer: keras.optimizers.Optimizer):
    """The `tf.distribute` strategy the optimizer's variables were created under."""
    return optimizer._distribution_strategy


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """Index of ``variable``'s slots (momentum, velocity) in the optimizer's lists."""
    return optimizer._get_variable_index(variable)


def in_multi_worker_mode(strategy) -> bool:
    """Whether a `MultiWorkerMirroredStrategy` spans several workers (a strategy built
    without a cluster runs as one local worker)."""
    return bool(strategy.extended._in_multi_worker_mode())


def drop_eval_iterator(model: keras.Model) -> None:
    """Lets go of the validation iterator `fit` caches on the model (and leaves there
    when `fit` ends by an exception), so its threads can be stopped now."""
    if getattr(model, "_eval_epoch_iterator", None) is not None:
        model._eval_epoch_iterator = None


def eager_context_started() -> bool:
    """True once TensorFlow's eager context exists (ops may have run); False when
    TensorFlow is not imported or the check is not possible."""
    import sys

    if "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.eager import context

        return context.context()._context_handle is not None
    except (ImportError, AttributeError):
        return False
