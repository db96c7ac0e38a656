// The demo page: loads an export folder (default "model/", or ?model=URL), then text ->
// speech on click. The TF.js backend is the fastest one measured at load (WebGPU,
// WebGL, WASM), unless ?backend=webgpu|webgl|wasm|cpu (or the Backend control) names
// one; ?solver=NAME picks the initial solver, ?threads=N the WASM threads,
// ?candidates=webgl,wasm the backends measured (software GPUs included when named). `window.gradtts` exposes the model, the
// backend choice and the last result for tests; `window.gradtts.setNoise(array)` makes
// the next synthesis use that noise.

import {
  BACKENDS, cachingReader, chooseBackend, encoderBackendFor, setWasmThreads,
} from './backends.js';
import { GradTTSWeb, NothingToSpeakError, httpReader, setWasmPaths, tf } from './synth.js';
import { encodeWav } from './wav.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const STAGES = { encoder: 'Encoding text', diffusion: 'Reverse diffusion', vocoder: 'Vocoder', griffin_lim: 'Griffin-Lim' };
const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

const SOLVER_LABELS = {
  euler: 'Euler (official ODE)',
  'euler-sde': 'Euler-Maruyama (official SDE)',
  'dpmpp-2m': 'DPM-Solver++ 2M (ODE)',
  'ml-sde': 'Maximum-likelihood SDE',
};
const BACKEND_LABELS = {
  auto: 'Fastest (measured at load)', webgpu: 'WebGPU', webgl: 'WebGL', wasm: 'WebAssembly', cpu: 'Plain JavaScript',
};

// lengthScale: the voice's own until the rate slider moves (its 0.05 steps cannot hold
// every 1 / length_scale, e.g. 1 / 0.9).
const state = {
  tts: null, noise: null, lastResult: null, audioUrl: null, backend: null, lengthScale: null,
};
window.gradtts = {
  get tts() {
    return state.tts;
  },
  /** How the backend was chosen: {backend, mode, measurements, unavailable, details}. */
  get backend() {
    return state.backend;
  },
  get lastResult() {
    return state.lastResult;
  },
  /** Noise for the next synthesis: [1, T, n_mels] values, row-major (T >= mel frames). */
  setNoise(values) {
    state.noise = values ? Float32Array.from(values) : null;
  },
};

function setState(name) {
  document.body.dataset.state = name;
}

function showError(message) {
  $('error').textContent = message;
}

function setProgress(fraction, message) {
  $('progress').value = fraction;
  $('status').textContent = message;
}

function bindOutput(inputId, format) {
  const input = $(inputId);
  const update = () => {
    $(`${inputId}-value`).textContent = format(Number(input.value));
  };
  input.addEventListener('input', update);
  update();
}

const ms = (x) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;

/** One line on how the backend was chosen, with the measured figures. */
function describeBackend(choice) {
  const parts = [`Backend: ${choice.backend} (${choice.details.summary})`];
  const calls = Math.max(0, ...choice.measurements.map((m) => m.callsMs.length));
  const figures = choice.measurements.map((m) => `${m.backend} ${ms(m.stepMs)}` +
    (m.callsMs.length < calls ? ` (${m.callsMs.length} call: over twice the fastest)` : ''));
  const frames = choice.measurements.length ? choice.measurements[0].frames : 0;
  if (choice.encoderBackend) parts.push(`the text encoder on ${choice.encoderBackend}`);
  if (choice.mode === 'chosen') parts.push('as asked');
  if (choice.mode === 'only') parts.push('the only one available');
  if (choice.mode === 'fallback') {
    parts.push(`${choice.wanted} was asked for but is not available: ${choice.unavailable[choice.wanted]}`);
  }
  if (figures.length) {
    parts.push(`fastest measured: one diffusion step on ${frames} frames takes ${figures.join(', ')} ` +
      `(median of ${calls} calls after a warm-up; ` +
      `measured in ${choice.measureSeconds.toFixed(1)} s)`);
  }
  const missing = Object.entries(choice.unavailable).filter(([name]) => name !== choice.wanted);
  if (missing.length) parts.push(`unavailable: ${missing.map(([k, v]) => `${k} (${v})`).join('; ')}`);
  const skipped = Object.entries(choice.skipped);
  if (skipped.length) parts.push(`not measured: ${skipped.map(([k, v]) => `${k} (${v})`).join('; ')}`);
  return `${parts.join('; ')}.`;
}

function fillBackendControl(choice) {
  const select = $('backend');
  select.innerHTML = '';
  for (const name of ['auto', ...BACKENDS]) {
    const option = new Option(BACKEND_LABELS[name], name);
    if (name in choice.unavailable) {
      option.disabled = true;
      option.title = choice.unavailable[name];
    }
    select.add(option);
  }
  select.value = choice.mode === 'chosen' ? choice.backend : 'auto';
  // Another backend means loading the graphs again: reload the page with ?backend=.
  select.addEventListener('change', () => {
    const next = new URLSearchParams(window.location.search);
    if (select.value === 'auto') next.delete('backend');
    else next.set('backend', select.value);
    window.location.search = next.toString();
  });
}

