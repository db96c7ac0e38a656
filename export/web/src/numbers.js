// Spells out numbers, currency, ordinals and decimals exactly as the Python front end
// (gradtts_tf/text/numbers.py), which relies on inflect 7.6 `number_to_words`.
// numberToWords below reproduces inflect's algorithm for the arguments the front end uses
// (plain digit strings, ordinals such as "21st", group 0 or 2), including its commas
// ("one million, two hundred thousand"), which become comma symbols in the id sequence.
// Digits are handled as strings (BigInt where arithmetic is needed), so long numbers keep
// every digit as Python's int does.

const UNIT = ['', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const TEEN = [
  'ten', 'eleven', 'twelve', 'thirteen', 'fourteen',
  'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen',
];
const TEN = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
const MILL = [
  ' ', ' thousand', ' million', ' billion', ' trillion', ' quadrillion', ' quintillion',
  ' sextillion', ' septillion', ' octillion', ' nonillion', ' decillion',
];
const NTH_SUFFIXES = new Set(['th', 'st', 'nd', 'rd']);
const ORDINAL_ENDINGS = {
  ty: 'tieth', one: 'first', two: 'second', three: 'third',
  five: 'fifth', eight: 'eighth', nine: 'ninth', twelve: 'twelfth',
};
const ORDINAL_SUFFIX_RE = new RegExp(`(${Object.keys(ORDINAL_ENDINGS).join('|')})$`);

/** Raised for numbers inflect cannot spell (more than 36 digits). */
export class NumberOutOfRangeError extends RangeError {}

function millfn(index) {
  if (index > MILL.length - 1) {
    throw new NumberOutOfRangeError('number too large to spell out');
  }
  return MILL[index];
}

function tenfn(tens, units, mindex = 0) {
  if (tens !== 1) {
    const hyphen = tens && units ? '-' : '';
    return `${TEN[tens]}${hyphen}${UNIT[units]}${millfn(mindex)}`;
  }
  return `${TEEN[units]}${millfn(mindex)}`;
}

function hundfn(hundreds, tens, units, mindex, args) {
  if (hundreds) {
    const andword = tens || units ? ` ${args.andword} ` : '';
    return `${UNIT[hundreds]} hundred${andword}${tenfn(tens, units)}${millfn(mindex)}, `;
  }
  if (tens || units) return `${tenfn(tens, units)}${millfn(mindex)}, `;
  return '';
}

// Digit groups aligned from the right: "1234567" -> ["1", "234", "567"].
function groupedFromRight(digits, size) {
  const head = ((digits.length - 1) % size) + 1;
  const parts = [digits.slice(0, head)];
  for (let i = head; i < digits.length; i += size) parts.push(digits.slice(i, i + size));
  return parts;
}

function renderGroup2(part, args) {
  if (part.length === 1) {
    const units = Number(part);
    return units ? `${UNIT[units]}, ` : ` ${args.zero}, `;
  }
  const tens = Number(part[0]);
  const units = Number(part[1]);
  if (tens) return `${tenfn(tens, units)}, `;
  if (units) return ` ${args.zero} ${UNIT[units]}, `;
  return ` ${args.zero} ${args.zero}, `;
}

function enword(num, group, args) {
  if (group === 2) return groupedFromRight(num, 2).map((p) => renderGroup2(p, args)).join('');
  if (group !== 0) throw new Error(`group ${group} is not used by the front end`);
  if (/^0*$/.test(num)) return args.zero;
  if (/^0*1$/.test(num)) return args.one;
  let s = num.replace(/^\s+/, '').replace(/^0+/, '');
  let millCount = 0;
  // Like inflect: the last three digits become words, repeatedly, then two, then one.
  const three = /(\d)(\d)(\d)(?=\D*$)/;
  for (let m = three.exec(s); m; m = three.exec(s)) {
    const words = hundfn(Number(m[1]), Number(m[2]), Number(m[3]), millCount, args);
    millCount += 1;
    s = s.slice(0, m.index) + words + s.slice(m.index + 3);
  }
  s = s.replace(/(\d)(\d)(?=\D*$)/, (_, t, u) => `${tenfn(Number(t), Number(u), millCount)}, `);
  s = s.replace(/(\d)(?=\D*$)/, (_, u) => `${UNIT[Number(u)]}${millfn(millCount)}, `);
  return s;
}

function subOrdinal(word) {
  const out = word.replace(ORDINAL_SUFFIX_RE, (m) => ORDINAL_ENDINGS[m]);
  return out === word ? `${out}th` : out;
}

/**
 * inflect's `number_to_words` for a non-negative digit string, optionally with an
 * ordinal suffix ("21st").
 *
 * @param {string} num Digits, e.g. "1999" or "3rd".
 * @param {{andword?: string, zero?: string, group?: number}} [options]
 * @returns {string} E.g. "nineteen ninety-nine" pieces joined with ", ".
 */
export function numberToWords(num, { andword = 'and', zero = 'zero', group = 0 } = {}) {
  const args = { andword, zero, one: 'one' };
  let s = String(num);
  if (NTH_SUFFIXES.has(s)) s = zero;
  const isOrdinal = NTH_SUFFIXES.has(s.slice(-2));
  if (isOrdinal) s = s.slice(0, -2);
  let chunk = s.replace(/\D/g, '') || '0';
  chunk = enword(chunk, group, args);
  if (chunk.endsWith(', ')) chunk = chunk.slice(0, -2);
  chunk = chunk.replace(/\s+,/g, ',');
  if (group === 0) {
    chunk = chunk.replace(/, (\S+)\s+$/, (_, w) => ` ${andword} ${w}`);
    chunk = chunk.replace(/\s+,/g, ',');
  }
  chunk = chunk.replace(/\s+/g, ' ').trim();
  const pieces = chunk.split(', ');
  if (isOrdinal && pieces.length) pieces[pieces.length - 1] = subOrdinal(pieces[pieces.length - 1]);
  return pieces.join(', ');
}

const COMMA_NUMBER_RE = /([0-9][0-9,]+[0-9])/g;
const DECIMAL_NUMBER_RE = /([0-9]+\.[0-9]+)/g;
const POUNDS_RE = /£([0-9,]*[0-9]+)/g;
const DOLLARS_RE = /\$([0-9.,]*[0-9]+)/g;
const ORDINAL_RE = /[0-9]+(st|nd|rd|th)/g;
const NUMBER_RE = /[0-9]+/g;

// Python's int(): digits (surrounding whitespace allowed) or a ValueError.
function pyInt(text) {
  const t = text.trim();
  if (!/^[0-9]+$/.test(t)) throw new Error(`invalid literal for int(): '${text}'`);
  return BigInt(t);
}

const unit = (n, singular, plural) => (n === 1n ? singular : plural);

function expandDollars(match, amount) {
  const parts = amount.split('.');
  if (parts.length > 2) return `${amount} dollars`;
  const dollars = parts[0] ? pyInt(parts[0]) : 0n;
  const cents = parts.length > 1 && parts[1] ? pyInt(parts[1]) : 0n;
  if (dollars && cents) {
    return `${dollars} ${unit(dollars, 'dollar', 'dollars')}, ${cents} ${unit(cents, 'cent', 'cents')}`;
  }
  if (dollars) return `${dollars} ${unit(dollars, 'dollar', 'dollars')}`;
  if (cents) return `${cents} ${unit(cents, 'cent', 'cents')}`;
  return 'zero dollars';
}

function expandNumber(match) {
  const num = BigInt(match);
  const digits = num.toString();
  if (num > 1000n && num < 3000n) {
    if (num === 2000n) return 'two thousand';
    if (num > 2000n && num < 2010n) return `two thousand ${numberToWords((num % 100n).toString())}`;
    if (num % 100n === 0n) return `${numberToWords((num / 100n).toString())} hundred`;
    return numberToWords(digits, { andword: '', zero: 'oh', group: 2 }).replaceAll(', ', ' ');
  }
  return numberToWords(digits, { andword: '' });
}

/** Rewrites "£20" as "20 pounds" (before ASCII transliteration turns "£" into "PS"). */
export function expandPounds(text) {
  return text.replace(POUNDS_RE, '$1 pounds');
}

/**
 * Replaces digits in lower-cased ASCII text by words, as `normalize_numbers` in Python.
 *
 * @param {string} text
 * @returns {string}
 */
export function normalizeNumbers(text) {
  let out = text.replace(COMMA_NUMBER_RE, (m, g) => g.replaceAll(',', ''));
  out = expandPounds(out);
  out = out.replace(DOLLARS_RE, expandDollars);
  out = out.replace(DECIMAL_NUMBER_RE, (m, g) => g.replace('.', ' point '));
  out = out.replace(ORDINAL_RE, (m) => numberToWords(m));
  out = out.replace(NUMBER_RE, expandNumber);
  return out;
}
