// The reverse-diffusion solvers of gradtts_tf/solvers.py, as per-step coefficient plans,
// computed in float64 exactly as the Python does (tests/export/test_web.py compares the
// two for every solver and step count). Every step of every solver is one call of the
// exported `decoder_step` graph:
//
//     y = x - mu, s = estimator(x, t)
//     y0     = e * y + f * s                       (data prediction at t)
//     y_next = a * y + b * s + c * y0_prev + d * noise
//
// so a plan is, per step, the estimator time `t` and the coefficients (a, b, c, d, e, f).
// The derivations are in the Python module's docstring.

export const SOLVERS = Object.freeze(['euler', 'euler-sde', 'dpmpp-2m', 'ml-sde']);
export const STOCHASTIC_SOLVERS = Object.freeze(['euler-sde', 'ml-sde']);
export const DEFAULT_SOLVER = 'euler';
export const N_COEFS = 6;

/** Returns `solver` if it is one of SOLVERS, else throws a RangeError naming them. */
export function checkSolver(solver) {
  if (!SOLVERS.includes(solver)) {
    throw new RangeError(`solver: expected one of ${SOLVERS.join(', ')}, got ${JSON.stringify(solver)}`);
  }
  return solver;
}

/** The linear noise schedule: beta_t and its integral, float64. */
export class Schedule {
  constructor(betaMin, betaMax) {
    this.betaMin = Number(betaMin);
    this.betaMax = Number(betaMax);
  }

  beta(t) {
    return this.betaMin + (this.betaMax - this.betaMin) * t;
  }

  cum(t) {
    return this.betaMin * t + 0.5 * (this.betaMax - this.betaMin) * t * t;
  }

  alpha(t) {
    return Math.exp(-0.5 * this.cum(t));
  }

  /** sigma_t^2 = 1 - alpha_t^2, accurate near t = 0. */
  variance(t) {
    return -Math.expm1(-this.cum(t));
  }

  /** [e, f] of y0 = e y + f s at time t. */
  dataPrediction(t) {
    const alpha = this.alpha(t);
    return [1.0 / alpha, this.variance(t) / alpha];
  }

  /** lambda_t = log(alpha_t / sigma_t); Infinity at t = 0. */
  logSnr(t) {
    if (t <= 0.0) return Infinity;
    return -0.5 * this.cum(t) - 0.5 * Math.log(this.variance(t));
  }
}

function euler(sch, steps, stochastic) {
  const h = 1.0 / steps;
  const times = [];
  const coefs = [];
  for (let i = 0; i < steps; i += 1) {
    const t = 1.0 - (i + 0.5) * h; // official midpoint times
    const bh = sch.beta(t) * h;
    const step = stochastic
      ? [1.0 + 0.5 * bh, bh, 0.0, -Math.sqrt(bh)]
      : [1.0 + 0.5 * bh, 0.5 * bh, 0.0, 0.0];
    times.push(t);
    coefs.push([...step, ...sch.dataPrediction(t)]);
  }
  return { times, coefs };
}

function dpmpp2m(sch, grid) {
  const times = [];
  const coefs = [];
  for (let i = 0; i < grid.length - 1; i += 1) {
    const t = grid[i];
    const s = grid[i + 1];
    const [e, f] = sch.dataPrediction(t);
    let a;
    let b;
    let c;
    if (s <= 0.0) {
      // Infinite log-SNR step: x_0 is the data prediction itself.
      [a, b, c] = [e, f, 0.0];
    } else {
      const lamStep = sch.logSnr(s) - sch.logSnr(t);
      const ratio = Math.sqrt(sch.variance(s) / sch.variance(t)); // sigma_s / sigma_t
      const weight = -sch.alpha(s) * Math.expm1(-lamStep); // alpha_s (1 - e^-h)
      let k;
      if (i === 0) {
        [k, c] = [1.0, 0.0];
      } else {
        const r = (sch.logSnr(t) - sch.logSnr(grid[i - 1])) / lamStep;
        [k, c] = [1.0 + 0.5 / r, -weight * 0.5 / r];
      }
      [a, b] = [ratio + weight * k * e, weight * k * f];
    }
    times.push(t);
    coefs.push([a, b, c, 0.0, e, f]);
  }
  return { times, coefs };
}

