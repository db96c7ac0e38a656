"""Score-based diffusion decoder of Grad-TTS (official ``Diffusion`` in ``model/diffusion.py``).

Forward SDE ``dX = 0.5 (mu - X) beta_t dt + sqrt(beta_t) dW`` with the linear noise schedule
``beta_t = beta_min + (beta_max - beta_min) t``. Tensors are channels-last: mels and ``mu``
``[B, T, n_feats]``, masks ``[B, T, 1]``; T must be a multiple of 4 (see
``GradLogPEstimator2d``). All SDE arithmetic is float32, also under a mixed-precision
policy (only the estimator computes in the policy's compute dtype).
"""

from __future__ import annotations

import keras
from keras import ops

from gradtts_tf.layers.score_estimator import GradLogPEstimator2d
from gradtts_tf.solvers import SolverPlan, check_solver, solve, solver_plan, solver_step


def get_noise(t, beta_init: float, beta_term: float, cumulative: bool = False):
    """Noise schedule ``beta_t`` or its integral ``int_0^t beta_s ds``.

    Args:
        t: Times, any shape, float.
        beta_init: ``beta_min``.
        beta_term: ``beta_max``.
        cumulative: Return the integral instead of ``beta_t``.

    Returns:
        Same shape as ``t``.
    """
    if cumulative:
        return beta_init * t + 0.5 * (beta_term - beta_init) * (t**2)
    return beta_init + (beta_term - beta_init) * t


