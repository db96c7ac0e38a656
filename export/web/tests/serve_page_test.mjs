// Drives the server's page (gradtts-serve, GET /) in headless Chromium (Debian's
// /usr/bin/chromium) with playwright-core, as a person would: waits for the voices,
// types a sentence, sets the speed, clicks "Speak", waits until the streamed audio
// has played, then fetches the download link.
// Usage: node tests/serve_page_test.mjs REQUEST.json
// REQUEST: {"url", "chromium", "user_data_dir", "screenshot", "download", "text",
//           "steps", "seed", "speed", "timeout_ms"}
// Prints a JSON summary on stdout.
import { readFileSync, writeFileSync } from 'node:fs';

import { chromium } from 'playwright-core';

import { holdChildrenPriority } from './priority.mjs';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = r.timeout_ms || 60000;
const releasePriority = holdChildrenPriority();
const context = await chromium.launchPersistentContext(r.user_data_dir, {
  executablePath: r.chromium || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  ],
  viewport: { width: 900, height: 760 },
});
const summary = { console_errors: [], page_errors: [], requests_outside: [] };
try {
  const page = context.pages()[0] || (await context.newPage());
  const origin = new URL(r.url).origin;
  page.on('console', (msg) => { if (msg.type() === 'error') summary.console_errors.push(msg.text()); });
  page.on('pageerror', (err) => summary.page_errors.push(String(err)));
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) summary.requests_outside.push(u);
  });
  await page.goto(r.url);
  await page.waitForFunction(() => !document.getElementById('speak').disabled, null, { timeout });
  summary.voices = await page.$$eval('#voice option', (os) => os.map((o) => o.value));

  // A request the server refuses: the page shows why.
  await page.fill('#text', '😀');
  await page.click('#speak');
  await page.waitForFunction(() => window.lastResult && window.lastResult.error, null, { timeout });
  summary.refused = await page.textContent('#status');

  await page.fill('#text', r.text);
  await page.fill('#steps', String(r.steps));
  await page.fill('#speed', String(r.speed));
  await page.fill('#seed', String(r.seed));
  await page.evaluate(() => { window.lastResult = null; });
  await page.click('#speak');
  await page.waitForFunction(() => window.lastResult && window.lastResult.played, null, { timeout });
  summary.result = await page.evaluate(() => window.lastResult);
  summary.status = await page.textContent('#status');
  summary.stats = {
    audio: await page.textContent('#audio-seconds'),
    first_audio: await page.textContent('#first-audio'),
    rtf: await page.textContent('#rtf'),
  };
  const href = await page.getAttribute('#download', 'href');
  summary.download_href = href;
  const bytes = await page.evaluate(async (h) => {
    const response = await fetch(h);
    return Array.from(new Uint8Array(await response.arrayBuffer()));
  }, href);
  writeFileSync(r.download, Buffer.from(bytes));
  await page.screenshot({ path: r.screenshot, fullPage: true });
} finally {
  await context.close();
  releasePriority();
}
process.stdout.write(JSON.stringify(summary));