function fillSolverControl(tts) {
  const select = $('solver');
  select.innerHTML = '';
  for (const name of tts.solvers) select.add(new Option(SOLVER_LABELS[name] || name, name));
  const wanted = params.get('solver');
  if (wanted && !tts.solvers.includes(wanted)) {
    showError(`?solver=${wanted} is not a solver of this voice: use one of ${tts.solvers.join(', ')} ` +
      `(${tts.defaultSolver} is selected).`);
  }
  select.value = wanted && tts.solvers.includes(wanted) ? wanted : tts.defaultSolver;
}

async function synthesize() {
  showError('');
  const button = $('synthesize');
  button.disabled = true;
  setState('busy');
  const steps = Number($('steps').value);
  const solver = $('solver').value;
  try {
    const result = await state.tts.synthesize({
      text: $('text').value,
      steps,
      solver,
      temperature: Number($('temperature').value),
      lengthScale: state.lengthScale ?? 1 / Number($('rate').value),
      seed: Number($('seed').value) || 0,
      noise: state.noise,
      vocoder: $('vocoder').value,
      onProgress: async (stage, fraction) => {
        const overall = { encoder: 0, diffusion: 0.05 + 0.8 * fraction, vocoder: 0.9, griffin_lim: 0.85 + 0.15 * fraction }[stage];
        const detail = stage === 'diffusion' ? ` ${Math.round(fraction * steps)}/${steps}` : '';
        setProgress(overall, `${STAGES[stage]}${detail}…`);
        await yieldToBrowser();
      },
    });
    state.noise = null;
    state.lastResult = result;
    const wav = new Blob([encodeWav(result.audio, result.sampleRate)], { type: 'audio/wav' });
    if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
    state.audioUrl = URL.createObjectURL(wav);
    $('audio').src = state.audioUrl;
    $('download').href = state.audioUrl;
    const seconds = result.audio.length / result.sampleRate;
    $('timing').textContent = `${seconds.toFixed(2)} s of audio in ${result.timings.total.toFixed(2)} s ` +
      `(encoder ${result.timings.encoder.toFixed(2)} s, ${steps} ${solver} steps ${result.timings.diffusion.toFixed(2)} s, ` +
      `${result.vocoder === 'graph' ? 'HiFi-GAN' : 'Griffin-Lim'} ${result.timings.vocoder.toFixed(2)} s)`;
    $('phonemes').textContent = `Symbols: ${result.phonemes}`;
    $('result').hidden = false;
    setProgress(1, 'Done.');
    setState('done');
  } catch (err) {
    setProgress(0, '');
    if (err instanceof NothingToSpeakError) {
      showError(err.message);
    } else {
      showError(`Synthesis failed: ${err.message}`);
      console.error(err);
    }
    setState('error');
  } finally {
    button.disabled = false;
  }
}

async function main() {
  setState('loading');
  bindOutput('steps', (v) => String(v));
  bindOutput('temperature', (v) => v.toFixed(2));
  bindOutput('rate', (v) => `${v.toFixed(2)}×`);
  try {
    // The WASM binaries are served next to app.js (copied there by build.mjs).
    setWasmPaths(new URL('./', window.location.href).href);
    const modelUrl = new URL(params.get('model') || 'model/', window.location.href);
    const io = cachingReader(httpReader(modelUrl.href));
    const info = await io.json('model_info.json');
    if (!info.tfjs) throw new Error('model_info.json has no "tfjs" entry: export with python -m export.tfjs');
    if (params.get('threads')) setWasmThreads(Number(params.get('threads')));
    state.backend = await chooseBackend(io, info, {
      wanted: params.get('backend'),
      candidates: params.get('candidates') ? params.get('candidates').split(',') : null,
      onProgress: (message) => setProgress(0, message),
    });
    const { backend } = state.backend;
    state.backend.encoderBackend = await encoderBackendFor(backend);
    $('backend-info').textContent = describeBackend(state.backend);
    fillBackendControl(state.backend);
    state.tts = await GradTTSWeb.load(io, {
      onProgress: (fraction, what) => setProgress(fraction, `Loading ${what}…`),
      encoderBackend: state.backend.encoderBackend,
    });
    io.clear();
    const { tts } = state;
    fillSolverControl(tts);
    if (tts.vocoder) {
      const option = new Option('HiFi-GAN (graph)', 'graph', true, true);
      $('vocoder').prepend(option);
    }
    const defaults = tts.info.sampling || {};
    if (defaults.steps) $('steps').value = defaults.steps;
    if (defaults.temperature) $('temperature').value = defaults.temperature;
    if (defaults.length_scale) $('rate').value = 1 / defaults.length_scale;
    ['steps', 'temperature', 'rate'].forEach((id) => $(id).dispatchEvent(new Event('input')));
    if (defaults.length_scale) state.lengthScale = defaults.length_scale;
    $('rate').addEventListener('input', () => {
      state.lengthScale = null;
    });
    const mb = tts.stats.graphBytes / 1e6;
    const quant = tts.info.tfjs.quantization || 'float32';
    $('info').textContent = `Model: ${mb.toFixed(1)} MB of graphs (${quant} weights), loaded in ` +
      `${tts.stats.loadSeconds.toFixed(2)} s; TF.js ${tf.version.tfjs}, ${backend} backend; ` +
      `${tts.sampleRate} Hz.`;
    setProgress(0, 'Ready.');
    $('synthesize').textContent = 'Speak';
    $('synthesize').disabled = false;
    $('synthesize').addEventListener('click', synthesize);
    setState('ready');
  } catch (err) {
    showError(`Could not load the model: ${err.message}`);
    setState('error');
  }
}

main();
