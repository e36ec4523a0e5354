// The recorder page: buttons, level meter, clock, waveforms and the list of takes, on top of micrec.js.
import { MicrecRecorder } from "./micrec.js";
import { Envelope, LiveWaveform, drawEnvelope, drawNoPreview, envelopeOf } from "./waveform.js";

const config = JSON.parse(document.getElementById("micrec-config").textContent);
const $ = (id) => document.getElementById(id);
const FLOOR_DB = -60;
// Takes larger than this get no thumbnail unless this page recorded them (decoding means
// downloading the whole file).
const MAX_DECODE_BYTES = 16 * 1024 * 1024;
const DECODE_RATE = 8000;  // thumbnails need no more; it keeps decoded takes small
const page = { recorder: null, last: null, levels: 0, recorderOptions: {}, live: null, envelope: null,
               thumbnails: new Map() };
// "Stop when I stop talking": the take ends this many seconds after the last word.
const STOP_AFTER_SILENCE_S = 2;
// For scripts and tests: the recorder, the last take's summary, and options that override the
// page's own for the next take.
window.micrecPage = page;

function setup() {
  const d = config.defaults;
  for (const enc of config.encoders) {
    const opt = new Option(enc.value + (enc.supported ? "" : " (unavailable)"), enc.value);
    opt.disabled = !enc.supported;
    $("encoder").add(opt);
  }
  $("encoder").value = d.audio_encoder;
  $("sample-rate").value = String(d.sample_rate);
  $("channels").value = String(d.channels_num);
  $("cancel-echo").checked = d.cancel_echo;
  $("suppress-noise").checked = d.suppress_noise;
  $("auto-gain").checked = d.auto_gain;
  $("record").onclick = record;
  $("pause").onclick = () => page.recorder.pause();
  $("resume").onclick = () => page.recorder.resume();
  $("stop").onclick = stop;
  refreshTakes();
}

async function record() {
  $("message").textContent = "";
  const rec = new MicrecRecorder({
    token: config.token, audio_encoder: $("encoder").value,
    sample_rate: Number($("sample-rate").value), channels_num: Number($("channels").value),
    bit_rate: config.defaults.bit_rate, cancel_echo: $("cancel-echo").checked,
    suppress_noise: $("suppress-noise").checked, auto_gain: $("auto-gain").checked,
    until_silence: $("until-silence").checked ? STOP_AFTER_SILENCE_S : null,
    drop_seconds: config.limits.drop_seconds, ...page.recorderOptions,
  });
  page.recorder = rec;
  rec.addEventListener("state", (e) => showState(e.detail.state, e.detail.error));
  rec.addEventListener("level", (e) => showLevel(e.detail));
  rec.addEventListener("closed", (e) => finished(e.detail.summary));
  rec.addEventListener("part", (e) => {
    $("message").textContent = `reconnected to another server: the take goes on as ${e.detail.take}`;
  });
  page.envelope = new Envelope();
  page.live = null;
  rec.addEventListener("audio", (e) => showAudio(e.detail));
  showState("starting", null);
  try {
    await rec.start();
  } catch (err) {
    $("message").textContent = String(err.message || err);
    showState("stopped", null);
  }
}

async function stop() {
  $("stop").disabled = true;
  await page.recorder.stop();
}

function showAudio({ samples, channels, rate }) {
  if (!page.live) page.live = new LiveWaveform($("live-wave"), { rate, channels });
  page.live.push(samples);
  page.envelope.push(samples);
}

function finished(summary) {
  if (summary && summary.take && page.envelope && page.envelope.lows.length) {
    page.thumbnails.set(summary.take, { envelope: page.envelope, source: "recorded" });
  }
  page.envelope = null;
  page.last = summary;
  if (summary && summary.error) $("message").textContent = summary.error;
  showLevel({ current: -160, max: summary && summary.error ? -160 : null });
  refreshTakes();
}

function showState(state, error) {
  const el = $("state");
  el.textContent = state;
  el.className = `state ${state}`;
  // While reconnecting the page keeps capturing; only Stop is offered (it sends the rest first).
  const rec = state === "recording", paused = state === "paused", busy = rec || paused || state === "reconnecting";
  $("record").disabled = busy || state === "starting";
  $("pause").disabled = !rec;
  $("resume").disabled = !paused;
  $("stop").disabled = !busy;
  if (error) $("message").textContent = error;
  else if (busy && $("message").textContent.startsWith("connection lost")) $("message").textContent = "";
  if (paused) showLevel({ current: -160, max: null });  // nothing is captured while paused
}

function showLevel(level) {
  if (level.duration_ms !== undefined) $("clock").textContent = clock(level.duration_ms);
  const width = (db) => `${Math.max(0, Math.min(1, (db - FLOOR_DB) / -FLOOR_DB)) * 100}%`;
  $("meter-bar").style.width = width(level.current);
  if (level.max !== null) $("meter-peak").style.left = width(level.max);
  $("level").textContent = level.current > -160 ? `${level.current.toFixed(1)} dBFS` : "-∞ dBFS";
  if (level.max !== null && level.max !== undefined) {
    $("peak").textContent = level.max > -160 ? `(max ${level.max.toFixed(1)})` : "(max -∞)";
  }
  page.levels += 1;
}

function clock(ms) {
  const s = ms / 1000;
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

async function refreshTakes() {
  // The visitor cookie says whose takes: no token in these URLs, so a copied link carries no
  // credential. Relative: the app may be mounted.
  const response = await fetch("api/takes");
  if (!response.ok) return;
  const takes = await response.json();
  const list = $("takes");
  list.replaceChildren(...takes.map((take) => {
    const li = document.createElement("li");
    const url = `takes/${encodeURIComponent(take.name)}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${take.name} · ${(take.size / 1024).toFixed(0)} KiB`;
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = url;
    const link = document.createElement("a");
    link.href = `${url}?download=1`;
    link.textContent = "download";
    const thumb = document.createElement("canvas");
    thumb.className = "thumb";
    thumb.width = 240;
    thumb.height = 40;
    thumb.dataset.take = take.name;
    li.append(name, thumb, audio, link);
    return li;
  }));
  $("no-takes").hidden = takes.length > 0;
  for (const take of takes) await showThumbnail(take, list.querySelector(`canvas[data-take="${take.name}"]`));
}

// A take's thumbnail: from the audio this page recorded, else decoded in the page.
async function showThumbnail(take, canvas) {
  if (!canvas) return;
  let known = page.thumbnails.get(take.name);
  if (!known) {
    known = { envelope: await decodedEnvelope(take), source: "decoded" };
    if (!known.envelope) known.source = "none";
    page.thumbnails.set(take.name, known);
  }
  if (known.envelope) drawEnvelope(canvas, known.envelope); else drawNoPreview(canvas);
  canvas.dataset.source = known.source;
}

async function decodedEnvelope(take) {
  if (take.size > MAX_DECODE_BYTES) return null;
  try {
    const response = await fetch(`takes/${encodeURIComponent(take.name)}`);
    if (!response.ok) return null;
    const audio = await new OfflineAudioContext(1, 1, DECODE_RATE).decodeAudioData(await response.arrayBuffer());
    return envelopeOf(audio);
  } catch {
    return null;  // a format this browser does not decode (AMR, raw PCM)
  }
}

setup();
