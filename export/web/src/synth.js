// Text to speech with the TF.js graphs of `python -m export.tfjs`: the JS text front
// end, the `encoder` graph, the reverse-diffusion host loop over `decoder_step` (any
// solver of solvers.js), and the `vocoder` graph or Griffin-Lim in JS. Works in the
// browser (fetch) and in node (any reader passed as `io`). The host loop is the one
// documented in export/README.md and run by gradtts_tf/export/run_tflite.py.

import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

import { TextFrontend } from './frontend.js';
import { GriffinLim } from './griffinlim.js';
import { pieceNoise, stepNoise } from './prng.js';
import { DEFAULT_SOLVER, checkSolver, solverPlan } from './solvers.js';

export { NothingToSpeakError } from './frontend.js';

/** Reads export files over HTTP, relative to `baseUrl` (a folder URL ending in "/"). */
export function httpReader(baseUrl, fetchFn = globalThis.fetch.bind(globalThis)) {
  const get = async (path) => {
    const response = await fetchFn(new URL(path, baseUrl).href);
    if (!response.ok) throw new Error(`cannot load ${path}: HTTP ${response.status}`);
    return response;
  };
  return {
    json: async (path) => (await get(path)).json(),
    bytes: async (path) => (await get(path)).arrayBuffer(),
  };
}

function concatBuffers(buffers) {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out.buffer;
}

const dirname = (path) => path.slice(0, path.lastIndexOf('/') + 1);

/**
 * Loads one converted graph model through `io` (so node and the browser share the code)
 * onto the current TF.js backend.
 *
 * @returns {Promise<{model: tf.GraphModel, bytes: number, signature: object}>}
 */
export async function loadGraph(io, modelJsonPath) {
  const json = await io.json(modelJsonPath);
  const weightSpecs = [];
  const shards = [];
  for (const group of json.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) shards.push(await io.bytes(dirname(modelJsonPath) + p));
  }
  const weightData = concatBuffers(shards);
  const model = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs,
      weightData,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      signature: json.signature,
      userDefinedMetadata: json.userDefinedMetadata,
      modelInitializer: json.modelInitializer,
    }),
  );
  return { model, bytes: JSON.stringify(json).length + weightData.byteLength, signature: json.signature };
}

// execute() when the graph allows it (no control flow): executeAsync() logs a hint otherwise.
export async function run(model, inputs, outputs) {
  try {
    return model.execute(inputs, outputs);
  } catch (err) {
    if (!/executeAsync/.test(String(err && err.message))) throw err;
    return model.executeAsync(inputs, outputs);
  }
}

export const now = () => (globalThis.performance ? performance.now() : Date.now());

// The decoder_step signature of model_info.json format 2 (every solver's step).
const DECODER_STEP_INPUTS = ['xt', 'mask', 'mu', 't', 'coef', 'x0_prev', 'noise'];
const DECODER_STEP_OUTPUTS = ['xt_next', 'x0'];

/** Throws if a decoder_step signature is not the one the host loop feeds. */
export function checkDecoderStep(signature) {
  const inputs = Object.keys((signature && signature.inputs) || {});
  const outputs = Object.keys((signature && signature.outputs) || {});
  const missing = [
    ...DECODER_STEP_INPUTS.filter((n) => !inputs.includes(n)).map((n) => `input ${n}`),
    ...DECODER_STEP_OUTPUTS.filter((n) => !outputs.includes(n)).map((n) => `output ${n}`),
  ];
  if (missing.length) {
    throw new Error(`the decoder_step graph lacks ${missing.join(', ')} (it has inputs ` +
      `${inputs.join(', ')}; outputs ${outputs.join(', ')}): it was exported for an older ` +
      'host loop; export the voice again with python -m export.tfjs');
  }
}

/** Grad-TTS in TF.js. Create with `await GradTTSWeb.load(io)`. */
export class GradTTSWeb {
  constructor(info, frontend, graphs, griffinLim, stats) {
    this.info = info;
    this.frontend = frontend;
    this.encoder = graphs.encoder;
    this.decoderStep = graphs.decoder_step;
    this.vocoder = graphs.vocoder || null;
    this.griffinLim = griffinLim;
    this.stats = stats;
    this.sampleRate = info.audio.sample_rate;
    this.nFeats = info.model.n_feats;
    this.multiSpeaker = info.model.n_spks > 1;
    this.solvers = info.solvers || [DEFAULT_SOLVER];
    this.defaultSolver = (info.sampling && info.sampling.solver) || DEFAULT_SOLVER;
  }

