"""Reverse-diffusion solvers: plans, convergence orders on a Gaussian, the Keras loop."""

import math

import keras
import numpy as np
import pytest

from gradtts_tf.layers.diffusion import Diffusion
from gradtts_tf.solvers import SOLVERS, STOCHASTIC_SOLVERS, solve, solver_plan, solver_step

BETA_MIN, BETA_MAX = 0.05, 20.0
# Data y_0 = x_0 - mu ~ N(M0, S0^2) per element: every marginal is Gaussian, the score
# is linear and the probability-flow ODE has a closed-form solution.
M0, S0 = 0.7, 0.5


def _alpha(t: float) -> float:
    return math.exp(-0.5 * (BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t))


def _marginal_var(t: float) -> float:
    """Variance of ``y_t``: ``alpha^2 S0^2 + sigma^2``."""
    a2 = _alpha(t) ** 2
    return a2 * S0 * S0 + 1.0 - a2


def _score(y, t: float):
    return -(y - _alpha(t) * M0) / _marginal_var(t)


def _ode_solution(y1, t_end: float = 0.0):
    """The probability-flow ODE keeps ``(y_t - alpha_t M0) / sqrt(var_t)`` constant."""
    z = (y1 - _alpha(1.0) * M0) / math.sqrt(_marginal_var(1.0))
    return _alpha(t_end) * M0 + math.sqrt(_marginal_var(t_end)) * z


def _run_numpy(solver: str, steps: int, y1: np.ndarray, times=None) -> np.ndarray:
    """The plan driven by `solver_step` on numpy arrays (mu = 0, no mask)."""
    plan = solver_plan(solver, steps, BETA_MIN, BETA_MAX, times=times)
    y, y0 = y1, np.zeros_like(y1)
    for t, coef in zip(plan.times, plan.coefs, strict=True):
        y, y0 = solver_step(_score(y, t), y, 1.0, 0.0, np.asarray(coef), x0_prev=y0)
    return y


def _order(errors: list[float]) -> list[float]:
    return [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]


def test_euler_plan_is_the_official_grid():
    plan = solver_plan("euler", 4, BETA_MIN, BETA_MAX)
    assert plan.times == (0.875, 0.625, 0.375, 0.125)
    t, h = 0.625, 0.25
    bh = (BETA_MIN + (BETA_MAX - BETA_MIN) * t) * h
    assert plan.coefs[1][:4] == (1.0 + 0.5 * bh, 0.5 * bh, 0.0, 0.0)
    assert not plan.stochastic


@pytest.mark.parametrize("solver", SOLVERS)
def test_plans_run_from_one_to_zero(solver):
    plan = solver_plan(solver, 6, BETA_MIN, BETA_MAX)
    assert plan.steps == 6 and len(plan.coefs) == 6
    assert plan.times[0] <= 1.0 and all(
        a > b > 0 for a, b in zip(plan.times, plan.times[1:], strict=False)
    )
    assert plan.stochastic == (solver in STOCHASTIC_SOLVERS)
    assert all(math.isfinite(c) for coef in plan.coefs for c in coef)


def test_bad_solver_steps_or_times_say_what_is_allowed():
    with pytest.raises(ValueError, match="euler, euler-sde, dpmpp-2m, ml-sde"):
        solver_plan("heun", 4, BETA_MIN, BETA_MAX)
    with pytest.raises(ValueError, match="steps"):
        solver_plan("euler", 0, BETA_MIN, BETA_MAX)
    with pytest.raises(ValueError, match="3 decreasing times"):
        solver_plan("dpmpp-2m", 2, BETA_MIN, BETA_MAX, times=[1.0, 0.7, 0.8])
    with pytest.raises(ValueError, match="midpoint grid"):
        solver_plan("euler", 2, BETA_MIN, BETA_MAX, times=[1.0, 0.5, 0.0])


def test_dpmpp_2m_starts_a_quarter_step_below_one():
    assert solver_plan("dpmpp-2m", 4, BETA_MIN, BETA_MAX).times == pytest.approx(
        (0.9375, 0.703125, 0.46875, 0.234375)
    )
    assert solver_plan("ml-sde", 4, BETA_MIN, BETA_MAX).times == (1.0, 0.75, 0.5, 0.25)


def test_euler_converges_at_first_order():
    y1 = np.array([-1.3, 0.2, 1.3])
    steps = [16, 32, 64, 128, 256]
    errors = [float(np.max(np.abs(_run_numpy("euler", n, y1) - _ode_solution(y1))))
              for n in steps]
    print("euler", [f"{e:.2e}" for e in errors], [f"{o:.2f}" for o in _order(errors)])
    assert all(abs(o - 1.0) < 0.2 for o in _order(errors)[-2:])


def test_dpmpp_2m_converges_at_second_order():
    """On a grid that stops short of t = 0 (where its steps are exponential
    integrator steps of finite log-SNR length), the error falls as ``h^2``."""
    y1 = np.array([-1.3, 0.2, 1.3])
    t_end = 0.01
    exact = _ode_solution(y1, t_end)
    steps = [16, 32, 64, 128, 256]
    errors = []
    for n in steps:
        times = [1.0 - i * (1.0 - t_end) / n for i in range(n + 1)]
        errors.append(float(np.max(np.abs(_run_numpy("dpmpp-2m", n, y1, times) - exact))))
    print("dpmpp-2m", [f"{e:.2e}" for e in errors], [f"{o:.2f}" for o in _order(errors)])
    assert all(abs(o - 2.0) < 0.3 for o in _order(errors)[-2:])


