// Fast Griffin-Lim in plain JavaScript (float64), the same algorithm and framing as
// `gradtts_tf.audio.griffin_lim` (TensorFlow's stft / inverse_stft with a periodic Hann
// window and inverse_stft_window_fn): zero initial phase, momentum 0.99, 32 iterations.
// Used when an export has no vocoder graph.

/** In-place iterative radix-2 complex FFT on (re, im) of length n (a power of two). */
class FFT {
  constructor(n) {
    if (n < 2 || (n & (n - 1)) !== 0) throw new Error(`FFT size must be a power of two, got ${n}`);
    this.n = n;
    this.rev = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i += 1) {
      let r = 0;
      for (let b = 0; b < bits; b += 1) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.cos = new Float64Array(n / 2);
    this.sin = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k += 1) {
      this.cos[k] = Math.cos((2 * Math.PI * k) / n);
      this.sin[k] = Math.sin((2 * Math.PI * k) / n);
    }
  }

  /** sign -1: forward e^{-i...}; +1: inverse without the 1/n scaling. */
  transform(re, im, sign) {
    const { n, rev } = this;
    for (let i = 0; i < n; i += 1) {
      const j = rev[i];
      if (j > i) {
        [re[i], re[j]] = [re[j], re[i]];
        [im[i], im[j]] = [im[j], im[i]];
      }
    }
    for (let size = 2; size <= n; size *= 2) {
      const half = size / 2;
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let k = 0; k < half; k += 1) {
          const wr = this.cos[k * step];
          const wi = sign * this.sin[k * step];
          const a = start + k;
          const b = a + half;
          const tr = re[b] * wr - im[b] * wi;
          const ti = re[b] * wi + im[b] * wr;
          re[b] = re[a] - tr;
          im[b] = im[a] - ti;
          re[a] += tr;
          im[a] += ti;
        }
      }
    }
  }
}

/** Periodic Hann window of length n. */
function hann(n) {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i += 1) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
  return w;
}

/**
 * Griffin-Lim vocoder for log-mel spectrograms.
 *
 * @param {object} options
 * @param {Float32Array} options.invMelBasis Pseudo-inverse of the mel filters,
 *     row-major [nMels, nFft / 2 + 1] (`inv_mel_basis.f32` of an export).
 * @param {number} options.nMels
 * @param {number} options.nFft
 * @param {number} options.hopLength
 * @param {number} options.winLength
 * @param {number} [options.nIter=32]
 * @param {number} [options.momentum=0.99]
 * @param {number} [options.melClamp=20] |log-mel| limit before exp (the export's
 *     griffin_lim.mel_clamp): keeps a diverged model's mel from overflowing.
 */
export class GriffinLim {
  constructor({
    invMelBasis, nMels, nFft, hopLength, winLength, nIter = 32, momentum = 0.99, melClamp = 20,
  }) {
    this.nMels = nMels;
    this.nFft = nFft;
    this.hop = hopLength;
    this.win = winLength;
    this.nIter = nIter;
    this.momentum = momentum;
    this.melClamp = melClamp;
    this.bins = nFft / 2 + 1;
    if (invMelBasis.length !== nMels * this.bins) {
      throw new Error(`inverse mel basis has ${invMelBasis.length} values, not ${nMels}x${this.bins}`);
    }
    this.inv = invMelBasis;
    this.fft = new FFT(nFft);
    this.window = hann(winLength);
    // inverse_stft_window_fn: the forward window over the summed squared overlaps.
    const denom = new Float64Array(hopLength);
    for (let i = 0; i < winLength; i += 1) denom[i % hopLength] += this.window[i] ** 2;
    this.invWindow = this.window.map((w, i) => w / denom[i % hopLength]);
    this.re = new Float64Array(nFft);
    this.im = new Float64Array(nFft);
  }

  /** Linear magnitudes [frames, bins] from a log-mel [frames, nMels] (row-major). */
  magnitudes(mel, frames) {
    const { nMels, bins, inv, melClamp } = this;
    const mag = new Float64Array(frames * bins);
    const e = new Float64Array(nMels);
    for (let f = 0; f < frames; f += 1) {
      for (let m = 0; m < nMels; m += 1) {
        e[m] = Math.exp(Math.min(melClamp, Math.max(-melClamp, mel[f * nMels + m])));
      }
      for (let b = 0; b < bins; b += 1) {
        let s = 0;
        for (let m = 0; m < nMels; m += 1) s += e[m] * inv[m * bins + b];
        mag[f * bins + b] = Math.max(s, 0);
      }
    }
    return mag;
  }

