"""FusedAdam: Keras' Adam, step for step, with TensorFlow's in-place kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradtts_tf.training.optimizers import FusedAdam

SHAPES = [(5, 7), (7,), (11, 3)]


def _train(opt, graph: bool, steps: int = 6, sparse: bool = False):
    """Applies ``steps`` random gradients (scaled up over time) to fixed variables."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(s).astype("float32"), name=f"w{i}")
                 for i, s in enumerate(SHAPES)]
    opt.build(variables)

    def step(grads):
        opt.apply(grads, variables)

    run = tf.function(step) if graph else step
    for i in range(steps):
        grads = [tf.constant(rng.standard_normal(s).astype("float32") * (i + 1)) for s in SHAPES]
        if sparse:  # an embedding-style gradient for the first variable: rows 1 and 3
            rows = tf.constant([1, 3])
            grads[0] = tf.IndexedSlices(tf.gather(grads[0], rows), rows, tf.constant(SHAPES[0]))
        run(grads)
    return [v.numpy() for v in variables], opt


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_fused_adam_equals_keras_adam(graph, sparse):
    kwargs = dict(learning_rate=1e-2, beta_1=0.8, beta_2=0.95, epsilon=1e-7)
    ref, ref_opt = _train(keras.optimizers.Adam(**kwargs), graph, sparse=sparse)
    ours, opt = _train(FusedAdam(**kwargs), graph, sparse=sparse)
    initial, _ = _train(FusedAdam(**kwargs), graph, steps=0)
    assert all(np.abs(a - b).max() > 1e-2 for a, b in zip(ref, initial, strict=True))
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(opt.variables, ref_opt.variables, strict=True):
        # Same slots and names (the optimizer's own name is uniquified per instance).
        assert a.path.split("/", 1)[1] == b.path.split("/", 1)[1]
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def test_fused_adam_ema_and_config():
    ref, ref_opt = _train(keras.optimizers.Adam(use_ema=True, ema_momentum=0.9), graph=True)
    ours, opt = _train(FusedAdam(use_ema=True, ema_momentum=0.9), graph=True)
    for a, b in zip(opt._model_variables_moving_average,
                    ref_opt._model_variables_moving_average, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert type(again) is FusedAdam and again.get_config() == opt.get_config()


def test_training_uses_fused_adam():
    from gradtts_tf.config import load_config
    from gradtts_tf.training import build_model

    config = load_config("configs/demo.yaml", ["train.ema_decay=0.99"])
    model = build_model(config, jit_compile=False)
    assert isinstance(model.optimizer, FusedAdam) and model.optimizer.use_ema
