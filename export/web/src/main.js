// The demo page: loads an export folder (default "model/", or ?model=URL), then text ->
// speech on click. ?backend=cpu|webgl picks the TF.js backend (default: WebGL if it
// works, else CPU). `window.gradtts` exposes the model and the last result for tests;
// `window.gradtts.setNoise(array)` makes the next synthesis use that noise.

import { GradTTSWeb, NothingToSpeakError, httpReader, setWasmPaths, tf } from './synth.js';
import { encodeWav } from './wav.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const STAGES = { encoder: 'Encoding text', diffusion: 'Reverse diffusion', vocoder: 'Vocoder', griffin_lim: 'Griffin-Lim' };
const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

const state = { tts: null, noise: null, lastResult: null, audioUrl: null };
window.gradtts = {
  get tts() {
    return state.tts;
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

async function pickBackend() {
  // The WASM binaries are served next to app.js (copied there by build.mjs).
  setWasmPaths(new URL('./', window.location.href).href);
  const wanted = params.get('backend');
  for (const name of wanted ? [wanted] : ['webgl', 'wasm', 'cpu']) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        // GPUs that cannot render float32 textures fall back to float16: too coarse here.
        if (name === 'webgl' && !wanted && !tf.env().getBool('WEBGL_RENDER_FLOAT32_CAPABLE')) {
          continue;
        }
        return name;
      }
    } catch (err) {
      console.warn(`TF.js backend ${name} unavailable:`, err);
    }
  }
  throw new Error('no TF.js backend available');
}

async function synthesize() {
  showError('');
  const button = $('synthesize');
  button.disabled = true;
  setState('busy');
  const steps = Number($('steps').value);
  try {
    const result = await state.tts.synthesize({
      text: $('text').value,
      steps,
      temperature: Number($('temperature').value),
      lengthScale: 1 / Number($('rate').value),
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
      `(encoder ${result.timings.encoder.toFixed(2)} s, ${steps} steps ${result.timings.diffusion.toFixed(2)} s, ` +
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
    const backend = await pickBackend();
    const modelUrl = new URL(params.get('model') || 'model/', window.location.href);
    state.tts = await GradTTSWeb.load(httpReader(modelUrl.href), {
      onProgress: (fraction, what) => setProgress(fraction, `Loading ${what}…`),
    });
    const { tts } = state;
    if (tts.vocoder) {
      const option = new Option('HiFi-GAN (graph)', 'graph', true, true);
      $('vocoder').prepend(option);
    }
    const defaults = tts.info.sampling || {};
    if (defaults.steps) $('steps').value = defaults.steps;
    if (defaults.temperature) $('temperature').value = defaults.temperature;
    if (defaults.length_scale) $('rate').value = 1 / defaults.length_scale;
    ['steps', 'temperature', 'rate'].forEach((id) => $(id).dispatchEvent(new Event('input')));
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
