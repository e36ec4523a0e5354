// The recorder page: buttons, level meter, clock and the list of takes, on top of micrec.js.
import { MicrecRecorder } from "./micrec.js";

const config = JSON.parse(document.getElementById("micrec-config").textContent);
const $ = (id) => document.getElementById(id);
const FLOOR_DB = -60;
const page = { recorder: null, last: null, levels: 0, recorderOptions: {} };
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
    ...page.recorderOptions,
  });
  page.recorder = rec;
  rec.addEventListener("state", (e) => showState(e.detail.state, e.detail.error));
  rec.addEventListener("level", (e) => showLevel(e.detail));
  rec.addEventListener("closed", (e) => finished(e.detail.summary));
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

function finished(summary) {
  page.last = summary;
  if (summary && summary.error) $("message").textContent = summary.error;
  showLevel({ current: -160, max: summary && summary.error ? -160 : null });
  refreshTakes();
}

function showState(state, error) {
  const el = $("state");
  el.textContent = state;
  el.className = `state ${state}`;
  const rec = state === "recording", paused = state === "paused", busy = rec || paused;
  $("record").disabled = busy || state === "starting";
  $("pause").disabled = !rec;
  $("resume").disabled = !paused;
  $("stop").disabled = !busy;
  if (error) $("message").textContent = error;
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
  const token = encodeURIComponent(config.token);
  const response = await fetch(`api/takes?token=${token}`);  // relative: the app may be mounted
  if (!response.ok) return;
  const takes = await response.json();
  const list = $("takes");
  list.replaceChildren(...takes.map((take) => {
    const li = document.createElement("li");
    const url = `takes/${encodeURIComponent(take.name)}?token=${token}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${take.name} · ${(take.size / 1024).toFixed(0)} KiB`;
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = url;
    const link = document.createElement("a");
    link.href = `${url}&download=1`;
    link.textContent = "download";
    li.append(name, audio, link);
    return li;
  }));
  $("no-takes").hidden = takes.length > 0;
}

setup();
