// waveform.js: pictures of audio on a <canvas>, from the PCM the page already has.
//
//   LiveWaveform   the last few seconds while recording, scrolling (one column per few ms)
//   Envelope       min/max of every block of a take, gathered while it is recorded
//   envelopeOf()   the same from an AudioBuffer (a take decoded with decodeAudioData)
//   drawEnvelope() a thumbnail: one column per pixel, the lowest and highest sample under it
//
// Samples are int16 (as the AudioWorklet sends them) or float; channels are combined, so a
// column spans the lowest to the highest sample of any channel.

export const WAVE_COLOR = "#1f6fb4";
const AXIS_COLOR = "#c9ced8";

/** Min and max (as -1..1) of interleaved int16 samples. */
function extremes(samples) {
  let lo = 32767, hi = -32768;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (s < lo) lo = s;
    if (s > hi) hi = s;
  }
  return samples.length ? [lo / 32768, hi / 32768] : [0, 0];
}

function drawColumns(canvas, lows, highs, start, count) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  const middle = (height - 1) / 2;
  g.clearRect(0, 0, width, height);
  g.fillStyle = AXIS_COLOR;
  g.fillRect(0, Math.floor(middle), width, 1);
  g.fillStyle = WAVE_COLOR;
  for (let x = 0; x < count; x++) {
    const lo = lows[(start + x) % lows.length], hi = highs[(start + x) % highs.length];
    const top = Math.floor(middle - Math.min(1, hi) * middle);
    const bottom = Math.ceil(middle - Math.max(-1, lo) * middle);
    g.fillRect(width - count + x, top, 1, Math.max(1, bottom - top + 1));
  }
}

/** A scrolling picture of the last `seconds` of audio: the newest column at the right edge. */
export class LiveWaveform {
  constructor(canvas, { rate, channels, seconds = 4 }) {
    this.canvas = canvas;
    this.channels = channels;
    this.perColumn = Math.max(1, Math.round((rate * seconds) / canvas.width)) * channels;
    this.lows = new Float32Array(canvas.width);
    this.highs = new Float32Array(canvas.width);
    this.count = 0;      // columns filled so far (up to the width)
    this.next = 0;       // ring position of the next column
    this.pending = new Int16Array(this.perColumn);
    this.filled = 0;
    this._scheduled = false;
    drawColumns(canvas, this.lows, this.highs, 0, 0);
  }

  /** Add interleaved int16 samples; the canvas is redrawn once per animation frame. */
  push(samples) {
    let i = 0;
    while (i < samples.length) {
      const take = Math.min(samples.length - i, this.perColumn - this.filled);
      this.pending.set(samples.subarray(i, i + take), this.filled);
      this.filled += take;
      i += take;
      if (this.filled === this.perColumn) {
        [this.lows[this.next], this.highs[this.next]] = extremes(this.pending);
        this.next = (this.next + 1) % this.lows.length;
        this.count = Math.min(this.count + 1, this.lows.length);
        this.filled = 0;
      }
    }
    this._schedule();
  }

  draw() {
    const start = (this.next - this.count + this.lows.length) % this.lows.length;
    drawColumns(this.canvas, this.lows, this.highs, start, this.count);
  }

  _schedule() {
    if (this._scheduled) return;
    this._scheduled = true;
    // A hidden tab gets no animation frames: draw at the next block then, not never.
    const run = () => { this._scheduled = false; this.draw(); };
    if (document.hidden) setTimeout(run, 0); else requestAnimationFrame(run);
  }
}

/** The min/max of every block of a take, gathered while it is recorded. */
export class Envelope {
  constructor() { this.lows = []; this.highs = []; }

  push(samples) {
    const [lo, hi] = extremes(samples);
    this.lows.push(lo);
    this.highs.push(hi);
  }
}

/** The envelope of a decoded take, in `buckets` slices (all channels combined). */
export function envelopeOf(buffer, buckets = 2000) {
  const env = new Envelope();
  const frames = buffer.length;
  const channels = [];
  for (let c = 0; c < buffer.numberOfChannels; c++) channels.push(buffer.getChannelData(c));
  const n = Math.max(1, Math.min(buckets, frames));
  for (let b = 0; b < n; b++) {
    const from = Math.floor((b * frames) / n), to = Math.max(from + 1, Math.floor(((b + 1) * frames) / n));
    let lo = 1, hi = -1;
    for (const data of channels) {
      for (let i = from; i < to && i < frames; i++) {
        if (data[i] < lo) lo = data[i];
        if (data[i] > hi) hi = data[i];
      }
    }
    env.lows.push(frames ? lo : 0);
    env.highs.push(frames ? hi : 0);
  }
  return env;
}

/** Draw an envelope across the whole canvas: one column per pixel, min/max of the blocks under it. */
export function drawEnvelope(canvas, env) {
  const width = canvas.width, n = env.lows.length;
  const lows = new Float32Array(width), highs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const from = Math.floor((x * n) / width), to = Math.max(from + 1, Math.floor(((x + 1) * n) / width));
    let lo = 1, hi = -1;
    for (let i = from; i < to && i < n; i++) {
      if (env.lows[i] < lo) lo = env.lows[i];
      if (env.highs[i] > hi) hi = env.highs[i];
    }
    [lows[x], highs[x]] = n ? [lo, hi] : [0, 0];
  }
  drawColumns(canvas, lows, highs, 0, width);
}

/** Draw "no preview" (a take the browser cannot decode, e.g. AMR or raw PCM). */
export function drawNoPreview(canvas) {
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = AXIS_COLOR;
  g.fillRect(0, Math.floor((canvas.height - 1) / 2), canvas.width, 1);
  g.fillStyle = "#8a90a0";
  g.font = "11px system-ui, sans-serif";
  g.textBaseline = "top";
  g.fillText("no preview", 4, 2);
}
