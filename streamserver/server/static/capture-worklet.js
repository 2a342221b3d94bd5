// AudioWorklet: mono float input -> 20 ms int16 (little-endian) frames, posted to the page.
// Runs at the AudioContext's rate; when that rate is not one the server takes
// (16/24/48 kHz), it resamples to 16 kHz (box low-pass + linear interpolation).
/* global sampleRate, registerProcessor, AudioWorkletProcessor */
const SERVER_RATES = [48000, 24000, 16000];

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.outRate = SERVER_RATES.includes(sampleRate) ? sampleRate : 16000;
    this.step = sampleRate / this.outRate;       // input samples per output sample
    this.frameLen = Math.round(this.outRate * 0.02);
    this.frame = new Int16Array(this.frameLen);
    this.fill = 0;
    this.pos = 0;                                 // resampler read position (input samples)
    this.prev = 0;                                // last (filtered) input sample
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data !== 'stop') return;
      this.running = false;
      if (this.fill > 0) {  // the last, short frame
        const rest = this.frame.slice(0, this.fill);
        this.port.postMessage({ type: 'frame', data: rest.buffer }, [rest.buffer]);
        this.fill = 0;
      }
      this.port.postMessage({ type: 'stopped' });
    };
    this.port.postMessage({ type: 'format', sampleRate: this.outRate });
  }

  push(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.frame[this.fill++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
    if (this.fill === this.frameLen) {
      const buf = this.frame.buffer;
      this.port.postMessage({ type: 'frame', data: buf }, [buf]);
      this.frame = new Int16Array(this.frameLen);
      this.fill = 0;
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true;  // no source connected yet
    const n = input[0].length;
    // Downmix to mono.
    const mono = new Float32Array(n);
    for (const ch of input) for (let i = 0; i < n; i++) mono[i] += ch[i] / input.length;
    if (this.step === 1) {
      for (let i = 0; i < n; i++) this.push(mono[i]);
      return true;
    }
    // Crude anti-alias: moving average over ~step input samples (history carried
    // across blocks), then linear interpolation at the output positions.
    const k = Math.max(1, Math.floor(this.step));
    if (!this.hist) this.hist = new Float32Array(k - 1);
    const ext = new Float32Array(k - 1 + n);
    ext.set(this.hist, 0);
    ext.set(mono, k - 1);
    const filt = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let j = 0; j < k; j++) acc += ext[i + j];
      filt[i] = acc / k;
    }
    this.hist = ext.slice(n);
    // Output sample at input position pos (block coordinates; filt[-1] is prev).
    while (this.pos <= n - 1) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i < 0 ? this.prev : filt[i];
      const b = i + 1 < n ? filt[i + 1] : a;
      this.push(a + (b - a) * frac);
      this.pos += this.step;
    }
    this.pos -= n;
    this.prev = filt[n - 1];
    return true;
  }
}

registerProcessor('capture', CaptureProcessor);
