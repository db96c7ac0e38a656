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

/** The key of (`seed`, `stream`) (step 2 of gradtts_tf/noise.py). */
function streamKey(seed, stream) {
  checkU32('seed', seed);
  checkU32('stream', stream);
  return mix32((seed ^ mix32((stream ^ KEY_SALT) >>> 0)) >>> 0);
}

/**
 * Values `start` .. `start + count - 1` of the stream of `seed` and `stream`: the same
 * numbers as `standardNormal(seed, start + count, stream).subarray(start)`, without
 * drawing the ones before `start`.
 *
 * @param {number} seed Integer in [0, 2**32).
 * @param {number} stream Integer in [0, 2**32).
 * @param {number} start Index of the first value (an integer >= 0).
 * @param {number} count How many values.
 * @returns {Float32Array}
 */
export function standardNormalRange(seed, stream, start, count) {
  if (!Number.isInteger(start) || start < 0) {
    throw new RangeError(`noise start must be an integer >= 0, got ${start}`);
  }
  const key = streamKey(seed, stream);
  const out = new Float32Array(count);
  const end = start + count;
  // Values come in Box-Muller pairs (2j, 2j + 1): start at the pair holding `start`.
  for (let i = start - (start % 2); i < end; i += 2) {
    const u1 = (mix32((mix32(i) ^ key) >>> 0) + 0.5) / TWO_32; // (0, 1): log stays finite
    const u2 = mix32((mix32(i + 1) ^ key) >>> 0) / TWO_32;
    const r = Math.sqrt(-2 * Math.log(u1));
    if (i >= start) out[i - start] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < end && i + 1 >= start) out[i + 1 - start] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
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
  return standardNormalRange(seed, stream, 0, n);
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

/**
 * A stochastic solver's draw for diffusion step `step` of one sentence: values
 * [step * frames * nFeats, (step + 1) * frames * nFeats) of stream 2 * `pos` + 1 (the
 * Python draw `piece_noise(seed, pos, [steps, frames, nFeats], stochastic=True)[step]`),
 * zero-padded to `paddedFrames`.
 *
 * @param {number} seed
 * @param {number} step The diffusion step (0-based).
 * @param {number} frames The sentence's mel length.
 * @param {number} paddedFrames
 * @param {number} nFeats
 * @param {number} [pos=0] The sentence's position within the utterance.
 * @returns {Float32Array} [paddedFrames * nFeats], row-major [frames, nFeats].
 */
export function stepNoise(seed, step, frames, paddedFrames, nFeats, pos = 0) {
  const size = frames * nFeats;
  const out = new Float32Array(paddedFrames * nFeats);
  out.set(standardNormalRange(seed, 2 * pos + 1, step * size, size));
  return out;
}
