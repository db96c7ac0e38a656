// 16-bit PCM mono WAV encoding, byte-identical to `gradtts_tf.audio.save_audio`
// (soundfile/libsndfile: clip to [-1, 1], scale by 2^31 with round-half-even, keep the
// top 16 bits, i.e. an arithmetic shift right by 16).

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Converts float samples to int16 as libsndfile does.
 *
 * @param {Float32Array|number[]} samples Waveform, nominally in [-1, 1].
 * @returns {Int16Array}
 */
export function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i += 1) {
    const x = Math.min(1, Math.max(-1, samples[i]));
    const n = Math.min(2147483647, Math.max(-2147483648, roundHalfEven(x * 2147483648)));
    out[i] = n >> 16;
  }
  return out;
}

/**
 * Encodes a mono waveform as a WAV file (RIFF, PCM, 16 bit).
 *
 * @param {Float32Array|number[]} samples Waveform in [-1, 1].
 * @param {number} sampleRate Hz.
 * @returns {ArrayBuffer}
 */
export function encodeWav(samples, sampleRate) {
  const pcm = floatToPcm16(samples);
  const buffer = new ArrayBuffer(44 + pcm.byteLength);
  const view = new DataView(buffer);
  const ascii = (offset, text) => {
    for (let i = 0; i < text.length; i += 1) view.setUint8(offset + i, text.charCodeAt(i));
  };
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + pcm.byteLength, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // byte rate
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, 'data');
  view.setUint32(40, pcm.byteLength, true);
  new Int16Array(buffer, 44).set(pcm);
  return buffer;
}
