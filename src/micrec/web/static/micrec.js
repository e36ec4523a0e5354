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
//
// A dropped connection does not end the take: capture goes on into a buffer, the state is
// "reconnecting", and a new socket (after 0.25, 0.5, 1, 2, 4, 5, 5... s) sends "reconnect"
// with the take's ticket. The server answers how many frames it holds ("reconnected"), and the
// buffer is sent again from there, so the take has no gap and nothing twice. The buffer keeps
// what the server has not acknowledged yet (its level messages carry "frames").

const FRAME_SECONDS = 0.02;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;
// A recording socket that hears nothing (levels come 10 times a second) for this long is taken
// for dead: a network that swallows packets never closes the socket by itself.
const SILENT_SOCKET_MS = 5000;
// Close codes after which the take is over for good: a normal end, the page leaving, or a
// refusal by the server (bad data, policy, too big, try later).
const FINAL_CODES = new Set([1000, 1001, 1007, 1008, 1009, 1013]);
const START_FIELDS = ["audio_encoder", "sample_rate", "channels_num", "bit_rate", "auto_gain",
                      "suppress_noise", "cancel_echo", "until_silence"];

export class MicrecRecorder extends EventTarget {
  constructor(options) {
    super();
    this.options = {
      url: new URL("ws", document.baseURI).href.replace(/^http/, "ws"),  // works under a mount prefix
      audio_encoder: "wav", sample_rate: 48000, channels_num: 1, bit_rate: 128000,
      auto_gain: false, suppress_noise: false, cancel_echo: false, until_silence: null,
      drop_seconds: 60, ...options,
    };
    // How long to keep trying after a drop: past the server's drop limit the take goes on as a
    // new part, so a little longer than that.
    if (this.options.reconnect_seconds === undefined) this.options.reconnect_seconds = this.options.drop_seconds + 30;
    this.state = "stopped";
    this.sentFrames = 0;  // frames captured into the take (sent, or waiting in the buffer)
    this.reconnects = 0;
    this._capturing = false;
  }

  async start() {
    if (this.state !== "stopped") throw new Error(`cannot start while ${this.state}`);
    const o = this.options;
    this.sentFrames = 0;
    this.reconnects = 0;
    this.kept = [];  // with the option keep_frames: a copy of every frame captured (tests, debugging)
    this.summary = null;
    this.take = this.ticket = null;
    this.acked = 0;
    this._buffer = [];  // [{start, data}]: frames from `start` on, until the server has them
    this._live = false;  // a socket is open and in step with the server
    this._stopWanted = false;
    this.media = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: o.channels_num, echoCancellation: !!o.cancel_echo,
        noiseSuppression: !!o.suppress_noise, autoGainControl: !!o.auto_gain,
      },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(new URL("worklet.js", import.meta.url));
    const channels = this.channels = Math.min(2, Math.max(1, o.channels_num));
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

  pause() { this._command("pause"); this._capturing = false; }

  resume() { this._command("resume"); this._capturing = true; }

