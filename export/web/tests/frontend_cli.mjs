// Runs the JS text front end in node on texts from a JSON file; prints JSON results.
// Usage: node tests/frontend_cli.mjs FRONTEND_DIR TEXTS.json
// Each result is {"ids": [...]} or {"error": name, "message": text}.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { TextFrontend } from '../src/frontend.js';

const [dir, textsFile] = process.argv.slice(2);
const read = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const frontend = new TextFrontend(read('frontend.json'), read('cmudict.json'), read('unidecode.json'));
const results = JSON.parse(readFileSync(textsFile, 'utf8')).map((text) => {
  try {
    return { ids: frontend.textToIds(text) };
  } catch (err) {
    return { error: err.name, message: err.message };
  }
});
process.stdout.write(JSON.stringify(results));
