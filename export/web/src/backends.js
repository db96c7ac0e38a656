// TF.js backends for the page: which ones this browser can run (WebGPU, WebGL, WASM,
// CPU), and the fastest of them, chosen by timing a few `decoder_step` calls (the
// diffusion's cost) on each. The WASM backend uses SIMD and, when the page is
// cross-origin isolated (COOP/COEP headers, as `python -m export.web` sends), threads.

import '@tensorflow/tfjs-backend-webgpu'; // registers "webgpu" where navigator.gpu exists
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

import { standardNormal } from './prng.js';
import { solverPlan } from './solvers.js';
import { checkDecoderStep, loadGraph, now, run, tf } from './synth.js';

/** Every backend the page can run on. */
export const BACKENDS = Object.freeze(['webgpu', 'webgl', 'wasm', 'cpu']);
/**
 * The ones the automatic choice measures, in order (the plain JS "cpu" is always slower
 * than WASM; WASM first gives the others a time to beat).
 */
export const MEASURED_BACKENDS = Object.freeze(['wasm', 'webgl', 'webgpu']);

// GPUs emulated on the CPU (Chromium's SwiftShader, Mesa's llvmpipe): slower than WASM
// on the same CPU, so the automatic choice skips them unless asked to measure them.
const SOFTWARE_GPU = /swiftshader|llvmpipe|softpipe|software/i;

/**
 * Sets the WASM backend's thread count (XNNPACK's pool, the calling thread included),
 * before the backend first initialises. TF.js caps it at half the logical cores
 * (navigator.hardwareConcurrency / 2, at least 1), which is also its default: one
 * thread on a 2-core machine. Threads need a cross-origin isolated page.
 */
export function setWasmThreads(threads) {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`WASM threads must be an integer >= 1, got ${threads}: use ?threads=N with N >= 1`);
  }
  setThreadsCount(threads);
}

/**
 * An `io` reader (see synth.js httpReader) that keeps what it read, so measuring the
 * backends and loading the model fetch each file once. `clear()` drops the copies.
 */
export function cachingReader(io) {
  const cache = new Map();
  const memo = (kind) => (path) => {
    const key = `${kind}:${path}`;
    if (!cache.has(key)) cache.set(key, io[kind](path));
    return cache.get(key);
  };
  return { json: memo('json'), bytes: memo('bytes'), clear: () => cache.clear() };
}

