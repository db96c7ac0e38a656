"""`GradTTSTrainer`: the training mechanics around `GradTTS`'s losses, and the split
between the two (the model trains nothing by itself, the trainer adds no weights)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import loss_batch, tiny_gradtts

from gradtts_tf.model import GradTTS
from gradtts_tf.training import GradTTSTrainer


def test_the_model_has_no_training_mechanics_and_the_trainer_no_weights(tmp_path):
    model, trainer = tiny_gradtts(), tiny_gradtts(GradTTSTrainer, grad_clip=0.5, seed=7)
    for name in ("train_step", "test_step", "configure_training"):
        assert name not in vars(GradTTS) and name in vars(GradTTSTrainer), name
    assert not hasattr(model, "trackers") and not hasattr(model, "grad_clip")
    # Same weights under the same paths (below the model's own name).
    def paths(m):
        return [w.path.split("/", 1)[1] for w in m.weights]

    assert paths(model) == paths(trainer) and trainer.name == "grad_tts"
    # Weight files are interchangeable both ways.
    trainer.save_weights(tmp_path / "t.weights.h5")
    model.load_weights(tmp_path / "t.weights.h5")
    for a, b in zip(model.weights, trainer.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    config = trainer.get_config()
    assert config["grad_clip"] == 0.5
    assert GradTTSTrainer.from_config(config).get_config() == config
    # A decoder-dtype twin of a trainer is a plain model.
    assert type(trainer.with_decoder_dtype("float32")) is GradTTS


def _fit_steps(model, batch, steps):
    ds = tf.data.Dataset.from_tensors(batch).repeat(steps)
    return model.fit(ds, epochs=1, verbose=0)


# Each takes ~26 s on 2 cores: the multi-speaker case runs with the slow tests (in CI).
@pytest.mark.parametrize("n_spks", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_every_weight_trains_and_twin_is_untouched(n_spks):
    trained, twin = (tiny_gradtts(GradTTSTrainer, n_spks=n_spks, spk_emb_dim=8) for _ in range(2))
    twin.set_weights(trained.get_weights())
    before = [w.numpy().copy() for w in trained.trainable_weights]
    trained.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    history = _fit_steps(trained, loss_batch(n_spks=n_spks), 3)
    assert np.isfinite(history.history["loss"]).all()
    assert set(history.history) >= {"loss", "dur_loss", "prior_loss", "diff_loss"}
    frozen = [
        w.path for w, b in zip(trained.trainable_weights, before, strict=True)
        if np.array_equal(w.numpy(), b)
    ]
    assert not frozen, f"weights that did not change (detached from the loss?): {frozen}"
    for w, b in zip(twin.trainable_weights, before, strict=True):
        assert np.array_equal(w.numpy(), b)


@pytest.mark.slow
def test_fit_under_xla():
    # XLA is the GPU path; on CPU compiling the train step takes ~100 s.
    model = tiny_gradtts(GradTTSTrainer, out_size=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = _fit_steps(model, loss_batch(), 2)
    assert np.isfinite(history.history["loss"]).all()
    changed = [
        not np.array_equal(w.numpy(), b)
        for w, b in zip(model.trainable_weights, before, strict=True)
    ]
    assert all(changed)


@pytest.mark.slow  # ~22 s on 2 cores
def test_training_step_is_traced_once_without_configure_training():
    """compile() + fit(): the optimizer is built before the step is traced, so the step
    is traced once and no variable initialiser functions are left behind."""
    from tensorflow.python.eager import context

    model = tiny_gradtts(GradTTSTrainer, out_size=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    assert not model.optimizer.built
    before = set(context.context().list_function_names())
    _fit_steps(model, loss_batch(), 2)
    assert model.optimizer.built
    new = set(context.context().list_function_names()) - before
    steps = [n for n in new if "one_step_on" in n]
    assert len(steps) == 1, steps
    assert not [n for n in new if "momentum_cond" in n or "velocity_cond" in n]


@pytest.mark.slow  # ~30 s on 2 cores
def test_mixed_precision_training_runs():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_gradtts(GradTTSTrainer)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
        history = _fit_steps(model, loss_batch(), 2)
        assert np.isfinite(history.history["loss"]).all()
        losses = model.compute_losses(loss_batch())
        assert all(v.dtype == tf.float32 for v in losses.values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_gradient_clipping_per_module():
    model = tiny_gradtts(GradTTSTrainer, grad_clip=1e-3, out_size=None)
    model.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=False)
    before = {v.path: v.numpy().copy() for v in model.trainable_weights}
    _fit_steps(model, loss_batch(), 1)

    def update_norm(layer):
        return np.sqrt(sum(
            np.sum((v.numpy() - before[v.path]) ** 2) for v in layer.trainable_weights
        ))

    # Raw gradients are far larger than 1e-3, so each module's step is clipped to it.
    np.testing.assert_allclose(update_norm(model.encoder), 1e-3, rtol=1e-3)
    np.testing.assert_allclose(update_norm(model.decoder), 1e-3, rtol=1e-3)
