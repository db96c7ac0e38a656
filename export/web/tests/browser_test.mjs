// Drives the demo page in real headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core, as a person would: waits for the model, types text, sets the
// controls, clicks "Speak", waits for the audio. Noise is injected (or drawn from a
// seed) so the Python tests can compare with Keras on the same noise; the benchmark
// (bench/browser.py) repeats runs and reads the page's timings.
// Usage: node tests/browser_test.mjs REQUEST.json
// REQUEST: {"url", "chromium", "user_data_dir", "out_dir", "timeout_ms",
//           "backend": "wasm" (default) | "webgpu" | "webgl" | "cpu" | "auto" (no
//             ?backend=: the page measures), "query": {extra URL parameters},
//           "extra_args": [Chromium flags], "hardware_concurrency": N (emulated cores),
//           "text", "steps", "temperature", "rate" (the sliders),
//           optional: "screenshot", "unspeakable_text",
//           "noise": "noise.f32" + "vocoders": ["graph", "griffin_lim"] (injected-noise
//             runs, OUT/browser_mel.f32, OUT/browser_audio_<vocoder>.f32, OUT/browser.wav:
//             the download link's bytes), "gl_mel": [...] (OUT/browser_gl.f32: the page's
//             Griffin-Lim of it),
//           "solver_runs": [{"solver", "seed", "steps"?, "text"?, "vocoder"?, "repeats"?,
//             "max_seconds"?, "min_repeats"?}] (seeded runs through the Solver control:
//             OUT/browser_mel_<solver>.f32 and every repeat's timings; repeating stops
//             after max_seconds once min_repeats are done)}
// Prints a JSON summary on stdout.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { holdChildrenPriority } from './priority.mjs';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = r.timeout_ms || 45000;
const readF32 = (path) => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const writeF32 = (path, values) => writeFileSync(path, Buffer.from(Float32Array.from(values).buffer));

