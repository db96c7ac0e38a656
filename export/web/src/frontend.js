// English text front end in JavaScript: raw text -> symbol ids, identical to the Python
// `gradtts_tf.text.text_to_ids` (cleaners, number expansion, CMUdict look-up, blanks).
// Every table (symbols, abbreviations, transliteration, dictionary) is exported from the
// Python front end by `python -m export.tfjs`, so nothing here is retyped.

import { expandPounds, normalizeNumbers } from './numbers.js';

/** Text with nothing speakable (empty, or only punctuation/emoji after cleaning). */
export class NothingToSpeakError extends Error {
  constructor(message) {
    super(message);
    this.name = 'NothingToSpeakError';
  }
}

// Python's str.isspace() characters (JS \s differs: it lacks \x1c-\x1f and \x85 and has \ufeff).
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE_RE = new RegExp(`[${PY_SPACE}]+`, 'g');
const ONLY_SPACE_RE = new RegExp(`^[${PY_SPACE}]*$`);
// Python's re.match(r"(.*?)\{(.+?)\}(.*)", re.DOTALL).
const CURLY_RE = /^([\s\S]*?)\{([\s\S]+?)\}([\s\S]*)$/;

const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

/**
 * Builds the front end from the exported tables.
 *
 * @param {object} tables `frontend.json` of an export: symbols, ids and abbreviations.
 * @param {Record<string, string>} cmudict Upper-case word -> ARPAbet ("HH AH0 L OW1").
 * @param {Record<string, string[]>} unidecode Hex section -> 256 ASCII replacements.
 */
export class TextFrontend {
  constructor(tables, cmudict, unidecode) {
    this.symbols = tables.symbols;
    this.symbolToId = new Map(this.symbols.map((s, i) => [s, i]));
    this.blankId = tables.blank_id;
    this.spaceId = tables.space_id;
    this.firstLetterId = tables.first_letter_id;
    this.arpabetPrefix = tables.arpabet_prefix;
    this.neverKeep = new Set(tables.never_keep);
    this.abbreviations = tables.abbreviations.map(([source, full]) => [
      new RegExp(source, 'gi'),
      full,
    ]);
    this.cmudict = cmudict;
    this.unidecodeTable = unidecode;
    this.cleaners = {
      basic_cleaners: (t) => this.collapseWhitespace(t.toLowerCase()),
      transliteration_cleaners: (t) => this.collapseWhitespace(this.toAscii(t).toLowerCase()),
      english_cleaners: (t) => this.englishCleaners(t),
    };
  }