def _f32(x):
    return ops.cast(x, "float32")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Diffusion(keras.layers.Layer):
    """Grad-TTS decoder: forward diffusion, training loss and reverse-time sampling.

    Owns the U-Net score estimator (``self.estimator``) and a ``SeedGenerator``
    (``self.seed_generator``) for its random draws. Calling the layer runs
    ``reverse_diffusion`` (the official ``forward``). Inputs are never autocast
    (``autocast=False`` by default): everything is cast to float32 here.

    Args:
        n_feats: Mel bins.
        dim: Base channels of the U-Net (``dec_dim``).
        n_spks: Number of speakers.
        spk_emb_dim: Speaker embedding size.
        beta_min: Noise schedule at ``t = 0``.
        beta_max: Noise schedule at ``t = 1``.
        pe_scale: Time-embedding scale of the estimator.
        seed: Seed of the layer's ``SeedGenerator`` (``None``: random).
    """

    def __init__(
        self,
        n_feats: int,
        dim: int,
        n_spks: int = 1,
        spk_emb_dim: int = 64,
        beta_min: float = 0.05,
        beta_max: float = 20.0,
        pe_scale: float = 1000,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.n_feats = n_feats
        self.dim = dim
        self.n_spks = n_spks
        self.spk_emb_dim = spk_emb_dim
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.pe_scale = pe_scale
        self.seed = seed
        self.estimator = GradLogPEstimator2d(
            dim,
            n_spks=n_spks,
            spk_emb_dim=spk_emb_dim,
            n_feats=n_feats,
            pe_scale=pe_scale,
            dtype=self.dtype_policy,
            name="estimator",
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def build(self, input_shape=None):
        self.estimator.build((None, None, self.n_feats))

    def _ensure_built(self):
        # Methods other than __call__ do not trigger Keras' automatic build.
        if not self.built:
            self.build()
            self.built = True

    def _estimate(self, xt, mask, mu, t, spk_emb):
        """Estimator output as float32 ``[B, T, n_feats]``."""
        return _f32(self.estimator(xt, mask, mu, t, spk_emb=spk_emb))

    def forward_diffusion(self, x0, mask, mu, t, z):
        """Samples ``x_t ~ q(x_t | x_0)`` with the given standard normal draw ``z``.

        Mean ``x0 exp(-cum/2) + mu (1 - exp(-cum/2))``, variance ``1 - exp(-cum)``,
        ``cum = int_0^t beta_s ds``.

        Args:
            x0: ``[B, T, n_feats]`` clean mel.
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            t: ``[B]`` times.
            z: ``[B, T, n_feats]`` standard normal noise.

        Returns:
            ``(xt, z)``, both ``[B, T, n_feats]`` float32 and masked.
        """
        x0, mask, mu, t, z = (_f32(v) for v in (x0, mask, mu, t, z))
        time = t[:, None, None]  # [B, 1, 1]
        cum_noise = get_noise(time, self.beta_min, self.beta_max, cumulative=True)
        decay = ops.exp(-0.5 * cum_noise)
        mean = x0 * decay + mu * (1.0 - decay)
        variance = 1.0 - ops.exp(-cum_noise)
        xt = mean + z * ops.sqrt(variance)
        return xt * mask, z * mask

    def loss_t(self, x0, mask, mu, t, z, spk_emb=None):
        """Noise-estimation loss at given times and noise (official ``loss_t``).

        ``sum((s(x_t) * sqrt(lambda_t) + z)^2) / (sum(mask) * n_feats)`` with
        ``lambda_t = 1 - exp(-cum)``.

        Args:
            x0: ``[B, T, n_feats]`` clean mel.
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            t: ``[B]`` times.
            z: ``[B, T, n_feats]`` standard normal noise.
            spk_emb: ``[B, spk_emb_dim]`` or ``None``.

        Returns:
            Scalar float32 loss.
        """
        self._ensure_built()
        mask, mu, t = _f32(mask), _f32(mu), _f32(t)
        xt, z = self.forward_diffusion(x0, mask, mu, t, z)
        time = t[:, None, None]  # [B, 1, 1]
        cum_noise = get_noise(time, self.beta_min, self.beta_max, cumulative=True)
        noise_estimation = self._estimate(xt, mask, mu, t, spk_emb)
        noise_estimation = noise_estimation * ops.sqrt(1.0 - ops.exp(-cum_noise))
        return ops.sum(ops.square(noise_estimation + z)) / (ops.sum(mask) * self.n_feats)

    def compute_loss(self, x0, mask, mu, spk_emb=None, offset: float = 1e-5, seed=None):
        """Diffusion loss with random ``t ~ U(offset, 1 - offset)`` and ``z ~ N(0, I)``.

        Args:
            x0: ``[B, T, n_feats]`` clean mel.
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            spk_emb: ``[B, spk_emb_dim]`` or ``None``.
            offset: Keeps ``t`` away from 0 and 1.
            seed: ``None`` (the layer's ``SeedGenerator``), a ``SeedGenerator``, or an int
                (``t`` drawn with ``seed``, ``z`` with ``seed + 1``: stateless, repeatable).

        Returns:
            Scalar float32 loss.
        """
        x0 = _f32(x0)
        if seed is None:
            seed = self.seed_generator
        seed_t, seed_z = (seed, seed + 1) if isinstance(seed, int) else (seed, seed)
        shape = ops.shape(x0)
        # Official: torch.rand then clamp, i.e. clip a U(0, 1) draw.
        t = keras.random.uniform((shape[0],), 0.0, 1.0, dtype="float32", seed=seed_t)
        t = ops.clip(t, offset, 1.0 - offset)
        z = keras.random.normal(shape, dtype="float32", seed=seed_z)
        return self.loss_t(x0, mask, mu, t, z, spk_emb=spk_emb)

    def reverse_diffusion(
        self,
        z,
        mask,
        mu,
        n_timesteps: int,
        stoc: bool = False,
        spk_emb=None,
        noise=None,
        solver: str = "euler",
    ):
        """Solves the reverse diffusion from ``t = 1`` to 0 with a named solver.

        ``euler`` is the official sampler, computed as the official code does
        (bit-for-bit): step ``i`` uses ``t_i = 1 - (i + 0.5) h``, ``h = 1 /
        n_timesteps``, and follows the probability-flow ODE ``x -= 0.5 (mu - x - s)
        beta_t h``; ``euler-sde`` (or ``stoc=True``) the reverse SDE ``x -= (0.5 (mu -
        x) - s) beta_t h + sqrt(beta_t h) eps``. The other solvers run their
        `gradtts_tf.solvers.SolverPlan`. Runs as a ``while`` loop (constant graph
        size in ``n_timesteps``).

        Args:
            z: ``[B, T, n_feats]`` start sample (``mu + eps / temperature`` at synthesis).
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            n_timesteps: Number of estimator calls (Python int >= 1).
            stoc: The official stochastic sampler (``solver="euler-sde"``).
            spk_emb: ``[B, spk_emb_dim]`` or ``None``.
            noise: ``[n_timesteps, B, T, n_feats]`` standard normal draws for a
                stochastic solver; ``None`` draws them from the layer's
                ``SeedGenerator``. Ignored by the ODE solvers.
            solver: One of `gradtts_tf.solvers.SOLVERS`.

        Returns:
            ``[B, T, n_feats]`` float32, masked.
        """
        n_timesteps = int(n_timesteps)
        if n_timesteps < 1:
            raise ValueError(f"reverse_diffusion: n_timesteps must be >= 1, got {n_timesteps}")
        check_solver(solver)
        if stoc:
            if solver not in ("euler", "euler-sde"):
                raise ValueError(f"stoc=True is the euler-sde solver; got solver={solver!r}")
            solver = "euler-sde"
        plan = solver_plan(solver, n_timesteps, self.beta_min, self.beta_max)
        if solver not in ("euler", "euler-sde"):
            return self.sample(plan, z, mask, mu, spk_emb=spk_emb, noise=noise)
        stoc = plan.stochastic
        self._ensure_built()
        z, mask, mu = _f32(z), _f32(mask), _f32(mu)
        h = 1.0 / n_timesteps
        # Times in float64 Python arithmetic, then rounded once, as the official code.
        times = ops.convert_to_tensor(
            [1.0 - (i + 0.5) * h for i in range(n_timesteps)], dtype="float32"
        )  # [n_timesteps]
        ones = ops.ones((ops.shape(z)[0],), dtype="float32")  # [B]
        if stoc:
            if noise is None:
                noise = keras.random.normal(
                    (n_timesteps, *ops.shape(z)), dtype="float32", seed=self.seed_generator
                )  # [n_timesteps, B, T, n_feats]
            noise = _f32(noise)

        def step(i, xt):
            return self.reverse_step(
                xt, mask, mu, times[i] * ones, h, spk_emb, noise[i] if stoc else None
            )

        return ops.fori_loop(0, n_timesteps, step, z * mask)

    def sample(self, plan: SolverPlan, z, mask, mu, spk_emb=None, noise=None):
        """Runs a solver's plan with the estimator (see `gradtts_tf.solvers`).

        Args:
            plan: A `gradtts_tf.solvers.SolverPlan` (from ``solver_plan``).
            z: ``[B, T, n_feats]`` start sample.
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            spk_emb: ``[B, spk_emb_dim]`` or ``None``.
            noise: ``[steps, B, T, n_feats]`` draws for a stochastic plan; ``None``
                draws them from the layer's ``SeedGenerator``.

        Returns:
            ``[B, T, n_feats]`` float32, masked.
        """
        self._ensure_built()
        z, mask, mu = _f32(z), _f32(mask), _f32(mu)
        if plan.stochastic:
            if noise is None:
                noise = keras.random.normal(
                    (plan.steps, *ops.shape(z)), dtype="float32", seed=self.seed_generator
                )  # [steps, B, T, n_feats]
            noise = _f32(noise)
        return solve(
            lambda xt, t: self._estimate(xt, mask, mu, t, spk_emb), plan, z, mask, mu, noise
        )

    def solver_step(self, xt, mask, mu, t, coef, x0_prev, noise, spk_emb=None):
        """One solver step from the estimator at ``(xt, t)``: the exported graphs' unit.

        Args:
            xt: ``[B, T, n_feats]`` current sample.
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            t: ``[B]`` the step's estimator time.
            coef: ``[6]`` the step's coefficients (`gradtts_tf.solvers.SolverPlan`).
            x0_prev: ``[B, T, n_feats]`` the previous step's data prediction (any
                value when ``coef[2]`` is 0).
            noise: ``[B, T, n_feats]`` standard normal draw (any value when ``coef[3]``
                is 0).
            spk_emb: ``[B, spk_emb_dim]`` or ``None``.

        Returns:
            ``(x_next, x0)``, both ``[B, T, n_feats]`` float32 and masked.
        """
        xt, mask, mu, t = _f32(xt), _f32(mask), _f32(mu), _f32(t)
        score = self._estimate(xt, mask, mu, t, spk_emb)
        return solver_step(score, xt, mask, mu, _f32(coef), _f32(x0_prev), _f32(noise))

    def reverse_step(self, xt, mask, mu, t, h, spk_emb=None, noise=None):
        """One Euler(-Maruyama) step of the reverse diffusion, from ``t`` to ``t - h``.

        The unit that `reverse_diffusion` loops over and that exported graphs run
        once per host-loop iteration.

        Args:
            xt: ``[B, T, n_feats]`` current sample.
            mask: ``[B, T, 1]``.
            mu: ``[B, T, n_feats]``.
            t: ``[B]`` time of each item (midpoint of the step).
            h: Step size (Python float or scalar tensor).
            spk_emb: ``[B, spk_emb_dim]`` or ``None``.
            noise: ``[B, T, n_feats]`` standard normal draw for the stochastic
                sampler; ``None`` gives the probability-flow ODE step.

        Returns:
            ``[B, T, n_feats]`` float32, masked.
        """
        xt, mask, mu, t = _f32(xt), _f32(mask), _f32(mu), _f32(t)
        noise_t = get_noise(t, self.beta_min, self.beta_max, cumulative=False)[:, None, None]
        score = self._estimate(xt, mask, mu, t, spk_emb)
        if noise is not None:
            dxt_det = (0.5 * (mu - xt) - score) * noise_t * h
            dxt = dxt_det + _f32(noise) * ops.sqrt(noise_t * h)
        else:
            dxt = 0.5 * (mu - xt - score) * noise_t * h
        return (xt - dxt) * mask

    def call(self, z, mask, mu, n_timesteps: int = 10, stoc: bool = False, spk_emb=None,
             solver: str = "euler"):
        """Runs ``reverse_diffusion`` (official ``Diffusion.forward``); see there."""
        return self.reverse_diffusion(
            z, mask, mu, n_timesteps, stoc=stoc, spk_emb=spk_emb, solver=solver
        )

    def compute_output_shape(self, z_shape, *args, **kwargs):
        return tuple(z_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_feats": self.n_feats,
                "dim": self.dim,
                "n_spks": self.n_spks,
                "spk_emb_dim": self.spk_emb_dim,
                "beta_min": self.beta_min,
                "beta_max": self.beta_max,
                "pe_scale": self.pe_scale,
                "seed": self.seed,
            }
        )
        return config
