"""Reverse-time solvers of the Grad-TTS diffusion, as per-step coefficient plans.

With ``y = x - mu`` the Grad-TTS forward SDE ``dx = 1/2 (mu - x) beta_t dt +
sqrt(beta_t) dW`` is the variance-preserving SDE ``dy = -1/2 beta_t y dt +
sqrt(beta_t) dW``: ``y_t = alpha_t y_0 + sigma_t eps`` with ``alpha_t = exp(-1/2
int_0^t beta)`` and ``sigma_t^2 = 1 - alpha_t^2``. The estimator predicts the score
``s``, so the data prediction is ``y0 = (y + sigma_t^2 s) / alpha_t`` (Tweedie) and the
noise prediction ``eps = -sigma_t s``.

Every solver here is, per step, a linear combination fixed by the schedule alone::

    s      = estimator(x, t)
    y0     = e * y + f * s                        # data prediction at t
    y_next = a * y + b * s + c * y0_prev + d * noise
    x_next = (mu + y_next) * mask,  x0 = (mu + y0) * mask

with ``y0_prev = x0_prev - mu`` the previous step's data prediction and ``noise`` a
standard normal draw (stochastic solvers). A `SolverPlan` holds the evaluation time
and the six coefficients ``(a, b, c, d, e, f)`` of each step, computed in float64 from
the schedule; `solver_step` applies one step with backend ops. Keras, the exported
``decoder_step`` graph and the host loops of the LiteRT runner and the browser page
all run this one step, so a solver gives the same mel in every runtime.

Solvers (``steps`` equal steps in ``t`` down to 0, ``h = 1 / steps``; the official
temperature: the start is ``mu + eps / temperature``):

- ``euler``: the official sampler, Euler on the probability-flow ODE, the estimator
  called at the midpoints ``t_i = 1 - (i + 1/2) h``. First order.
- ``euler-sde``: the official stochastic sampler, Euler-Maruyama on the reverse SDE at
  the same midpoints.
- ``dpmpp-2m``: DPM-Solver++(2M) (Lu et al., 2022), a multistep exponential integrator
  of the probability-flow ODE in the data prediction, second order, on `time_grid`.
  Its first step and its last step (to ``t = 0``, where the log-SNR step is infinite)
  are first order: the last one returns the data prediction.
- ``ml-sde``: the maximum-likelihood reverse SDE solver of Popov et al. (ICLR 2022,
  "Diffusion-based voice conversion with fast maximum likelihood sampling scheme"):
  each step draws from the forward process's posterior ``q(y_s | y_t, y_0)`` with
  ``y_0`` replaced by its data prediction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

SOLVERS = ("euler", "euler-sde", "dpmpp-2m", "ml-sde")
STOCHASTIC_SOLVERS = ("euler-sde", "ml-sde")
DEFAULT_SOLVER = "euler"
# Plain-text description for command-line help and API docs.
SOLVER_HELP = (
    "reverse-diffusion solver: euler (official probability-flow ODE), euler-sde "
    "(official stochastic sampler), dpmpp-2m (DPM-Solver++ 2M, second-order ODE), "
    "ml-sde (maximum-likelihood SDE of Popov et al. 2022)"
)
N_COEFS = 6


def check_solver(solver: str) -> str:
    """Returns ``solver`` if it is one of `SOLVERS`.

    Raises:
        ValueError: Naming the valid solvers.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {', '.join(SOLVERS)}, got {solver!r}")
    return solver


@dataclasses.dataclass(frozen=True)
class SolverPlan:
    """Evaluation times and step coefficients of one solver at one number of steps.

    Attributes:
        solver: The solver's name.
        times: ``steps`` estimator times (float64; fed to the estimator as float32).
        coefs: ``steps`` tuples ``(a, b, c, d, e, f)`` (see the module docstring).
        stochastic: Whether steps draw noise (``d != 0``).
    """

    solver: str
    times: tuple[float, ...]
    coefs: tuple[tuple[float, ...], ...]
    stochastic: bool

    @property
    def steps(self) -> int:
        return len(self.times)