/** What runs the current backend: SIMD and threads for WASM, the GPU for the others. */
export async function backendDetails(name) {
  if (name === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threadsSupported = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    return {
      simd: Boolean(simd), threads: getThreadsCount(), threadsSupported: Boolean(threadsSupported),
      crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
      summary: `${simd ? 'SIMD' : 'no SIMD'}, ${getThreadsCount()} thread${getThreadsCount() === 1 ? '' : 's'}` +
        (threadsSupported
          ? ` (TF.js: at most half the ${(globalThis.navigator || {}).hardwareConcurrency} logical cores)`
          : ' (threads need a cross-origin isolated page)'),
    };
  }
  if (name === 'webgl') {
    const backend = tf.backend();
    let renderer = '';
    try {
      const { gl } = backend.gpgpu;
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      renderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    } catch (err) {
      renderer = 'unknown GPU';
    }
    const float32 = tf.env().getBool('WEBGL_RENDER_FLOAT32_CAPABLE');
    return {
      version: tf.env().getNumber('WEBGL_VERSION'), float32, renderer,
      summary: `WebGL ${tf.env().getNumber('WEBGL_VERSION')}, ${float32 ? 'float32' : 'float16'} textures, ${renderer}`,
    };
  }
  if (name === 'webgpu') {
    const info = tf.backend().adapterInfo || {};
    const gpu = [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown GPU';
    return { vendor: info.vendor || '', architecture: info.architecture || '', summary: gpu };
  }
  return { summary: 'plain JavaScript' };
}

/**
 * Makes `name` the TF.js backend if this browser can run the page on it.
 *
 * @param {string} name One of BACKENDS.
 * @param {{allowFloat16?: boolean}} [options] Accept WebGL without float32 textures.
 * @returns {Promise<{ok: boolean, reason?: string}>} `reason` says why not.
 */
export async function trySetBackend(name, { allowFloat16 = false } = {}) {
  if (!BACKENDS.includes(name)) {
    return { ok: false, reason: `"${name}" is not a backend of this page (${BACKENDS.join(', ')})` };
  }
  if (name === 'webgpu') {
    if (!globalThis.navigator || !navigator.gpu) {
      return { ok: false, reason: 'this browser has no WebGPU (navigator.gpu; it needs https or localhost)' };
    }
    let adapter = null;
    try {
      adapter = await navigator.gpu.requestAdapter();
    } catch (err) {
      return { ok: false, reason: `WebGPU adapter request failed: ${err.message || err}` };
    }
    if (!adapter) return { ok: false, reason: 'WebGPU offers no adapter here (no usable GPU, or WebGPU is disabled)' };
  }
  try {
    if (!(await tf.setBackend(name))) return { ok: false, reason: 'TF.js could not initialise it' };
    await tf.ready();
  } catch (err) {
    return { ok: false, reason: `TF.js could not initialise it: ${err.message || err}` };
  }
  if (name === 'webgl') {
    if (!allowFloat16 && !tf.env().getBool('WEBGL_RENDER_FLOAT32_CAPABLE')) {
      return { ok: false, reason: 'the GPU cannot render float32 textures (float16 is too coarse for the diffusion)' };
    }
  }
  return { ok: true };
}

/** Why the current (GPU) backend is a software emulation, or null. */
async function softwareGpu(name) {
  if (name === 'webgl' || name === 'webgpu') {
    const { summary } = await backendDetails(name);
    if (SOFTWARE_GPU.test(summary)) {
      return `a software GPU (${summary}): slower than WASM on the same CPU`;
    }
  }
  return null;
}

/**
 * Times `decoder_step` on the current backend: one untimed call (shader compilation,
 * weight upload), then `calls` timed calls, each until its output is read back.
 *
 * @param {object} io Reader of the export folder.
 * @param {object} info model_info.json.
 * @param {{frames?: number, calls?: number, beat?: number}} [options] `beat`: stop
 *     after the first timed call if it takes longer (ms).
 * @returns {Promise<{backend: string, frames: number, firstMs: number, stepMs: number,
 *     callsMs: number[], loadMs: number}>} `stepMs`: the median timed call.
 */
export async function measureDecoderStep(io, info, { frames = 64, calls = 2, beat = Infinity } = {}) {
  const backend = tf.getBackend();
  const loadStart = now();
  const { model, signature } = await loadGraph(io, info.tfjs.graphs.decoder_step);
  checkDecoderStep(signature);
  const loadMs = now() - loadStart;
  const nFeats = info.model.n_feats;
  const shape = [1, frames, nFeats];
  const plan = solverPlan('euler', 2, info.model.beta_min, info.model.beta_max);
  const inputs = {
    xt: tf.tensor3d(standardNormal(0, frames * nFeats), shape),
    mask: tf.ones([1, frames, 1]),
    mu: tf.zeros(shape),
    t: tf.tensor1d([plan.times[0]], 'float32'),
    coef: tf.tensor1d(plan.coefs[0], 'float32'),
    x0_prev: tf.zeros(shape),
    noise: tf.zeros(shape),
  };
  if (info.model.n_spks > 1) inputs.spk = tf.tensor1d([0], 'int32');
  const times = [];
  try {
    for (let k = 0; k <= calls; k += 1) {
      const start = now();
      const outputs = await run(model, inputs, ['xt_next', 'x0']);
      await outputs[0].data();
      times.push(now() - start);
      outputs.forEach((x) => x.dispose());
      if (k === 1 && times[1] > beat) break;
    }
  } finally {
    Object.values(inputs).forEach((x) => x.dispose());
    model.dispose();
  }
  const timed = times.slice(1).sort((a, b) => a - b);
  const mid = timed.length >> 1;
  const stepMs = timed.length % 2 ? timed[mid] : 0.5 * (timed[mid - 1] + timed[mid]);
  return { backend, frames, firstMs: times[0], stepMs, callsMs: times.slice(1), loadMs };
}

/**
 * Picks the backend: `wanted` if given and available, else the fastest measured one.
 *
 * @param {object} io Reader of the export folder (a cachingReader avoids fetching twice).
 * @param {object} info model_info.json.
 * @param {object} [options]
 * @param {string|null} [options.wanted] A backend name, or null / "auto" to measure.
 * @param {string[]|null} [options.candidates] The backends to measure (default
 *     MEASURED_BACKENDS, software GPUs skipped; named here, they are measured).
 * @param {number} [options.frames=64] Mel frames of the measured calls.
 * @param {number} [options.calls=2] Timed calls per backend.
 * @param {(message: string) => void} [options.onProgress]
 * @returns {Promise<{backend: string, mode: string, measurements: object[],
 *     unavailable: Object<string, string>, skipped: Object<string, string>,
 *     details: object, wanted: string|null, measureSeconds: number}>} `mode`: "chosen"
 *     (as asked), "measured" (fastest), "only" (one backend to choose from) or
 *     "fallback" (`wanted` unavailable, then measured). A measured backend whose first
 *     timed call takes over twice the best one's stops there (it cannot win).
 */
export async function chooseBackend(io, info, {
  wanted = null, candidates = null, frames = 64, calls = 2, onProgress = () => {},
} = {}) {
  const start = now();
  const unavailable = {};
  const skipped = {};
  for (const name of candidates || []) {
    if (!BACKENDS.includes(name)) {
      throw new RangeError(`backend candidates: "${name}" is not one of ${BACKENDS.join(', ')}`);
    }
  }
  const asked = wanted && wanted !== 'auto' ? wanted : null;
  if (asked) {
    const probe = await trySetBackend(asked, { allowFloat16: true });
    if (probe.ok) {
      return {
        backend: asked, mode: 'chosen', measurements: [], unavailable, skipped, wanted: asked,
        details: await backendDetails(asked), measureSeconds: 0,
      };
    }
    unavailable[asked] = probe.reason;
  }
  const available = [];
  for (const name of candidates || MEASURED_BACKENDS) {
    if (name in unavailable) continue;
    const probe = await trySetBackend(name);
    if (!probe.ok) {
      unavailable[name] = probe.reason;
      continue;
    }
    const software = candidates ? null : await softwareGpu(name);
    if (software) skipped[name] = software;
    else available.push(name);
  }
  if (!available.length) {
    const probe = await trySetBackend('cpu');
    if (!probe.ok) {
      throw new Error(`no TF.js backend runs here: ${Object.entries(unavailable)
        .map(([k, v]) => `${k}: ${v}`).join('; ')}`);
    }
    available.push('cpu');
  }
  const measurements = [];
  if (available.length > 1) {
    for (const name of available) {
      onProgress(`Measuring the ${name} backend…`);
      await trySetBackend(name);
      const toBeat = 2 * Math.min(...measurements.map((m) => m.stepMs));
      try {
        measurements.push(await measureDecoderStep(io, info, { frames, calls, beat: toBeat }));
      } catch (err) {
        unavailable[name] = `decoder_step failed: ${err.message || err}`;
        console.warn(`TF.js backend ${name} failed the measurement:`, err);
      }
    }
  }
  const best = measurements.length
    ? measurements.reduce((a, b) => (b.stepMs < a.stepMs ? b : a)).backend
    : available.find((name) => !(name in unavailable)) || available[0];
  await trySetBackend(best, { allowFloat16: true });
  let mode = measurements.length ? 'measured' : 'only';
  if (asked) mode = 'fallback';
  return {
    backend: best, mode, measurements, unavailable, skipped, wanted: asked,
    details: await backendDetails(best), measureSeconds: (now() - start) / 1000,
  };
}

/**
 * Where the encoder graph runs when the page runs on `backend`: WebGPU reads tensor
 * values synchronously (the encoder's shape computations need them) through a canvas,
 * which fails in some browsers (headless Chromium), so a WebGPU page runs the encoder
 * on WASM (else CPU): one call per sentence, the diffusion stays on the GPU. Null for
 * the other backends. Leaves `backend` the current one.
 */
export async function encoderBackendFor(backend) {
  if (backend !== 'webgpu') return null;
  const helper = (await trySetBackend('wasm')).ok ? 'wasm' : 'cpu';
  if (helper === 'cpu') await trySetBackend('cpu');
  await trySetBackend(backend);
  return helper;
}
