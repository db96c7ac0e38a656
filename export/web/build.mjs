// Bundles the page with esbuild into a self-contained folder (no CDN, works offline):
//   node build.mjs [OUTDIR]   (default: ../../gradtts_tf/export/web_dist, the copy the
//   Python package installs and `python -m export.web` / gradtts-export serve serve)
// OUTDIR gets index.html, app.js (+ source map) and the TF.js WASM binaries.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] || join(here, '..', '..', 'gradtts_tf', 'export', 'web_dist'));
mkdirSync(outdir, { recursive: true });

const result = await build({
  entryPoints: [join(here, 'src/main.js')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  outfile: join(outdir, 'app.js'),
  logLevel: 'warning',
  metafile: true,
});
copyFileSync(join(here, 'index.html'), join(outdir, 'index.html'));
const wasmDir = join(here, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of readdirSync(wasmDir).filter((name) => name.endsWith('.wasm'))) {
  copyFileSync(join(wasmDir, f), join(outdir, f));
}
const bytes = result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith('app.js'))].bytes;
console.log(`built ${outdir}/app.js (${(bytes / 1e6).toFixed(2)} MB)`);