def test_dpmpp_2m_default_grid_converges():
    """To t = 0 the last step is the data prediction: first order, and still exact in
    the limit."""
    y1 = np.array([-1.3, 0.2, 1.3])
    errors = [float(np.max(np.abs(_run_numpy("dpmpp-2m", n, y1) - _ode_solution(y1))))
              for n in (64, 128, 256, 512)]
    print("dpmpp-2m to 0", [f"{e:.2e}" for e in errors], [f"{o:.2f}" for o in _order(errors)])
    assert errors[-1] < 2e-3 and all(o > 0.8 for o in _order(errors))


def _output_moments(solver: str, steps: int, start_std: float) -> tuple[float, float]:
    """Mean and std of a stochastic solver's output from ``y_1 ~ N(0, start_std^2)``.

    With a linear score each step is affine in ``y`` plus Gaussian noise, so the output
    is Gaussian and its moments follow exactly, without sampling.
    """
    plan = solver_plan(solver, steps, BETA_MIN, BETA_MAX)
    mean, var = 0.0, start_std**2
    for t, (a, b, _, d, _, _) in zip(plan.times, plan.coefs, strict=True):
        gain = a - b / _marginal_var(t)
        mean = gain * mean + b * _alpha(t) * M0 / _marginal_var(t)
        var = gain * gain * var + d * d
    return mean, math.sqrt(var)


@pytest.mark.parametrize("solver", STOCHASTIC_SOLVERS)
def test_sde_solvers_converge_weakly_at_first_order(solver):
    """The output distribution approaches the data's, N(M0, S0^2), at first order."""
    steps = [64, 128, 256, 512, 1024]
    errors = []
    for n in steps:
        mean, std = _output_moments(solver, n, 1.0)
        errors.append(abs(mean - M0) + abs(std - S0))
    print(solver, [f"{e:.2e}" for e in errors], [f"{o:.2f}" for o in _order(errors)])
    assert all(abs(o - 1.0) < 0.3 for o in _order(errors)[-2:])


def _score_ops(x, t):
    """`_score` in backend ops, ``t`` of shape ``[B]``."""
    cum = (BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t)[:, None, None]  # [B, 1, 1]
    alpha = keras.ops.exp(-0.5 * cum)
    return -(x - alpha * M0) / (alpha * alpha * S0 * S0 + 1.0 - alpha * alpha)


def test_keras_loop_matches_the_numpy_steps():
    """`solve` (backend ops, a while loop) runs the same arithmetic as the plan."""
    y1 = np.random.default_rng(0).standard_normal((2, 8, 3)).astype(np.float32)
    mask = np.ones((2, 8, 1), np.float32)
    for solver in ("euler", "dpmpp-2m"):
        plan = solver_plan(solver, 5, BETA_MIN, BETA_MAX)
        ours = solve(_score_ops, plan, y1, mask, np.zeros_like(y1))
        ref = _run_numpy(solver, 5, y1.astype(np.float64))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def decoder():
    keras.utils.set_random_seed(0)
    layer = Diffusion(n_feats=8, dim=8, seed=1)
    layer.build()
    return layer


def _inputs(frames: int = 12):
    rng = np.random.default_rng(3)
    mu = rng.standard_normal((2, frames, 8)).astype(np.float32)
    mask = np.ones((2, frames, 1), np.float32)
    mask[1, frames - 4:] = 0.0
    z = mu + rng.standard_normal(mu.shape).astype(np.float32) / 1.5
    return z * mask, mask, mu * mask


def test_generic_euler_step_matches_the_official_step(decoder):
    """Hosts run euler through the generic step: the official update to rounding."""
    z, mask, mu = _inputs()
    plan = solver_plan("euler", 4, BETA_MIN, BETA_MAX)
    official = decoder.reverse_diffusion(z, mask, mu, 4)
    generic = decoder.sample(plan, z, mask, mu)
    np.testing.assert_allclose(generic, official, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
def test_reverse_diffusion_runs_every_solver(decoder, solver):
    z, mask, mu = _inputs()
    noise = np.random.default_rng(5).standard_normal((3, *z.shape)).astype(np.float32)
    out = keras.ops.convert_to_numpy(
        decoder.reverse_diffusion(z, mask, mu, 3, solver=solver, noise=noise)
    )
    assert np.all(np.isfinite(out))
    assert np.all(out[1, -4:] == 0.0)  # masked frames stay zero
    again = keras.ops.convert_to_numpy(
        decoder.reverse_diffusion(z, mask, mu, 3, solver=solver, noise=noise)
    )
    np.testing.assert_array_equal(out, again)
    other = keras.ops.convert_to_numpy(
        decoder.reverse_diffusion(z, mask, mu, 3, solver="euler")
    )
    if solver != "euler":
        assert np.max(np.abs(out - other)) > 1e-3


def test_stoc_is_the_euler_sde_solver(decoder):
    z, mask, mu = _inputs()
    noise = np.random.default_rng(6).standard_normal((2, *z.shape)).astype(np.float32)
    a = decoder.reverse_diffusion(z, mask, mu, 2, stoc=True, noise=noise)
    b = decoder.reverse_diffusion(z, mask, mu, 2, solver="euler-sde", noise=noise)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="euler-sde"):
        decoder.reverse_diffusion(z, mask, mu, 2, stoc=True, solver="dpmpp-2m")
