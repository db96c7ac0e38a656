// Prints the solver plans of src/solvers.js as JSON, for the parity test with
// gradtts_tf/solvers.py (tests/export/test_web.py).
// Usage: node tests/node_solvers.mjs REQUEST.json
// REQUEST: {"schedules": [[beta_min, beta_max], ...], "steps": [1, 2, ...],
//           "times": [[t_0, ..., t_steps], ...] (explicit grids for the solvers that
//           take one; each with the step count it implies),
//           "errors": [[solver, steps, times or null], ...] (calls expected to throw)}
// Prints {"solvers", "stochastic", "default", "plans": [{beta_min, beta_max, solver,
// steps, given_times, times, coefs, stochastic}], "grids": [{solver, steps, times}],
// "errors": [message or null per request]}.
import { readFileSync } from 'node:fs';

import {
  DEFAULT_SOLVER, SOLVERS, STOCHASTIC_SOLVERS, solverPlan, timeGrid,
} from '../src/solvers.js';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = {
  solvers: SOLVERS, stochastic: STOCHASTIC_SOLVERS, default: DEFAULT_SOLVER, plans: [], grids: [],
};
const GRID_SOLVERS = ['dpmpp-2m', 'ml-sde'];
for (const steps of r.steps) {
  for (const solver of GRID_SOLVERS) out.grids.push({ solver, steps, times: timeGrid(solver, steps) });
}
for (const [betaMin, betaMax] of r.schedules) {
  for (const steps of r.steps) {
    for (const solver of SOLVERS) {
      out.plans.push({ beta_min: betaMin, beta_max: betaMax, given_times: null,
        ...solverPlan(solver, steps, betaMin, betaMax) });
    }
  }
  for (const times of r.times || []) {
    for (const solver of GRID_SOLVERS) {
      out.plans.push({ beta_min: betaMin, beta_max: betaMax, given_times: times,
        ...solverPlan(solver, times.length - 1, betaMin, betaMax, times) });
    }
  }
}
out.errors = (r.errors || []).map(([solver, steps, times]) => {
  try {
    solverPlan(solver, steps, 0.05, 20, times);
    return null;
  } catch (err) {
    return `${err.name}: ${err.message}`;
  }
});
process.stdout.write(JSON.stringify(out));