  /**
   * Loads an export folder onto the current TF.js backend.
   *
   * @param {{json: (p: string) => Promise<any>, bytes: (p: string) => Promise<ArrayBuffer>}} io
   * @param {object} [options]
   * @param {(fraction: number, what: string) => void} [options.onProgress]
   * @param {string|null} [options.encoderBackend] Run the encoder graph on this
   *     (initialised) backend instead: its shape computations read tensor values
   *     synchronously, which WebGPU cannot do everywhere (headless Chromium, for one),
   *     so a WebGPU page runs the encoder on WASM. Its outputs move to the current
   *     backend when the diffusion first reads them.
   */
  static async load(io, { onProgress = () => {}, encoderBackend = null } = {}) {
    const start = now();
    const info = await io.json('model_info.json');
    if (!info.tfjs) throw new Error('model_info.json has no "tfjs" entry: export with python -m export.tfjs');
    if (!info.tfjs.graphs || !info.tfjs.graphs.decoder_step) {
      throw new Error('model_info.json lists no decoder_step graph: export with python -m export.tfjs');
    }
    const graphNames = Object.keys(info.tfjs.graphs);
    const steps = 3 + graphNames.length + 1;
    let done = 1;
    const tick = (what) => onProgress((done += 1) / steps, what);
    onProgress(done / steps, 'model_info.json');
    const files = info.tfjs.frontend;
    const [tables, cmudict, unidecode] = await Promise.all([
      io.json(files.frontend), io.json(files.cmudict), io.json(files.unidecode),
    ]);
    tick('front end');
    let bytes = 0;
    const graphs = {};
    const mainBackend = tf.getBackend();
    const otherEncoder = encoderBackend && encoderBackend !== mainBackend ? encoderBackend : null;
    for (const name of graphNames) {
      const elsewhere = name === 'encoder' && otherEncoder;
      if (elsewhere) await tf.setBackend(otherEncoder);
      let loaded;
      try {
        loaded = await loadGraph(io, info.tfjs.graphs[name]);
      } finally {
        if (elsewhere) await tf.setBackend(mainBackend);
      }
      const { model, bytes: n, signature } = loaded;
      if (name === 'decoder_step') checkDecoderStep(signature);
      graphs[name] = model;
      bytes += n;
      tick(name);
    }
    const gl = info.vocoder.griffin_lim;
    const invMel = new Float32Array(await io.bytes(gl.inv_mel_basis.file));
    tick('Griffin-Lim');
    const a = info.audio;
    const griffinLim = new GriffinLim({
      invMelBasis: invMel, nMels: a.n_mels, nFft: a.n_fft, hopLength: a.hop_length,
      winLength: a.win_length, nIter: gl.n_iter, momentum: gl.momentum,
      melClamp: gl.mel_clamp ?? 20,
    });
    const frontend = new TextFrontend(tables, cmudict, unidecode);
    const stats = {
      loadSeconds: (now() - start) / 1000, graphBytes: bytes, backend: mainBackend,
      encoderBackend: otherEncoder || mainBackend,
    };
    const tts = new GradTTSWeb(info, frontend, graphs, griffinLim, stats);
    tts.encoderBackend = otherEncoder;
    return tts;
  }

  /** Which vocoders this export offers: "graph" (HiFi-GAN) and/or "griffin_lim". */
  get vocoders() {
    return this.vocoder ? ['graph', 'griffin_lim'] : ['griffin_lim'];
  }

  /**
   * Encoder graph: ids -> {mu, mask (tensors, caller disposes), yLength, frames}.
   */
  async encode(ids, lengthScale, speaker) {
    if (this.encoderBackend && this.encoderBackend !== tf.getBackend()) {
      const mainBackend = tf.getBackend();
      await tf.setBackend(this.encoderBackend);
      try {
        return await this.encodeHere(ids, lengthScale, speaker);
      } finally {
        await tf.setBackend(mainBackend);
      }
    }
    return this.encodeHere(ids, lengthScale, speaker);
  }

  async encodeHere(ids, lengthScale, speaker) {
    const inputs = {
      x: tf.tensor2d(ids, [1, ids.length], 'int32'),
      x_lengths: tf.tensor1d([ids.length], 'int32'),
      length_scale: tf.scalar(lengthScale, 'float32'),
    };
    if (this.multiSpeaker) inputs.spk = tf.tensor1d([speaker], 'int32');
    const [mu, mask, yLengths] = await run(this.encoder, inputs, ['mu_y', 'y_mask', 'y_lengths']);
    Object.values(inputs).forEach((t) => t.dispose());
    const yLength = (await yLengths.data())[0];
    yLengths.dispose();
    return { mu, mask, yLength, frames: mu.shape[1] };
  }