const releasePriority = holdChildrenPriority();
const context = await chromium.launchPersistentContext(r.user_data_dir, {
  executablePath: r.chromium || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ...(r.extra_args || ['--disable-gpu']),
  ],
  viewport: { width: 900, height: 1000 },
});
const summary = { console_errors: [], page_errors: [], requests_outside: [] };
try {
  const page = context.pages()[0] || (await context.newPage());
  // A busy page (a software GPU compiling shaders, a synchronous read) can hold its
  // main thread longer than playwright's 30 s default for any action.
  page.setDefaultTimeout(timeout);
  if (r.hardware_concurrency) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setHardwareConcurrencyOverride', { hardwareConcurrency: r.hardware_concurrency });
  }
  const origin = new URL(r.url).origin;
  page.on('console', (msg) => {
    if (msg.type() === 'error') summary.console_errors.push(msg.text());
  });
  page.on('pageerror', (err) => summary.page_errors.push(String(err)));
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) summary.requests_outside.push(u);
  });

  const query = new URLSearchParams(r.query || {});
  const backend = r.backend || 'wasm';
  if (backend !== 'auto') query.set('backend', backend);
  const t0 = Date.now();
  await page.goto(`${r.url}${query.toString() ? `?${query}` : ''}`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout });
  summary.page_ready_seconds = (Date.now() - t0) / 1000;
  summary.error = await page.textContent('#error');
  if ((await page.getAttribute('body', 'data-state')) === 'error') {
    throw new Error(`the page did not load: ${summary.error}`);
  }
  summary.load = await page.evaluate(() => window.gradtts.tts.stats);
  summary.backend = await page.evaluate(() => window.gradtts.backend);
  summary.info = await page.textContent('#info');
  summary.backend_info = await page.textContent('#backend-info');
  summary.cross_origin_isolated = await page.evaluate(() => window.crossOriginIsolated);
  summary.user_agent = await page.evaluate(() => navigator.userAgent);
  summary.solver_options = await page.$$eval('#solver option', (os) => os.map((o) => o.value));
  summary.solver_selected = await page.inputValue('#solver');
  summary.backend_options = await page.$$eval('#backend option',
    (os) => os.map((o) => ({ value: o.value, disabled: o.disabled })));
  summary.backend_selected = await page.inputValue('#backend');

  // Nothing pronounceable: a clear message, no audio.
  if (r.unspeakable_text) {
    await page.fill('#text', r.unspeakable_text);
    await page.click('#synthesize');
    await page.waitForSelector('body[data-state="error"]', { timeout });
    summary.unspeakable_message = await page.textContent('#error');
  }

  const setRange = (id, value) => page.evaluate(([i, v]) => {
    const el = document.getElementById(i);
    el.value = String(v);
    el.dispatchEvent(new Event('input'));
  }, [id, value]);
  await page.fill('#text', '');
  await page.type('#text', r.text);
  await setRange('steps', r.steps);
  await setRange('temperature', r.temperature);
  await setRange('rate', r.rate);
  summary.labels = {
    steps: await page.textContent('#steps-value'),
    temperature: await page.textContent('#temperature-value'),
    rate: await page.textContent('#rate-value'),
  };

  // One click of "Speak"; samples the progress bar while it works.
  const speak = async () => {
    const progress = [];
    const started = Date.now();
    await page.click('#synthesize');
    while ((await page.getAttribute('body', 'data-state')) === 'busy' && Date.now() - started < timeout) {
      progress.push(await page.evaluate(() => [document.getElementById('progress').value,
        document.getElementById('status').textContent]));
      await page.waitForTimeout(50);
    }
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 1000 });
    if ((await page.getAttribute('body', 'data-state')) === 'error') {
      throw new Error(`synthesis failed: ${await page.textContent('#error')}`);
    }
    const result = await page.evaluate(() => {
      const res = window.gradtts.lastResult;
      return {
        ids: res.ids, mel: Array.from(res.mel), audio: Array.from(res.audio),
        melFrames: res.melFrames, timings: res.timings, vocoder: res.vocoder,
        noiseSource: res.noiseSource, solver: res.solver, steps: res.steps,
        backend: res.backend, sampleRate: res.sampleRate,
      };
    });
    return { result, progress, wallSeconds: (Date.now() - started) / 1000 };
  };

  summary.runs = {};
  if (r.noise) {
    const noise = Array.from(readF32(r.noise));
    for (const vocoder of r.vocoders || ['griffin_lim']) {
      await page.evaluate((values) => window.gradtts.setNoise(values), noise);
      await page.selectOption('#vocoder', vocoder);
      const { result, progress, wallSeconds } = await speak();
      writeF32(join(r.out_dir, 'browser_mel.f32'), result.mel);
      writeF32(join(r.out_dir, `browser_audio_${vocoder}.f32`), result.audio);
      summary.ids = result.ids;
      summary.runs[vocoder] = {
        wall_seconds: wallSeconds, timings: result.timings, mel_frames: result.melFrames,
        noise: result.noiseSource, vocoder: result.vocoder, solver: result.solver,
        progress_samples: progress.length, progress_statuses: [...new Set(progress.map((p) => p[1]))],
      };
    }
  }

  // Seeded runs through the Solver control (and the seed box).
  summary.solver_runs = [];
  for (const run of r.solver_runs || []) {
    await page.selectOption('#solver', run.solver);
    await page.fill('#seed', String(run.seed ?? 0));
    if (run.steps) await setRange('steps', run.steps);
    if (run.text) await page.fill('#text', run.text);
    if (run.vocoder) await page.selectOption('#vocoder', run.vocoder);
    const repeats = [];
    let last = null;
    const runStart = Date.now();
    for (let k = 0; k < (run.repeats || 1); k += 1) {
      if (run.max_seconds && k >= (run.min_repeats || 1)
          && (Date.now() - runStart) / 1000 > run.max_seconds) break;
      const { result, progress, wallSeconds } = await speak();
      last = result;
      repeats.push({
        wall_seconds: wallSeconds, timings: result.timings,
        audio_seconds: result.audio.length / result.sampleRate,
        progress_statuses: [...new Set(progress.map((p) => p[1]))],
      });
    }
    writeF32(join(r.out_dir, `browser_mel_${run.solver}.f32`), last.mel);
    summary.solver_runs.push({
      solver: last.solver, steps: last.steps, backend: last.backend, seed: run.seed ?? 0,
      mel_frames: last.melFrames, noise: last.noiseSource, ids: last.ids,
      timing_text: await page.textContent('#timing'), repeats,
    });
  }

  // The page's Griffin-Lim on a given mel (row-major [frames, n_mels]).
  if (r.gl_mel) {
    const gl = await page.evaluate(async (values) => {
      const { tts } = window.gradtts;
      const mel = Float32Array.from(values);
      return Array.from(await tts.griffinLim.run(mel, mel.length / tts.nFeats));
    }, r.gl_mel);
    writeF32(join(r.out_dir, 'browser_gl.f32'), gl);
  }
  // The download link serves the WAV the page encoded.
  if (r.noise) {
    const wav = await page.evaluate(async () => {
      const link = document.getElementById('download');
      const bytes = new Uint8Array(await (await fetch(link.href)).arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 1) s += String.fromCharCode(bytes[i]);
      return { href: link.href, download: link.download, base64: btoa(s) };
    });
    writeFileSync(join(r.out_dir, 'browser.wav'), Buffer.from(wav.base64, 'base64'));
    summary.download = { href_scheme: wav.href.split(':')[0], filename: wav.download };
    summary.audio_src_set = await page.evaluate(() => document.getElementById('audio').src.startsWith('blob:'));
  }
  summary.status = await page.textContent('#status');
  if (r.screenshot) await page.screenshot({ path: r.screenshot, fullPage: true });
} finally {
  await context.close();
  releasePriority();
}
process.stdout.write(JSON.stringify(summary));