function mlSde(sch, grid) {
  const times = [];
  const coefs = [];
  for (let i = 0; i < grid.length - 1; i += 1) {
    const t = grid[i];
    const s = grid[i + 1];
    const [e, f] = sch.dataPrediction(t);
    // Forward-process posterior q(y_s | y_t, y_0) = N(meanY y_t + mean0 y_0, var).
    const gamma2 = Math.exp(-(sch.cum(t) - sch.cum(s))); // (alpha_t / alpha_s)^2
    const varT = sch.variance(t);
    const varS = sch.variance(s);
    const meanY = (Math.sqrt(gamma2) * varS) / varT;
    const mean0 = (sch.alpha(s) * (1.0 - gamma2)) / varT;
    const std = Math.sqrt((varS * (1.0 - gamma2)) / varT);
    times.push(t);
    coefs.push([meanY + mean0 * e, mean0 * f, 0.0, std, e, f]);
  }
  return { times, coefs };
}

/**
 * The `steps + 1` times, from the start to 0, of dpmpp-2m and ml-sde (=
 * gradtts_tf.solvers.time_grid): ml-sde the official uniform grid t_i = 1 - i h
 * (h = 1 / steps); dpmpp-2m the same grid started a quarter step lower,
 * t_i = (1 - h / 4)(1 - i h) (the Python docstring says why).
 *
 * @param {string} solver
 * @param {number} steps
 * @returns {number[]}
 */
export function timeGrid(solver, steps) {
  const h = 1.0 / steps;
  const start = solver === 'dpmpp-2m' ? 1.0 - 0.25 * h : 1.0;
  const grid = [];
  for (let i = 0; i < steps; i += 1) grid.push(start * (1.0 - i * h));
  grid.push(0.0);
  return grid;
}

/**
 * The evaluation times and step coefficients of `solver` at `steps` steps
 * (= gradtts_tf.solvers.solver_plan).
 *
 * @param {string} solver One of SOLVERS.
 * @param {number} steps Number of estimator calls (an integer >= 1).
 * @param {number} betaMin Noise schedule at t = 0 (model_info.json model.beta_min).
 * @param {number} betaMax Noise schedule at t = 1.
 * @param {number[]|null} [times] dpmpp-2m and ml-sde only: `steps + 1` decreasing
 *     times in (0, 1] then >= 0 to run over instead of timeGrid.
 * @returns {{solver: string, steps: number, times: number[], coefs: number[][],
 *     stochastic: boolean}} float64 values; the graph takes them rounded to float32.
 */
export function solverPlan(solver, steps, betaMin, betaMax, times = null) {
  checkSolver(solver);
  if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps: expected an integer >= 1, got ${JSON.stringify(steps)}`);
  }
  const sch = new Schedule(betaMin, betaMax);
  let plan;
  if (solver === 'euler' || solver === 'euler-sde') {
    if (times != null) throw new RangeError(`times: ${solver} runs on the official midpoint grid only`);
    plan = euler(sch, steps, solver === 'euler-sde');
  } else {
    let grid;
    if (times == null) {
      grid = timeGrid(solver, steps);
    } else {
      grid = Array.from(times, Number);
      const decreasing = grid.every((t, i) => i === 0 || (grid[i - 1] > t && t >= 0.0));
      if (grid.length !== steps + 1 || !decreasing || grid[0] > 1.0) {
        throw new RangeError(`times: expected ${steps + 1} decreasing times in [0, 1], got ${JSON.stringify(times)}`);
      }
    }
    plan = solver === 'dpmpp-2m' ? dpmpp2m(sch, grid) : mlSde(sch, grid);
  }
  return {
    solver, steps: plan.times.length, times: plan.times, coefs: plan.coefs,
    stochastic: STOCHASTIC_SOLVERS.includes(solver),
  };
}
