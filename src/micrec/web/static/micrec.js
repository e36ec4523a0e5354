// micrec.js: record the browser's microphone into a file on a micrec.web server.
//
//   import { MicrecRecorder } from "./static/micrec.js";
//   const rec = new MicrecRecorder({ token, audio_encoder: "flac", sample_rate: 48000 });
//   rec.addEventListener("state", (e) => console.log(e.detail.state));
//   rec.addEventListener("level", (e) => console.log(e.detail.current));
//   rec.addEventListener("audio", (e) => draw(e.detail.samples));  // the int16 frames sent
//   await rec.start();  ...  rec.pause(); rec.resume();  const summary = await rec.stop();
//
// Audio is captured as PCM by an AudioWorklet (no MediaRecorder re-encoding) and sent as
// int16 little-endian frames of ~20 ms over one WebSocket per take. The server names the file.
// The DSP flags go both to the server's recorder and to getUserMedia's constraints.

const FRAME_SECONDS = 0.02;

export class MicrecRecorder extends EventTarget {
  constructor(options) {
    super();
    this.options = {
      url: new URL("ws", document.baseURI).href.replace(/^http/, "ws"),  // works under a mount prefix
      audio_encoder: "wav", sample_rate: 48000, channels_num: 1, bit_rate: 128000,
      auto_gain: false, suppress_noise: false, cancel_echo: false, until_silence: null, ...options,
    };
    this.state = "stopped";
    this.sentFrames = 0;
    this._sending = false;
  }

  async start() {
    if (this.state !== "stopped") throw new Error(`cannot start while ${this.state}`);
    const o = this.options;
    this.sentFrames = 0;
    this.summary = null;
    this.media = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: o.channels_num, echoCancellation: !!o.cancel_echo,
        noiseSuppression: !!o.suppress_noise, autoGainControl: !!o.auto_gain,
      },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(new URL("worklet.js", import.meta.url));
    const channels = Math.min(2, Math.max(1, o.channels_num));
    const source = this.context.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(this.context, "micrec-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, channelCount: channels,
      channelCountMode: "explicit", channelInterpretation: "speakers",
      processorOptions: { channels, frameSize: Math.round(this.context.sampleRate * FRAME_SECONDS) },
    });
    this.node.port.onmessage = (e) => this._frame(e.data, channels);
    source.connect(this.node);
    this.node.connect(this.context.destination);  // pulls the graph; the node outputs silence
    await this._open(this.context.sampleRate, channels);
  }

  pause() { this._command("pause"); this._sending = false; }

  resume() { this._command("resume"); this._sending = true; }

  /** Stop and wait for the server's summary ({take, duration_ms, error, ...}). */
  stop() {
    this._sending = false;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve(this.summary || { take: this.take, error: "not recording" });
    }
    const done = new Promise((resolve) => { this._onSummary = resolve; });
    this._command("stop");
    return done;
  }

  _open(rate, channels) {
    const o = this.options;
    const url = `${o.url}?token=${encodeURIComponent(o.token)}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({
        type: "start", rate, channels,
        audio_encoder: o.audio_encoder, sample_rate: o.sample_rate, channels_num: o.channels_num,
        bit_rate: o.bit_rate, auto_gain: o.auto_gain, suppress_noise: o.suppress_noise,
        cancel_echo: o.cancel_echo, until_silence: o.until_silence,
      }));
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === "started") { this.take = msg.take; this._sending = true; resolve(msg); }
        this._message(msg);
      };
      ws.onclose = (e) => {
        this._sending = false;
        this._release();
        if (this.state !== "stopped") this._setState("stopped", e.reason || `connection closed (${e.code})`);
        const summary = this.summary || { take: this.take, error: e.reason || null, code: e.code };
        this.dispatchEvent(new CustomEvent("closed", { detail: { code: e.code, reason: e.reason, summary } }));
        if (this._onSummary) this._onSummary(summary);
        reject(new Error(e.reason || `connection closed (${e.code})`));
      };
    });
  }

  _message(msg) {
    if (msg.type === "state") this._setState(msg.state, msg.error);
    else if (msg.type === "started") this._setState("recording", null);
    else if (msg.type === "level") this.dispatchEvent(new CustomEvent("level", { detail: msg }));
    else if (msg.type === "stopped") this.summary = msg;
    else if (msg.type === "error") this.dispatchEvent(new CustomEvent("error", { detail: msg }));
  }

  _setState(state, error) {
    if (state === this.state && !error) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, error: error || null } }));
  }

  _frame(buffer, channels) {
    if (!this._sending || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(buffer);
    this.sentFrames += buffer.byteLength / (2 * channels);
    // What went into the take (nothing while paused), for pictures and meters of the page's own.
    const detail = { samples: new Int16Array(buffer), channels, rate: this.context.sampleRate };
    this.dispatchEvent(new CustomEvent("audio", { detail }));
  }

  _command(type) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type }));
  }

  _release() {
    if (this.media) this.media.getTracks().forEach((t) => t.stop());
    if (this.context) this.context.close();
    this.media = this.context = this.node = null;
  }
}
