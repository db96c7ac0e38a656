// Writes the page's noise draws (src/prng.js) as raw float32, for the parity test with
// gradtts_tf/noise.py.
// Usage: node tests/node_noise.mjs REQUEST.json
// REQUEST: {"out": "noise.f32", "seed", "steps", "frames", "padded_frames", "n_feats",
//           "pos"}: every step's stepNoise [steps, padded_frames, n_feats], then
//           pieceNoise [padded_frames, n_feats].
import { readFileSync, writeFileSync } from 'node:fs';

import { pieceNoise, stepNoise } from '../src/prng.js';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const size = r.padded_frames * r.n_feats;
const out = new Float32Array((r.steps + 1) * size);
for (let i = 0; i < r.steps; i += 1) {
  out.set(stepNoise(r.seed, i, r.frames, r.padded_frames, r.n_feats, r.pos), i * size);
}
out.set(pieceNoise(r.seed, r.frames, r.padded_frames, r.n_feats, r.pos), r.steps * size);
writeFileSync(r.out, Buffer.from(out.buffer));
