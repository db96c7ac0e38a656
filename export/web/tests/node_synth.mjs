// Runs the TF.js pipeline in node (CPU backend) on an export folder, for the parity tests.
// Usage: node tests/node_synth.mjs REQUEST.json
// REQUEST: {"model_dir", "out_dir", "text", "steps", "temperature", "length_scale",
//           "solver" (optional: the export's default),
//           "noise": "noise.f32" (raw float32) or null (then "seed", default 0, draws it),
//           "vocoders": ["graph", "griffin_lim"],
//           "wav_of": "samples.f32" (optional: also encode this waveform as WAV)}
// Writes OUT/mel.f32, OUT/audio_<vocoder>.f32, OUT/result.json (ids, frames, timings, load).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { GradTTSWeb, tf } from '../src/synth.js';
import { encodeWav } from '../src/wav.js';

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const fsReader = (dir) => ({
  json: async (p) => JSON.parse(readFileSync(join(dir, p), 'utf8')),
  bytes: async (p) => {
    const b = readFileSync(join(dir, p));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  },
});
const readF32 = (path) => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const writeF32 = (path, arr) => writeFileSync(path, Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));

await tf.setBackend(request.backend || 'wasm');
const tts = await GradTTSWeb.load(fsReader(request.model_dir));
const noise = request.noise ? readF32(request.noise) : null;
const result = { load: tts.stats, runs: {} };
for (const vocoder of request.vocoders) {
  const r = await tts.synthesize({
    text: request.text, steps: request.steps, temperature: request.temperature,
    lengthScale: request.length_scale, noise, seed: request.seed ?? 0, vocoder,
    solver: request.solver ?? null,
  });
  writeF32(join(request.out_dir, 'mel.f32'), r.mel);
  writeF32(join(request.out_dir, `audio_${vocoder}.f32`), r.audio);
  result.ids = r.ids;
  result.melFrames = r.melFrames;
  result.paddedFrames = r.paddedFrames;
  result.runs[vocoder] = r.timings;
  result.solver = r.solver;
}
if (request.wav_of) {
  writeFileSync(join(request.out_dir, 'js.wav'), Buffer.from(encodeWav(readF32(request.wav_of), tts.sampleRate)));
}
writeFileSync(join(request.out_dir, 'result.json'), JSON.stringify(result));
