// The portable noise generator of gradtts_tf/noise.py, in JavaScript: the same seed
// gives the same diffusion noise here as in Keras (Synthesizer) and in the LiteRT runner.
// Counter-based: a 32-bit integer hash of (seed, stream, index), then Box-Muller in
// float64, rounded to float32. The algorithm is documented in gradtts_tf/noise.py.

const KEY_SALT = 0x85ebca6b;
const TWO_32 = 4294967296;

/** The 32-bit hash: xor-shifts and wrapping products (unsigned). */
export function mix32(x) {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

function checkU32(name, value) {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_32) {
    throw new RangeError(`noise ${name} must be an integer in [0, 2**32), got ${value}`);
  }
  return value;
}

/**
 * `n` standard normal float32 values from `seed` and `stream` (row-major fill order).
 *
 * @param {number} seed Integer in [0, 2**32).
 * @param {number} n How many values.
 * @param {number} [stream=0] Integer in [0, 2**32): independent draws of one seed.
 * @returns {Float32Array}
 */
export function standardNormal(seed, n, stream = 0) {
  checkU32('seed', seed);
  checkU32('stream', stream);
  const key = mix32((seed ^ mix32((stream ^ KEY_SALT) >>> 0)) >>> 0);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = (mix32((mix32(i) ^ key) >>> 0) + 0.5) / TWO_32; // (0, 1): log stays finite
    const u2 = mix32((mix32(i + 1) ^ key) >>> 0) / TWO_32;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/**
 * The start noise of one sentence: `frames` x `nFeats` values of stream 2 * `pos`,
 * zero-padded to `paddedFrames` (the decoder's padded length).
 *
 * @param {number} seed
 * @param {number} frames The sentence's mel length.
 * @param {number} paddedFrames
 * @param {number} nFeats
 * @param {number} [pos=0] The sentence's position within the utterance.
 * @returns {Float32Array} [paddedFrames * nFeats], row-major [frames, nFeats].
 */
export function pieceNoise(seed, frames, paddedFrames, nFeats, pos = 0) {
  const out = new Float32Array(paddedFrames * nFeats);
  out.set(standardNormal(seed, frames * nFeats, 2 * pos));
  return out;
}