class _Schedule:
    """The linear noise schedule: ``beta_t`` and its integral, float64."""

    def __init__(self, beta_min: float, beta_max: float):
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: float) -> float:
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def cum(self, t: float) -> float:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def alpha(self, t: float) -> float:
        return math.exp(-0.5 * self.cum(t))

    def var(self, t: float) -> float:
        """``sigma_t^2 = 1 - alpha_t^2``, accurate near ``t = 0``."""
        return -math.expm1(-self.cum(t))

    def data_prediction(self, t: float) -> tuple[float, float]:
        """``(e, f)`` of ``y0 = e y + f s`` at time ``t``."""
        alpha = self.alpha(t)
        return 1.0 / alpha, self.var(t) / alpha

    def log_snr(self, t: float) -> float:
        """``lambda_t = log(alpha_t / sigma_t)``; ``inf`` at ``t = 0``."""
        if t <= 0.0:
            return math.inf
        return -0.5 * self.cum(t) - 0.5 * math.log(self.var(t))


def _euler(sch: _Schedule, steps: int, stochastic: bool) -> tuple[list, list]:
    h = 1.0 / steps
    times, coefs = [], []
    for i in range(steps):
        t = 1.0 - (i + 0.5) * h  # official midpoint times
        bh = sch.beta(t) * h
        if stochastic:
            # x -= (1/2 (mu - x) - s) beta h + sqrt(beta h) eps
            step = (1.0 + 0.5 * bh, bh, 0.0, -math.sqrt(bh))
        else:
            # x -= 1/2 (mu - x - s) beta h
            step = (1.0 + 0.5 * bh, 0.5 * bh, 0.0, 0.0)
        times.append(t)
        coefs.append((*step, *sch.data_prediction(t)))
    return times, coefs


def _dpmpp_2m(sch: _Schedule, grid: list[float]) -> tuple[list, list]:
    times, coefs = [], []
    for i in range(len(grid) - 1):
        t, s = grid[i], grid[i + 1]
        e, f = sch.data_prediction(t)
        if s <= 0.0:
            # Infinite log-SNR step: x_0 is the data prediction itself.
            a, b, c = e, f, 0.0
        else:
            lam_step = sch.log_snr(s) - sch.log_snr(t)
            ratio = math.sqrt(sch.var(s) / sch.var(t))  # sigma_s / sigma_t
            weight = -sch.alpha(s) * math.expm1(-lam_step)  # alpha_s (1 - e^-h)
            if i == 0:
                k, c = 1.0, 0.0
            else:
                r = (sch.log_snr(t) - sch.log_snr(grid[i - 1])) / lam_step
                k, c = 1.0 + 0.5 / r, -weight * 0.5 / r
            a, b = ratio + weight * k * e, weight * k * f
        times.append(t)
        coefs.append((a, b, c, 0.0, e, f))
    return times, coefs


def _ml_sde(sch: _Schedule, grid: list[float]) -> tuple[list, list]:
    times, coefs = [], []
    for i in range(len(grid) - 1):
        t, s = grid[i], grid[i + 1]
        e, f = sch.data_prediction(t)
        # Forward-process posterior q(y_s | y_t, y_0) = N(mean_y y_t + mean_0 y_0, var).
        gamma2 = math.exp(-(sch.cum(t) - sch.cum(s)))  # (alpha_t / alpha_s)^2
        var_t, var_s = sch.var(t), sch.var(s)
        mean_y = math.sqrt(gamma2) * var_s / var_t
        mean_0 = sch.alpha(s) * (1.0 - gamma2) / var_t
        std = math.sqrt(var_s * (1.0 - gamma2) / var_t)
        times.append(t)
        coefs.append((mean_y + mean_0 * e, mean_0 * f, 0.0, std, e, f))
    return times, coefs


def time_grid(solver: str, steps: int) -> list[float]:
    """The ``steps + 1`` times, from the start to 0, of ``dpmpp-2m`` and ``ml-sde``.

    ``ml-sde``: the official uniform grid ``t_i = 1 - i h`` (``h = 1 / steps``), as
    its authors run it. ``dpmpp-2m``: the same grid started a quarter step lower,
    ``t_i = (1 - h / 4)(1 - i h)``: its first step turns the estimator's output into a
    data prediction, dividing by ``alpha_t``, which is smallest (and the estimator's
    error largest) at ``t = 1``. The start sample ``mu + eps / temperature`` is the
    same; the shift leaves its distribution out of account by ``alpha^2 < 1e-4``.
    BENCHMARKS.md ("Solvers") has the measurements behind the choice.
    """
    h = 1.0 / steps
    start = 1.0 - 0.25 * h if solver == "dpmpp-2m" else 1.0
    return [start * (1.0 - i * h) for i in range(steps)] + [0.0]


