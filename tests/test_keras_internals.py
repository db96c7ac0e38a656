"""The private Keras/TensorFlow names the project relies on still exist here.

A failure names the attribute an upgrade removed: replace its accessor in
`gradtts_tf.keras_internals` (the only module that touches these names).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradtts_tf import keras_internals as internals


def _owner(name: str):
    """An instance (or the class) where each private attribute must be found."""
    if name == "keras.optimizers.Optimizer":
        opt = keras.optimizers.Adam(use_ema=True)
        opt.build([keras.Variable(np.zeros(3, np.float32))])
        return opt
    if name == "keras.Model":
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(loss="mse")
        data = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
        model.fit(*data, validation_data=data, epochs=1, verbose=0)
        return model
    if name == "tf.distribute.MultiWorkerMirroredStrategy.extended":
        return tf.distribute.MultiWorkerMirroredStrategy().extended
    if name == "tensorflow.python.eager.context.Context":
        from tensorflow.python.eager import context

        return context.context()
    raise AssertionError(f"no owner for {name}")


@pytest.mark.parametrize(("owner", "attribute"), internals.PRIVATE_NAMES)
def test_private_name_still_exists(owner, attribute):
    if attribute == "_eval_epoch_iterator":
        # Only set while `fit` runs (and left behind when it ends by an exception).
        import inspect

        from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

        assert attribute in inspect.getsource(TensorFlowTrainer.fit), (
            f"keras {keras.__version__}'s fit no longer keeps {attribute}: update "
            "drop_eval_iterator in gradtts_tf/keras_internals.py"
        )
        return
    assert hasattr(_owner(owner), attribute), (
        f"{owner}.{attribute} is gone from keras {keras.__version__} / tensorflow "
        f"{tf.__version__}: update its accessor in gradtts_tf/keras_internals.py"
    )


def test_accessors_read_what_they_say():
    opt = keras.optimizers.Adam(use_ema=True)
    weights = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.ones(2, np.float32))]
    opt.build(weights)
    pairs = list(internals.ema_pairs(opt))
    assert [v is w for (v, _), w in zip(pairs, weights, strict=True)] == [True, True]
    assert [avg.shape for _, avg in pairs] == [(3,), (2,)]
    assert internals.variable_index(opt, weights[1]) == 1
    assert internals.optimizer_strategy(opt) is tf.distribute.get_strategy()
    assert internals.in_multi_worker_mode(tf.distribute.MultiWorkerMirroredStrategy()) is False
    assert internals.eager_context_started()
    model = _owner("keras.Model")
    model._eval_epoch_iterator = object()  # as an interrupted fit leaves it
    internals.drop_eval_iterator(model)
    assert model._eval_epoch_iterator is None


def test_tensorflow_private_module_used_for_freezing():
    from tensorflow.python.framework.convert_to_constants import (  # noqa: F401
        convert_variables_to_constants_v2,
    )
