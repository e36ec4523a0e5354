// AudioWorklet processor: the microphone's PCM as int16 frames, posted to the main thread.
// Runs on the audio rendering thread, so it only converts and batches: ~20 ms per frame keeps
// WebSocket messages small without one message per 128-sample render quantum.

class MicrecCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.channels = opts.channels || 1;
    this.frameSize = opts.frameSize || 960;
    this.buffer = new Int16Array(this.frameSize * this.channels);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;  // no source connected yet
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      for (let c = 0; c < this.channels; c++) {
        const channel = input[Math.min(c, input.length - 1)];
        const s = Math.max(-1, Math.min(1, channel[i]));
        this.buffer[this.filled * this.channels + c] = s < 0 ? s * 32768 : s * 32767;
      }
      if (++this.filled === this.frameSize) {
        this.port.postMessage(this.buffer.buffer, [this.buffer.buffer]);
        this.buffer = new Int16Array(this.frameSize * this.channels);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("micrec-capture", MicrecCapture);