def solver_plan(
    solver: str,
    steps: int,
    beta_min: float,
    beta_max: float,
    times: Sequence[float] | None = None,
) -> SolverPlan:
    """The evaluation times and step coefficients of ``solver`` at ``steps`` steps.

    Args:
        solver: One of `SOLVERS`.
        steps: Number of estimator calls (>= 1).
        beta_min: Noise schedule at ``t = 0``.
        beta_max: Noise schedule at ``t = 1``.
        times: ``dpmpp-2m`` and ``ml-sde`` only: ``steps + 1`` decreasing times in
            ``(0, 1]`` then ``>= 0`` to run over instead of `time_grid` (the last one
            is where the solver stops: above 0, the result is the sample at that time).

    Returns:
        A `SolverPlan`.

    Raises:
        ValueError: An unknown solver or ``steps < 1``.
    """
    check_solver(solver)
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    steps = int(steps)
    sch = _Schedule(beta_min, beta_max)
    if solver in ("euler", "euler-sde"):
        if times is not None:
            raise ValueError(f"times: {solver} runs on the official midpoint grid only")
        evals, coefs = _euler(sch, steps, stochastic=solver == "euler-sde")
    else:
        if times is None:
            grid = time_grid(solver, steps)
        else:
            grid = [float(t) for t in times]
            if len(grid) != steps + 1 or not all(
                a > b >= 0.0 for a, b in zip(grid, grid[1:], strict=False)
            ) or grid[0] > 1.0:
                raise ValueError(
                    f"times: expected {steps + 1} decreasing times in [0, 1], got {times!r}"
                )
        step = _dpmpp_2m if solver == "dpmpp-2m" else _ml_sde
        evals, coefs = step(sch, grid)
    return SolverPlan(
        solver, tuple(evals), tuple(tuple(c) for c in coefs), solver in STOCHASTIC_SOLVERS
    )


def solver_step(score, xt, mask, mu, coef, x0_prev=None, noise=None):
    """One step of a `SolverPlan` from the estimator's output.

    Args:
        score: ``[B, T, C]`` estimator output at ``xt`` and the step's time.
        xt: ``[B, T, C]`` current sample.
        mask: ``[B, T, 1]``.
        mu: ``[B, T, C]`` the prior mean.
        coef: ``[6]`` the step's ``(a, b, c, d, e, f)`` (float32).
        x0_prev: ``[B, T, C]`` the previous step's data prediction, or ``None`` (the
            ``c`` term is dropped).
        noise: ``[B, T, C]`` standard normal draw, or ``None`` (the ``d`` term is
            dropped).

    Returns:
        ``(x_next, x0)``: the next sample and this step's data prediction, both
        ``[B, T, C]`` float32 and masked.
    """
    y = xt - mu
    y0 = coef[4] * y + coef[5] * score
    y_next = coef[0] * y + coef[1] * score
    if x0_prev is not None:
        y_next = y_next + coef[2] * (x0_prev - mu)
    if noise is not None:
        y_next = y_next + coef[3] * noise
    return (mu + y_next) * mask, (mu + y0) * mask


def solve(
    score_fn: Callable,
    plan: SolverPlan,
    z,
    mask,
    mu,
    noise=None,
):
    """Runs a `SolverPlan` from ``z`` at ``t = 1`` to ``t = 0`` as a backend loop.

    Args:
        score_fn: ``score_fn(xt, t) -> [B, T, C]`` with ``t`` of shape ``[B]``.
        plan: The solver's plan.
        z: ``[B, T, C]`` start sample.
        mask: ``[B, T, 1]``.
        mu: ``[B, T, C]``.
        noise: ``[steps, B, T, C]`` standard normal draws for a stochastic plan
            (required then; ignored otherwise).

    Returns:
        ``[B, T, C]`` float32, masked.
    """
    from keras import ops  # here: the plans serve host loops without Keras

    if plan.stochastic and noise is None:
        raise ValueError(f"solver {plan.solver!r} is stochastic: noise is required")
    times = ops.convert_to_tensor(plan.times, dtype="float32")  # [steps]
    coefs = ops.convert_to_tensor(plan.coefs, dtype="float32")  # [steps, 6]
    ones = ops.ones((ops.shape(z)[0],), dtype="float32")  # [B]
    multistep = any(c[2] != 0.0 for c in plan.coefs)

    def step(i, carry):
        xt, x0_prev = carry
        score = score_fn(xt, times[i] * ones)
        return solver_step(
            score, xt, mask, mu, coefs[i],
            x0_prev=x0_prev if multistep else None,
            noise=noise[i] if plan.stochastic else None,
        )

    start = z * mask
    x, _ = ops.fori_loop(0, plan.steps, step, (start, ops.zeros_like(start)))
    return x