  /** inverse_stft: [frames, bins] complex -> signal of (frames - 1) * hop + win samples. */
  istft(specRe, specIm, frames) {
    const { nFft, bins, hop, win, re, im, invWindow } = this;
    const signal = new Float64Array((frames - 1) * hop + win);
    for (let f = 0; f < frames; f += 1) {
      // Hermitian spectrum; irfft ignores the imaginary parts of DC and Nyquist.
      for (let b = 0; b < bins; b += 1) {
        re[b] = specRe[f * bins + b];
        im[b] = b === 0 || b === bins - 1 ? 0 : specIm[f * bins + b];
      }
      for (let b = bins; b < nFft; b += 1) {
        re[b] = re[nFft - b];
        im[b] = -im[nFft - b];
      }
      this.fft.transform(re, im, 1);
      const offset = f * hop;
      for (let i = 0; i < win; i += 1) signal[offset + i] += (re[i] / nFft) * invWindow[i];
    }
    return signal;
  }

  /** stft without end padding: signal -> [frames, bins] complex. */
  stft(signal, frames, outRe, outIm) {
    const { nFft, bins, hop, win, re, im, window } = this;
    for (let f = 0; f < frames; f += 1) {
      const offset = f * hop;
      for (let i = 0; i < nFft; i += 1) {
        re[i] = i < win ? signal[offset + i] * window[i] : 0;
        im[i] = 0;
      }
      this.fft.transform(re, im, -1);
      for (let b = 0; b < bins; b += 1) {
        outRe[f * bins + b] = re[b];
        outIm[f * bins + b] = im[b];
      }
    }
  }

  /**
   * Log-mel to waveform.
   *
   * @param {Float32Array} mel Row-major [frames, nMels].
   * @param {number} frames
   * @param {(fraction: number) => (void|Promise<void>)} [onIteration] Called after each
   *     iteration and awaited (a page yields to the event loop there to show progress).
   * @returns {Promise<Float32Array>} frames * hopLength samples.
   */
  async run(mel, frames, onIteration) {
    const { bins, hop, nFft, win } = this;
    const mag = this.magnitudes(mel, frames);
    const n = frames * bins;
    const angRe = new Float64Array(n).fill(1);
    const angIm = new Float64Array(n);
    const prevRe = new Float64Array(n);
    const prevIm = new Float64Array(n);
    const curRe = new Float64Array(n);
    const curIm = new Float64Array(n);
    const specRe = new Float64Array(n);
    const specIm = new Float64Array(n);
    const alpha = this.momentum / (1 + this.momentum);
    for (let it = 0; it < this.nIter; it += 1) {
      for (let k = 0; k < n; k += 1) {
        specRe[k] = mag[k] * angRe[k];
        specIm[k] = mag[k] * angIm[k];
      }
      prevRe.set(curRe);
      prevIm.set(curIm);
      this.stft(this.istft(specRe, specIm, frames), frames, curRe, curIm);
      for (let k = 0; k < n; k += 1) {
        const ar = curRe[k] - alpha * prevRe[k];
        const ai = curIm[k] - alpha * prevIm[k];
        const norm = Math.hypot(ar, ai) + 1e-16;
        angRe[k] = ar / norm;
        angIm[k] = ai / norm;
      }
      if (onIteration) await onIteration((it + 1) / this.nIter);
    }
    for (let k = 0; k < n; k += 1) {
      specRe[k] = mag[k] * angRe[k];
      specIm[k] = mag[k] * angIm[k];
    }
    const signal = this.istft(specRe, specIm, frames);
    // Sample s of the padded framing is sample s - left of the mel's audio.
    const left = Math.max(Math.floor((nFft - hop) / 2) - Math.floor((nFft - win) / 2), 0);
    return Float32Array.from(signal.subarray(left, left + frames * hop));
  }
}