  /**
   * Text (or ids) to mel and waveform.
   *
   * @param {object} options
   * @param {string} [options.text] Raw text (or give `ids`).
   * @param {number[]} [options.ids] Encoder ids (blanks included).
   * @param {number} [options.steps=10] Reverse-diffusion steps (estimator calls).
   * @param {string} [options.solver] One of the export's `solvers` (solvers.js; default:
   *     the export's `sampling.solver`, else "euler").
   * @param {number} [options.temperature=1.5] Noise divisor.
   * @param {number} [options.lengthScale=1] Duration multiplier (> 1 is slower).
   * @param {number} [options.seed=0] Noise seed (the portable generator of prng.js: the
   *     same mel as the Keras Synthesizer and the LiteRT runner for the same seed). A
   *     stochastic solver's per-step draws come from it too, also when `noise` is given.
   * @param {Float32Array} [options.noise] Standard normal noise [1, T, n_feats] (row-major,
   *     T >= padded mel length; the first frames are used), instead of the generator.
   * @param {string} [options.vocoder] "graph" or "griffin_lim" (default: graph if any).
   * @param {number} [options.speaker=0] Speaker id (multi-speaker exports).
   * @param {(stage: string, fraction: number) => (void|Promise<void>)} [options.onProgress]
   */
  async synthesize({
    text, ids, steps = 10, solver = null, temperature = 1.5, lengthScale = 1.0, seed = 0,
    noise = null, vocoder = null, speaker = 0, onProgress = () => {},
  } = {}) {
    const t0 = now();
    const solverName = checkSolver(solver || this.defaultSolver);
    if (!this.solvers.includes(solverName)) {
      throw new RangeError(`solver ${solverName} is not one this export runs (${this.solvers.join(', ')})`);
    }
    const nSteps = Math.round(steps);
    if (!(nSteps >= 1)) throw new RangeError(`steps must be >= 1, got ${steps}`);
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    const plan = solverPlan(solverName, nSteps, this.info.model.beta_min, this.info.model.beta_max);
    const tokenIds = ids || this.frontend.textToIds(text, { addBlank: this.info.text.add_blank });
    await onProgress('encoder', 0);
    const { mu, mask, yLength, frames } = await this.encode(tokenIds, lengthScale, speaker);
    const t1 = now();

    const size = frames * this.nFeats;
    const shape = [1, frames, this.nFeats];
    let eps;
    if (noise) {
      if (noise.length < size) {
        throw new RangeError(`noise has ${noise.length} values, ${size} needed (${frames} frames)`);
      }
      eps = noise.subarray ? noise.subarray(0, size) : Float32Array.from(noise.slice(0, size));
    } else {
      eps = pieceNoise(seed, yLength, frames, this.nFeats);
    }
    // The host loop of export/README.md: x = (mu + eps / temperature) * mask, then each
    // step feeds the plan's time and coefficients (float64 rounded to float32) and the
    // previous step's data prediction x0.
    let xt = tf.tidy(() => tf.mul(tf.add(mu, tf.div(tf.tensor3d(eps, shape),
      tf.scalar(temperature))), mask));
    let x0 = tf.zerosLike(xt);
    const zeros = plan.stochastic ? null : tf.zerosLike(xt);
    const spk = this.multiSpeaker ? tf.tensor1d([speaker], 'int32') : null;
    for (let i = 0; i < nSteps; i += 1) {
      const t = tf.tensor1d([plan.times[i]], 'float32');
      const coef = tf.tensor1d(plan.coefs[i], 'float32');
      const draw = plan.stochastic
        ? tf.tensor3d(stepNoise(seed, i, yLength, frames, this.nFeats), shape) : zeros;
      const inputs = { xt, mask, mu, t, coef, x0_prev: x0, noise: draw };
      if (spk) inputs.spk = spk;
      const [next, x0Next] = await run(this.decoderStep, inputs, ['xt_next', 'x0']);
      [t, coef, xt, x0].forEach((x) => x.dispose());
      if (plan.stochastic) draw.dispose();
      xt = next;
      x0 = x0Next;
      await onProgress('diffusion', (i + 1) / nSteps);
    }
    x0.dispose();
    if (zeros) zeros.dispose();
    if (spk) spk.dispose();
    const melTensor = tf.slice(xt, [0, 0, 0], [1, yLength, this.nFeats]);
    const mel = new Float32Array(await melTensor.data());
    [xt, mu, mask].forEach((x) => x.dispose());
    const t2 = now();

    const kind = vocoder || (this.vocoder ? 'graph' : 'griffin_lim');
    let audio;
    if (kind === 'graph') {
      if (!this.vocoder) throw new Error('this export has no vocoder graph');
      await onProgress('vocoder', 0);
      const out = await run(this.vocoder, { mel: melTensor }, 'audio');
      audio = new Float32Array(await out.data());
      out.dispose();
    } else {
      audio = await this.griffinLim.run(mel, yLength, (f) => onProgress('griffin_lim', f));
    }
    melTensor.dispose();
    // The mel of a barely trained model can exceed full scale; the WAV contract is [-1, 1].
    for (let i = 0; i < audio.length; i += 1) audio[i] = Math.min(1, Math.max(-1, audio[i]));
    const t3 = now();
    return {
      ids: tokenIds,
      phonemes: this.frontend.idsToText(tokenIds),
      mel,
      melFrames: yLength,
      paddedFrames: frames,
      audio,
      sampleRate: this.sampleRate,
      vocoder: kind,
      solver: solverName,
      steps: nSteps,
      backend: tf.getBackend(),
      noiseSource: noise ? 'injected' : `seed ${seed}`,
      timings: {
        encoder: (t1 - t0) / 1000,
        diffusion: (t2 - t1) / 1000,
        vocoder: (t3 - t2) / 1000,
        total: (t3 - t0) / 1000,
      },
    };
  }
}

export { setWasmPaths, tf };