  /** Stop and wait for the server's summary ({take, duration_ms, error, ...}). */
  stop() {
    this._capturing = false;
    if (this.state === "reconnecting") {  // the buffer goes to the server first, then the stop
      this._stopWanted = true;
      return new Promise((resolve) => { this._onSummary = resolve; });
    }
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve(this.summary || { take: this.take, error: "not recording" });
    }
    const done = new Promise((resolve) => { this._onSummary = resolve; });
    this._command("stop");
    return done;
  }

  _open(rate, channels) {
    return new Promise((resolve, reject) => {
      this._connect({ type: "start", ...this._startFields(rate, channels) }, resolve, reject);
    });
  }

  _startFields(rate, channels) {
    const fields = { rate, channels };
    for (const key of START_FIELDS) fields[key] = this.options[key];
    return fields;
  }

  // One socket: `first` is its opening message; resolve/reject settle start() (first socket only).
  _connect(first, resolve, reject) {
    const o = this.options;
    // A reconnect says so in its URL: a visitor at the count quota may still resume a take.
    const again = first.type === "reconnect" ? "&reconnect=1" : "";
    const ws = new WebSocket(`${o.url}?token=${encodeURIComponent(o.token)}${again}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this._heard = Date.now();
    ws.onopen = () => ws.send(JSON.stringify(first));
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      this._heard = Date.now();
      const msg = JSON.parse(e.data);
      if (msg.type === "started") {
        this.take = msg.take; this.ticket = msg.ticket || null;
        this._live = true; this._capturing = true;
        this._watchSocket();
        if (resolve) resolve(msg);
      } else if (msg.type === "reconnected") {
        this._reconnected(msg);
      }
      this._message(msg);
    };
    ws.onclose = (e) => { if (ws === this.ws) this._closed(e.code, e.reason, reject); };
  }

  _closed(code, reason, reject) {
    this._live = false;
    clearTimeout(this._retry);
    clearInterval(this._watchdog);
    if (this.take && this.ticket && !this.summary && !FINAL_CODES.has(code)) {
      this._reconnect(code);
      return;
    }
    this._end(reason || `connection closed (${code})`, code, reason);
    if (reject) reject(new Error(reason || `connection closed (${code})`));
  }

  _end(error, code, reason) {
    this._capturing = false;
    clearTimeout(this._retry);
    this._release();
    if (this.state !== "stopped") this._setState("stopped", this.summary ? this.summary.error : error);
    const summary = this.summary || { take: this.take, error: reason || error || null, code };
    this.dispatchEvent(new CustomEvent("closed", { detail: { code, reason, summary } }));
    if (this._onSummary) this._onSummary(summary);
  }

  // The socket dropped mid-take: keep capturing, try again with backoff.
  _reconnect(code) {
    if (this.state !== "reconnecting") {
      this._downSince = Date.now();
      this._delay = FIRST_RETRY_MS;
      this._setState("reconnecting", `connection lost (${code}); reconnecting`);
    }
    if (Date.now() - this._downSince > this.options.reconnect_seconds * 1000) {
      this._end(`the connection did not come back within ${this.options.reconnect_seconds} s`, code, null);
      return;
    }
    this._retry = setTimeout(() => {
      this.reconnects += 1;
      this._connect({
        type: "reconnect", ticket: this.ticket, sent: this.sentFrames, acked: this.acked,
        paused: !this._capturing && !this._stopWanted, ...this._startFields(this.context.sampleRate, this.channels),
      }, null, null);
      const ws = this.ws;
      // A socket that opens but never answers (a proxy holding it) is given up too.
      this._retry = setTimeout(() => {
        if (ws !== this.ws || this._live) return;
        this.ws = null;
        ws.close();
        this._closed(1006, "no answer to reconnect", null);
      }, SILENT_SOCKET_MS);
    }, this._delay);
    this._delay = Math.min(MAX_RETRY_MS, this._delay * 2);
  }

  // The server holds the take up to msg.frames: send the rest of the buffer, then catch up on
  // pause/stop. (On another server the take goes on as a new part from the frame acknowledged.)
  _reconnected(msg) {
    const part = msg.take !== this.take;
    this.take = msg.take; this.ticket = msg.ticket;
    this._ack(msg.frames);
    let serverPaused = msg.paused;
    if (serverPaused && this._buffer.length) { this._send(JSON.stringify({ type: "resume" })); serverPaused = false; }
    for (const { data } of this._buffer) this._send(data);
    this._live = true;
    const paused = !this._capturing && !this._stopWanted;
    if (paused !== serverPaused) this._send(JSON.stringify({ type: paused ? "pause" : "resume" }));
    this._watchSocket();
    this._setState(paused ? "paused" : "recording", null);
    if (part) this.dispatchEvent(new CustomEvent("part", { detail: msg }));
    if (this._stopWanted) this._send(JSON.stringify({ type: "stop" }));
  }

  // Let go of the buffered frames the server has: everything before frame `frames` of the take.
  _ack(frames) {
    if (typeof frames !== "number" || frames < this.acked) return;
    this.acked = frames;
    const width = 2 * this.channels;
    while (this._buffer.length) {
      const head = this._buffer[0], n = head.data.byteLength / width;
      if (head.start + n <= frames) this._buffer.shift();
      else {
        if (head.start < frames) {  // the server holds part of this frame
          head.data = head.data.slice((frames - head.start) * width);
          head.start = frames;
        }
        break;
      }
    }
  }

  _watchSocket() {
    clearInterval(this._watchdog);
    const ws = this.ws;
    this._watchdog = setInterval(() => {
      if (ws !== this.ws || this.state !== "recording" || Date.now() - this._heard < SILENT_SOCKET_MS) return;
      this.ws = null;  // events of the silent socket are ignored from now on
      ws.close();
      this._closed(1006, "no word from the server", null);
    }, 1000);
  }

  _message(msg) {
    if (msg.type === "state") this._setState(msg.state, msg.error);
    else if (msg.type === "started") this._setState("recording", null);
    else if (msg.type === "level") { this._ack(msg.frames); this.dispatchEvent(new CustomEvent("level", { detail: msg })); }
    else if (msg.type === "stopped") this.summary = msg;
    else if (msg.type === "error") this.dispatchEvent(new CustomEvent("error", { detail: msg }));
  }

  _setState(state, error) {
    if (state === this.state && !error) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, error: error || null } }));
  }

  _frame(buffer, channels) {
    if (!this._capturing) return;
    const frames = buffer.byteLength / (2 * channels);
    this._buffer.push({ start: this.sentFrames, data: buffer });
    if (this.options.keep_frames) this.kept.push(new Int16Array(buffer.slice(0)));
    this.sentFrames += frames;
    if (this._live) this._send(buffer);
    // What went into the take (nothing while paused), for pictures and meters of the page's own.
    const detail = { samples: new Int16Array(buffer), channels, rate: this.context.sampleRate };
    this.dispatchEvent(new CustomEvent("audio", { detail }));
  }

  _send(data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  _command(type) {
    if (this._live) this._send(JSON.stringify({ type }));
  }

  _release() {
    clearInterval(this._watchdog);
    if (this.media) this.media.getTracks().forEach((t) => t.stop());
    if (this.context) this.context.close();
    this.media = this.context = this.node = null;
  }
}
