// Loads a TF.js export in node and runs only its `encoder` graph on given token ids, for
// the length tests (y_lengths at fractional length scales).
// Usage: node tests/node_encode.mjs REQUEST.json
// REQUEST: {"model_dir", "out_dir", "cases": [{"ids": [...], "length_scale": 0.91}, ...],
//           "backend": "wasm" (default) or "cpu"}
// Writes OUT/mu_<i>.f32 (mu_y of case i, [1, T_y, n_feats] row-major) and
// OUT/encode.json: {"backend", "cases": [{"y_length", "frames", "mask_sum"}, ...]}.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { GradTTSWeb, tf } from '../src/synth.js';

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const fsReader = (dir) => ({
  json: async (p) => JSON.parse(readFileSync(join(dir, p), 'utf8')),
  bytes: async (p) => {
    const b = readFileSync(join(dir, p));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  },
});

await tf.setBackend(request.backend || 'wasm');
const tts = await GradTTSWeb.load(fsReader(request.model_dir));
const cases = [];
for (const [i, c] of request.cases.entries()) {
  // The app's own encoder call: ids and a float32 length_scale scalar.
  const { mu, mask, yLength, frames } = await tts.encode(c.ids, c.length_scale, 0);
  const muData = await mu.data();
  const maskTotal = mask.sum();
  const maskSum = (await maskTotal.data())[0];
  maskTotal.dispose();
  writeFileSync(join(request.out_dir, `mu_${i}.f32`),
    Buffer.from(muData.buffer, muData.byteOffset, muData.byteLength));
  mu.dispose();
  mask.dispose();
  cases.push({ y_length: yLength, frames, mask_sum: maskSum });
}
writeFileSync(join(request.out_dir, 'encode.json'),
  JSON.stringify({ backend: tf.getBackend(), cases }));
