// Drives the demo page in real headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core, as a person would: waits for the model, types text, sets the
// controls, clicks "Speak", waits for the audio. Noise is injected so the Python test
// can compare with the Keras pipeline on the same noise.
// Usage: node tests/browser_test.mjs REQUEST.json
// REQUEST: {"url", "chromium", "user_data_dir", "out_dir", "screenshot", "text",
//           "unspeakable_text", "steps", "temperature", "rate", "noise": "noise.f32",
//           "vocoders": ["graph", "griffin_lim"], "gl_mel": [...] (optional), "timeout_ms",
//           "backend": "wasm" (default) | "webgl" | "cpu", "extra_args": [Chromium flags]}
// Writes OUT/browser_mel.f32, OUT/browser_audio_<vocoder>.f32, OUT/browser.wav (the
// download link's bytes), OUT/browser_gl.f32 (the page's Griffin-Lim of gl_mel) and
// prints a JSON summary on stdout.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = r.timeout_ms || 45000;
const readF32 = (path) => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const writeF32 = (path, values) => writeFileSync(path, Buffer.from(Float32Array.from(values).buffer));

const context = await chromium.launchPersistentContext(r.user_data_dir, {
  executablePath: r.chromium || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ...(r.extra_args || []),
  ],
  viewport: { width: 900, height: 900 },
});
const summary = { console_errors: [], page_errors: [], requests_outside: [] };
try {
  const page = context.pages()[0] || (await context.newPage());
  const origin = new URL(r.url).origin;
  page.on('console', (msg) => {
    if (msg.type() === 'error') summary.console_errors.push(msg.text());
  });
  page.on('pageerror', (err) => summary.page_errors.push(String(err)));
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) summary.requests_outside.push(u);
  });

  const t0 = Date.now();
  await page.goto(`${r.url}?backend=${r.backend || 'wasm'}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout });
  summary.page_ready_seconds = (Date.now() - t0) / 1000;
  summary.load = await page.evaluate(() => window.gradtts.tts.stats);
  summary.info = await page.textContent('#info');
  summary.cross_origin_isolated = await page.evaluate(() => window.crossOriginIsolated);

  // Nothing pronounceable: a clear message, no audio.
  await page.fill('#text', r.unspeakable_text);
  await page.click('#synthesize');
  await page.waitForSelector('body[data-state="error"]', { timeout });
  summary.unspeakable_message = await page.textContent('#error');

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
  const noise = Array.from(readF32(r.noise));
  summary.runs = {};
  for (const vocoder of r.vocoders) {
    await page.evaluate((values) => window.gradtts.setNoise(values), noise);
    await page.selectOption('#vocoder', vocoder);
    const progress = [];
    const started = Date.now();
    await page.click('#synthesize');
    // Sample the progress bar while it works.
    while ((await page.getAttribute('body', 'data-state')) === 'busy' && Date.now() - started < timeout) {
      progress.push(await page.evaluate(() => [document.getElementById('progress').value,
        document.getElementById('status').textContent]));
      await page.waitForTimeout(50);
    }
    await page.waitForSelector('body[data-state="done"]', { timeout: 1000 });
    const result = await page.evaluate(() => {
      const res = window.gradtts.lastResult;
      return {
        ids: res.ids, mel: Array.from(res.mel), audio: Array.from(res.audio),
        melFrames: res.melFrames, timings: res.timings, vocoder: res.vocoder,
        noiseSource: res.noiseSource,
      };
    });
    writeF32(join(r.out_dir, 'browser_mel.f32'), result.mel);
    writeF32(join(r.out_dir, `browser_audio_${vocoder}.f32`), result.audio);
    summary.ids = result.ids;
    summary.runs[vocoder] = {
      wall_seconds: (Date.now() - started) / 1000, timings: result.timings,
      mel_frames: result.melFrames, noise: result.noiseSource, vocoder: result.vocoder,
      progress_samples: progress.length, progress_statuses: [...new Set(progress.map((p) => p[1]))],
    };
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
  summary.status = await page.textContent('#status');
  await page.screenshot({ path: r.screenshot, fullPage: true });
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(summary));
