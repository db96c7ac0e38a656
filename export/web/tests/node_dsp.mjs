// Griffin-Lim and WAV encoding in node, for the parity tests.
// Usage: node tests/node_dsp.mjs REQUEST.json
// REQUEST: {"mel": "mel.f32" (row-major [frames, n_mels]), "n_mels", "inv_mel_basis": path,
//           "n_fft", "hop_length", "win_length", "n_iter", "momentum",
//           "audio": "audio.f32", "sample_rate", "out_dir"}
// Writes OUT/gl.f32 (Griffin-Lim waveform) and OUT/js.wav (WAV of "audio").
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { GriffinLim } from '../src/griffinlim.js';
import { encodeWav } from '../src/wav.js';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const readF32 = (path) => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const mel = readF32(r.mel);
const gl = new GriffinLim({
  invMelBasis: readF32(r.inv_mel_basis), nMels: r.n_mels, nFft: r.n_fft,
  hopLength: r.hop_length, winLength: r.win_length, nIter: r.n_iter, momentum: r.momentum,
});
const start = performance.now();
const audio = await gl.run(mel, mel.length / r.n_mels);
const seconds = (performance.now() - start) / 1000;
writeFileSync(join(r.out_dir, 'gl.f32'), Buffer.from(audio.buffer));
writeFileSync(join(r.out_dir, 'js.wav'), Buffer.from(encodeWav(readF32(r.audio), r.sample_rate)));
process.stdout.write(JSON.stringify({ griffin_lim_seconds: seconds }));