  /** Python `unidecode`: per code point, ASCII kept, others from the exported table. */
  toAscii(text) {
    let out = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0);
      if (cp < 0x80) {
        out += ch;
        continue;
      }
      const section = this.unidecodeTable[(cp >> 8).toString(16)];
      out += section ? section[cp & 0xff] || '' : '';
    }
    return out;
  }

  collapseWhitespace(text) {
    return text.replace(WHITESPACE_RE, ' ');
  }

  expandAbbreviations(text) {
    let out = text;
    for (const [pattern, full] of this.abbreviations) out = out.replace(pattern, full);
    return out;
  }

  englishCleaners(text) {
    let out = this.toAscii(expandPounds(text));
    out = out.toLowerCase();
    out = normalizeNumbers(out);
    out = this.expandAbbreviations(out);
    return this.collapseWhitespace(out);
  }

  clean(text, cleaners) {
    const names = typeof cleaners === 'string' ? [cleaners] : cleaners;
    let out = text;
    for (const name of names) {
      if (!hasOwn(this.cleaners, name)) throw new Error(`Unknown cleaner ${name}`);
      out = this.cleaners[name](out);
    }
    return out;
  }

  lookup(word) {
    const key = word.toUpperCase();
    return hasOwn(this.cmudict, key) ? this.cmudict[key] : null;
  }

  charsToIds(text, dropped) {
    const ids = [];
    for (const ch of text) {
      const id = this.symbolToId.get(ch);
      if (id === undefined || this.neverKeep.has(ch)) dropped.push(ch);
      else ids.push(id);
    }
    return ids;
  }

  arpabetToIds(phones, dropped) {
    const ids = [];
    for (const phone of phones.split(WHITESPACE_RE)) {
      if (!phone) continue;
      const id = this.symbolToId.get(this.arpabetPrefix + phone);
      if (id === undefined) dropped.push(`{${phone}}`);
      else ids.push(id);
    }
    return ids;
  }

  wordsToIds(cleaned, useCmudict, dropped) {
    if (!useCmudict) return this.charsToIds(cleaned, dropped);
    const ids = [];
    // Single-space split: a leading/trailing space gives an empty word and a space id,
    // as in the official code.
    for (const word of cleaned.split(' ')) {
      const pron = this.lookup(word);
      if (pron !== null) ids.push(...this.arpabetToIds(pron, dropped));
      else if (word.startsWith('{')) ids.push(...this.arpabetToIds(word.slice(1, -1), dropped));
      else ids.push(...this.charsToIds(word, dropped));
      ids.push(this.spaceId);
    }
    return ids;
  }

  /**
   * Text -> ids without blanks (Python `text_to_sequence`).
   *
   * @param {string} text
   * @param {{cleaners?: string|string[], useCmudict?: boolean}} [options]
   * @returns {{ids: number[], dropped: string[]}}
   * @throws {NothingToSpeakError} If nothing speakable is left.
   */
  textToSequence(text, { cleaners = 'english_cleaners', useCmudict = true } = {}) {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    if (ONLY_SPACE_RE.test(text)) {
      throw new NothingToSpeakError(
        'The text is empty: type at least one word to speak.',
      );
    }
    const dropped = [];
    let ids = [];
    let rest = text;
    while (rest) {
      const m = CURLY_RE.exec(rest);
      if (m === null) {
        ids = ids.concat(this.wordsToIds(this.clean(rest, cleaners), useCmudict, dropped));
        break;
      }
      ids = ids.concat(this.charsToIds(this.clean(m[1], cleaners), dropped));
      ids = ids.concat(this.arpabetToIds(m[2], dropped));
      rest = m[3];
    }
    if (useCmudict && ids.length && ids[ids.length - 1] === this.spaceId) ids.pop();
    if (!ids.some((i) => i >= this.firstLetterId)) {
      throw new NothingToSpeakError(
        `Nothing to pronounce in "${text}": no letters or words are left after cleaning ` +
          `("${this.clean(text, cleaners)}"). Punctuation, symbols or emoji alone cannot be spoken.`,
      );
    }
    return { ids, dropped: [...new Set(dropped)].sort() };
  }

  /**
   * Text -> encoder ids (Python `text_to_ids`), blanks interspersed by default.
   *
   * @param {string} text
   * @param {{addBlank?: boolean, cleaners?: string|string[], useCmudict?: boolean}} [options]
   * @returns {number[]}
   */
  textToIds(text, { addBlank = true, ...options } = {}) {
    const { ids } = this.textToSequence(text, options);
    return addBlank ? intersperse(ids, this.blankId) : ids;
  }

  /** Debug view of ids, as Python `ids_to_text`: "{HH AH0 L OW1} world,". */
  idsToText(ids) {
    const out = [];
    for (const i of ids) {
      if (i === this.blankId) continue;
      const s = this.symbols[i];
      out.push(s.startsWith(this.arpabetPrefix) ? `{${s.slice(this.arpabetPrefix.length)}}` : s);
    }
    return out.join('').replaceAll('}{', ' ');
  }
}

/** [item, a0, item, a1, ..., item]: length 2 * N + 1. */
export function intersperse(items, item) {
  const out = new Array(2 * items.length + 1).fill(item);
  items.forEach((x, i) => {
    out[2 * i + 1] = x;
  });
  return out;
}
