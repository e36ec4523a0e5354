"""``docs/benchmarks.md`` and its plot, from the results of one run.

The hand-written analysis lives in ``benchmarks/peers/notes.md`` and is appended as it is, so
that a new run refreshes every figure without losing it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .tools import AAC, ENCODERS, FLAC, OPUS, TOOLS, WAV

HERE = Path(__file__).resolve().parent
PLOT_NAME = "benchmarks-cpu.png"
REFERENCE = "record"
MAIN_CONFIG = "44.1 kHz stereo"
#: Issue 19's targets: steady CPU as ratios to peers measured in the same run and condition.
CLI_RATIO_TARGET = 0.75  # the CLI with its meter, x record's pipeline, every encoder
PLAIN_RATIO_TARGET = 0.5  # a plain API take and --quiet, x record's pipeline, every encoder
ARECORD_RATIO_TARGET = 1.0  # a plain API take and --quiet, x arecord -D pulse, WAV
KILL_LOSS_TARGET_S = 0.5
#: Issue 10's targets, kept.
API_STOP_TARGET_MS = 25
CLI_STOP_TARGET_MS = 30
FIRST_SAMPLE_TARGET_MS = 30
FIRST_AUDIO_TARGET_MS = {WAV: 200, FLAC: 200, OPUS: 400, AAC: 400}
RSS_TARGET_MB = {WAV: 40, FLAC: 40, OPUS: 65, AAC: 65}
NODE_LATENCY_TARGET_MS = 2048 / 48000 * 1000
OFFLINE_TARGET = {WAV: 300, FLAC: 50, OPUS: 50, AAC: 50}
IMPORT_TARGET_MS = 100
#: micrec's rows: (tool, CPU target against record's pipeline, whether arecord's applies to WAV).
MODES = (("micrec-cli", CLI_RATIO_TARGET, False), ("micrec-api", PLAIN_RATIO_TARGET, True),
         ("micrec-quiet", PLAIN_RATIO_TARGET, True), ("micrec-levels", None, False))
_LABEL = {t.key: t.label.replace("|", "\\|") for t in TOOLS}
_CONDITION = {"keepalive": "other clients keep the source at {ka} ms packets",
              "alone": "the recorder is the source's only client"}
_SERVER = {"pulseaudio": "PulseAudio", "pipewire": "PipeWire"}

_METHOD = """\
## How it is measured

- **Signal**: a private sound server (`micrec.vmic.VirtualMicrophone`: PulseAudio 16, or PipeWire
  with WirePlumber and pipewire-pulse) with one virtual microphone (44.1 kHz stereo) that hears
  one continuous 1 kHz sine at -6 dBFS over a white noise at -30 dBFS RMS for the whole run (a
  `pacat` fed by the harness; the noise repeats every 7 s). Every tool records the server's
  default source.
- **Conditions**: *keep-alive*: other clients keep the source at {ka} ms packets (PulseAudio: a
  silent stream on the feed; both servers: the reference capture below), as when a browser or a
  call also listens; *alone*: every other client (feed, keep-alive, reference) asks for 2 s (the
  reference on PipeWire 100 ms, above the graph's largest quantum of 42.7 ms), so the recorder
  under test sets the source's pace, as on a desktop where it alone records.
- **CPU s/s**: CPU seconds per recorded second of the tool's whole process tree. *steady*: the
  sum of every thread's `/proc/<pid>/task/<tid>/schedstat` run time (ns) over a window that opens
  1 s after the first audio reached the file and closes at the stop request (about 9 s of a
  take). A take lasts 10 s plus a phase in [0, 1) s drawn for it (the same in every run), so
  that stops fall anywhere within a recorder's blocks, not always at a whole second.
  *wake-ups/s*: the sum of the same threads' times scheduled in (schedstat's third
  field) over the window. *all*: the `wait4()` rusage of every process (start-up, stop and
  finalization included) over the take; for the API it is the driver's own `process_time()` from
  just before `start_recording()` to after `stop_recording()` (the driver's interpreter start and
  warm-up take are not the API's cost). The sound server's own CPU is not counted for anyone.
- **Modes**: *CLI with meter*: `micrec record OUT` with its meter drawn on stderr (a file here,
  not a terminal); *plain API take*: `AudioRecorder().start_recording()`, then nothing until
  `stop_recording()` (`benchmarks/peers/api_driver.py`, in a process of its own); *levels
  polled*: the same with `get_amplitude()` called every 50 ms; `--quiet`: the CLI without meter.
- **tail** (ms): how the end of a stopped take compares with what the server had sent by the
  stop. An independent `parec` of the microphone (`benchmarks/peers/reference.py`) runs for the
  whole condition; a thread timestamps each read (CLOCK_MONOTONIC, which every process shares),
  so the time the server sent any of its samples follows (the lower envelope of read time minus
  samples so far ÷ rate over the reads within 8 s: audio cannot arrive before it is sent). The
  take's file is decoded with ffmpeg (mono, 44.1 kHz), trailing encoder padding is cut (10 ms
  windows under a quarter of the median level), and its last 0.5 s is found in the reference by
  cross-correlation band-passed to 2-12 kHz (only the noise is there: the tone would match every
  millisecond), searched from 2.5 s before the stop to 1 s after; a match whose peak is not twice
  the next best (outside ±2 ms) counts as not found ("—"). The tail is the time the server sent
  the file's last sample minus the time of the stop request (tools: SIGINT to the process group;
  API: the `stop_recording()` call). 0 is a complete take; -20 ms is within the keep-alive's
  packet (the server had not sent what was not yet in a packet); -400 ms lost 0.4 s; positive
  values are audio the tool still read after the stop. In the alone condition the source sends
  in the recorder's own packets, and a stop that does not ask the server for what it holds shows
  up as the audio between the last packet and the stop.
- **kill loss** (s): a separate take (in the keep-alive condition), SIGKILL to the whole group 3 s
  and a phase in [0, 1) s after the start; the kill time minus the time the server sent the last
  sample ffmpeg reads from the file, found as for the tail. *(n s)*: the seconds ffmpeg decodes;
  *sf*: whether libsndfile reads it; ✗: ffmpeg fails.
- **RSS**: peak resident set (`VmHWM`) summed over the tree's processes (both sides of a pipe).
  The page cache is dropped before the run where the harness may (root): freshly written
  libraries (a new install) are cached in large folios that inflate every mapping's RSS, by
  up to 10 MB for micrec's AAC take (`drop_page_cache` in `benchmarks/peers/compare.py`).
- **first sample** (API only): `start_recording()` call → first block handed to micrec's pipeline
  by the capture backend (a wrapper around the Pulse backend notes it), in a warm process.
- **first audio**: start (tools: launch; API: `start_recording()` call) → the file first holds
  encoded audio, found by polling the container (RIFF `data`, FLAC frames after the metadata,
  an Ogg page with a positive granule, an MP4 `mdat` with payload).
- **stop**: tools: SIGINT to the process group (as Ctrl-C) → every process exited; API:
  `stop_recording()` call → return (file finalized).
- **validity**: ffprobe/ffmpeg (Debian's binaries) decode, and libsndfile reads WAV/FLAC/Ogg;
  *dur. err* is decoded length minus wall time from start to stop request (negative by the start
  latency); *dropouts* counts 10 ms windows where the decoded tone's amplitude or phase jumps.
- **rows**: the default run has the rows the targets need (record's pipeline, arecord, micrec's
  CLI with and without meter, the plain API take) at 44.1 kHz stereo, every encoder on PulseAudio
  and WAV on PipeWire, one take each; `--targets` every encoder everywhere; `--full` every tool
  and mode, 2 takes, 16 kHz mono. The sounddevice script writes Opus at 48 kHz (libsndfile's Ogg
  Opus admits only 8/12/16/24/48 kHz); ffmpeg and micrec resample Opus to 48 kHz themselves. sox
  and arecord have no Opus/AAC writer here.
- **offline**: `micrec.backends.TestBackend(realtime=False, after_end="stop")` feeding the tone
  through `AudioRecorder` as fast as the worker takes it (start → stop returned), x real time.
  DSP on = `auto_gain=True, suppress_noise=True`; "n/a" where that raises FeatureUnavailableError.
"""


def _num(value: Any, fmt: str, scale: float = 1.0) -> str:
    return "—" if value is None else format(value * scale, fmt)


def _ok(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        good, total = value.split("/")
        return "✓" if good == total else f"✗ {value}"
    return "✓" if value else "✗"


def _killed(row: dict[str, Any]) -> str:
    killed = row.get("killed")
    if not killed:
        return "—"
    if not killed["ffmpeg_ok"]:
        return "✗ unreadable" if not killed["seconds"] else f"✗ ({killed['seconds']:.1f} s)"
    sndfile = "" if killed["sndfile_ok"] is None else (", sf ✓" if killed["sndfile_ok"] else ", sf ✗")
    loss = "loss —" if killed.get("loss_s") is None else f"loss {killed['loss_s']:.2f} s"
    return f"{loss} ({killed['seconds']:.1f} s{sndfile})"


def _live_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| tool | encoder | CPU s/s steady | wake-ups/s | CPU s/s all | peak RSS MB | first sample ms | "
             "first audio ms | stop ms | tail ms | kill -9 @3-4 s | file | ffmpeg | libsndfile | dur. err ms | "
             "dropouts |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|"]
    for r in rows:
        if r.get("skipped"):
            if r["skipped"] != "cannot write it":
                lines.append(f"| {_LABEL[r['tool']]} | {r['encoder']} | n/a: {r['skipped']} |||||||||||||| ")
            continue
        fmt = f"{r['codec']} {r['rate'] / 1000:g}k/{r['channels']}" if r.get("codec") else "—"
        lines.append(
            f"| {_LABEL[r['tool']]} | {r['encoder']} | {_num(r['cpu_steady'], '.4f')} | "
            f"{_num(r.get('wakeups_steady'), '.0f')} | {_num(r['cpu_total'], '.4f')} | "
            f"{_num(r['rss_mb'], '.0f')} | {_num(r['first_sample_s'], '.0f', 1000)} | "
            f"{_num(r['first_audio_s'], '.0f', 1000)} | {_num(r['stop_s'], '.0f', 1000)} | "
            f"{_num(r.get('tail_ms'), '+.0f')} | {_killed(r)} | {fmt} | "
            f"{_ok(r['ffmpeg_ok'])} | {_ok(r['sndfile_ok'])} | {_num(r['duration_error_s'], '+.0f', 1000)} | "
            f"{_num(r['dropouts'], '.0f')} |")
    return lines


def _find(rows: list[dict[str, Any]], tool: str, encoder: str) -> dict[str, Any] | None:
    for r in rows:
        if r["tool"] == tool and r["encoder"] == encoder and not r.get("skipped"):
            return r
    return None


def _stages(results: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(server, condition, its 44.1 kHz stereo rows) in the order they ran."""
    seen: list[tuple[str, str]] = []
    for r in results["live"]:
        key = (r.get("server", "pulseaudio"), r.get("condition", "keepalive"))
        if key not in seen:
            seen.append(key)
    return [(server, condition, [r for r in results["live"] if r.get("server", "pulseaudio") == server
                                 and r.get("condition", "keepalive") == condition and r["config"] == MAIN_CONFIG])
            for server, condition in seen]


def _stage_title(server: str, condition: str, keepalive_ms: int) -> str:
    return f"{_SERVER[server]}, {_CONDITION[condition].format(ka=keepalive_ms)}"


def _ratio(r: dict[str, Any] | None, p: dict[str, Any] | None) -> float | None:
    if r is None or p is None or not p.get("cpu_steady"):
        return None
    return float(r["cpu_steady"] / p["cpu_steady"])


def _kill_loss(r: dict[str, Any] | None) -> float | None:
    return None if r is None or not r.get("killed") else r["killed"].get("loss_s")


def _default_modes(rows: list[dict[str, Any]]) -> list[str]:
    """The lead table: the modes users run by default against record's pipeline, with completeness."""
    lines = ["| encoder | record's pipeline CPU s/s | CLI with meter CPU s/s | x record | plain API take CPU s/s | "
             "x record | tail ms: record / CLI / API | kill loss s: record / CLI / API |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for encoder in ENCODERS:
        ref, cli, api = (_find(rows, k, encoder) for k in (REFERENCE, "micrec-cli", "micrec-api"))
        if ref is None and cli is None and api is None:
            continue
        tails = " / ".join(_num(None if r is None else r.get("tail_ms"), "+.0f") for r in (ref, cli, api))
        kills = " / ".join(_num(_kill_loss(r), ".2f") for r in (ref, cli, api))
        lines.append(f"| {encoder} | {_num(None if ref is None else ref['cpu_steady'], '.4f')} | "
                     f"{_num(None if cli is None else cli['cpu_steady'], '.4f')} | {_num(_ratio(cli, ref), '.2f')} | "
                     f"{_num(None if api is None else api['cpu_steady'], '.4f')} | {_num(_ratio(api, ref), '.2f')} | "
                     f"{tails} | {kills} |")
    return lines


Add = Callable[[str, str, str, str, "float | None", str, Callable[[float], bool]], None]


def _target_rows(results: dict[str, Any]) -> list[str]:
    lines = ["| where | target | encoder | goal | measured | met |", "|---|---|---|---:|---:|---|"]
    ka = results.get("keepalive_ms", 20)

    def add(where: str, name: str, encoder: str, goal: str, value: float | None, fmt: str,
            ok: Callable[[float], bool]) -> None:
        shown = "—" if value is None else format(value, fmt)
        met = "—" if value is None else ("yes" if ok(value) else "**no**")
        lines.append(f"| {where} | {name} | {encoder} | {goal} | {shown} | {met} |")

    for server, condition, rows in _stages(results):
        where = f"{_SERVER[server]}, {f'keep-alive {ka} ms' if condition == 'keepalive' else 'alone'}"
        _mode_rows(rows, where, add)
        if (server, condition) == ("pulseaudio", "keepalive"):
            _issue10_rows(rows, where, add)
        if server == "pipewire":
            _pipewire_target_rows(rows, where, add)
    for off in results["offline"]:
        goal_x = OFFLINE_TARGET[off["encoder"]]
        add("offline", "x real time (DSP off)", off["encoder"], f"≥ {goal_x}", off.get("dsp_off"), ".0f",
            _at_least(goal_x))
    if results.get("import_ms") is not None:
        add("—", "`import micrec` ms", "—", f"≤ {IMPORT_TARGET_MS}", results["import_ms"], ".0f",
            _at_most(IMPORT_TARGET_MS))
    return lines


def _mode_rows(rows: list[dict[str, Any]], where: str, add: Add) -> None:
    """Issue 19's targets for micrec's modes: CPU against the peers, and the kill loss."""
    for encoder in ENCODERS:
        ref, arecord = _find(rows, REFERENCE, encoder), _find(rows, "arecord", encoder)
        for tool, goal, vs_arecord in MODES:
            r = _find(rows, tool, encoder)
            if r is None:
                continue
            if goal is not None:
                add(where, f"CPU vs record's pipeline, {_LABEL[tool]}", encoder, f"≤ {goal}x", _ratio(r, ref),
                    ".2f", _at_most(goal))
            if vs_arecord and encoder == WAV:
                add(where, f"CPU vs arecord -D pulse, {_LABEL[tool]}", encoder, f"≤ {ARECORD_RATIO_TARGET}x",
                    _ratio(r, arecord), ".2f", _at_most(ARECORD_RATIO_TARGET))
            if r.get("killed"):
                add(where, f"kill loss s, {_LABEL[tool]}", encoder, f"≤ {KILL_LOSS_TARGET_S}", _kill_loss(r),
                    ".2f", _at_most(KILL_LOSS_TARGET_S))


def _issue10_rows(rows: list[dict[str, Any]], where: str, add: Add) -> None:
    """Issue 10's latency and memory targets, in the main condition."""
    for encoder in ENCODERS:
        cli, api = _find(rows, "micrec-cli", encoder), _find(rows, "micrec-api", encoder)
        if api is not None:
            add(where, "API stop_recording() ms", encoder, f"≤ {API_STOP_TARGET_MS}", _scaled(api["stop_s"]), ".0f",
                _at_most(API_STOP_TARGET_MS))
            add(where, "API start → first captured sample ms", encoder, f"≤ {FIRST_SAMPLE_TARGET_MS}",
                _scaled(api["first_sample_s"]), ".0f", _at_most(FIRST_SAMPLE_TARGET_MS))
        if cli is not None:
            add(where, "CLI SIGINT → exit ms", encoder, f"≤ {CLI_STOP_TARGET_MS}", _scaled(cli["stop_s"]), ".0f",
                _at_most(CLI_STOP_TARGET_MS))
            add(where, "CLI launch → first audio in file ms", encoder, f"≤ {FIRST_AUDIO_TARGET_MS[encoder]}",
                _scaled(cli["first_audio_s"]), ".0f", _at_most(FIRST_AUDIO_TARGET_MS[encoder]))
            add(where, "CLI peak RSS MB", encoder, f"≤ {RSS_TARGET_MB[encoder]}", cli["rss_mb"], ".0f",
                _at_most(RSS_TARGET_MB[encoder]))


def _pipewire_target_rows(rows: list[dict[str, Any]], where: str, add: Add) -> None:
    """PipeWire's targets: micrec's node.latency, the quantum, xruns."""
    baseline = min((r["pw_quantum_min"] for r in rows if r["tool"] == REFERENCE and not r.get("skipped")
                    and r.get("pw_quantum_min")), default=None)
    for encoder in ENCODERS:
        for tool in ("micrec-cli", "micrec-api"):
            r = _find(rows, tool, encoder)
            if r is None:
                continue
            add(where, f"node.latency ms, {_LABEL[tool]}", encoder, f"≥ {NODE_LATENCY_TARGET_MS:.1f}",
                r.get("pw_node_latency_ms"), ".1f", _at_least(NODE_LATENCY_TARGET_MS - 0.05))
            if baseline is not None:
                add(where, f"smallest quantum, {_LABEL[tool]}", encoder, f"≥ record's ({baseline})",
                    r.get("pw_quantum_min"), ".0f", _at_least(baseline))
            add(where, f"xruns logged + dropouts in the file, {_LABEL[tool]}", encoder, "0",
                (r.get("pw_xruns") or 0) + (r.get("dropouts") or 0), ".0f", _at_most(0))


def _threads_table(rows: list[dict[str, Any]]) -> list[str]:
    """micrec's threads over the steady window: CPU s/s (wake-ups/s) each."""
    lines = ["| mode | encoder | CPU s/s (wake-ups/s) per thread, by creation order |", "|---|---|---|"]
    for r in rows:
        if r.get("skipped") or not r.get("threads"):
            continue
        busy = [(name, cpu, wakes) for name, (cpu, wakes) in r["threads"].items() if cpu > 0 or wakes > 0]
        cells = ", ".join(f"{name} {cpu:.4f} ({wakes:.0f})" for name, cpu, wakes in busy)
        lines.append(f"| {_LABEL[r['tool']]} | {r['encoder']} | {cells} |")
    return lines


def _pipewire_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| tool | encoder | node.latency ms | quantum (median) | quantum (smallest) | cycles | xruns logged | "
             "dropouts | CPU s/s steady |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("skipped"):
            continue
        lines.append(f"| {_LABEL[r['tool']]} | {r['encoder']} | {_num(r.get('pw_node_latency_ms'), '.1f')} | "
                     f"{_num(r.get('pw_quantum'), '.0f')} | {_num(r.get('pw_quantum_min'), '.0f')} | "
                     f"{_num(r.get('pw_cycles'), '.0f')} | {_num(r.get('pw_xruns'), '.0f')} | "
                     f"{_num(r.get('dropouts'), '.0f')} | {_num(r['cpu_steady'], '.4f')} |")
    return lines


def _at_most(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


def _at_least(limit: float) -> Callable[[float], bool]:
    return lambda value: value >= limit


def _scaled(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _offline_table(results: dict[str, Any]) -> list[str]:
    lines = [f"| encoder | DSP off x real time | DSP on x real time |  ({results['offline_seconds']} s of "
             "44.1 kHz stereo per take, median) |", "|---|---:|---:|---|"]
    for off in results["offline"]:
        if off.get("skipped"):
            lines.append(f"| {off['encoder']} | n/a | n/a | {off['skipped']} |")
            continue
        on = "n/a (FeatureUnavailableError)" if off["dsp_on"] is None else f"{off['dsp_on']:.0f}x"
        lines.append(f"| {off['encoder']} | {off['dsp_off']:.0f}x | {on} | |")
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Steady CPU per encoder per tool (44.1 kHz stereo), with the targets; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -r benchmarks/requirements.txt): no plot")
        return False
    tools = [t for t in TOOLS if any(_find(rows, t.key, e) for e in ENCODERS)]
    width = 0.8 / max(1, len(tools))
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    for i, tool in enumerate(tools):
        xs, ys = [], []
        for j, encoder in enumerate(ENCODERS):
            r = _find(rows, tool.key, encoder)
            if r is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r["cpu_steady"])
        ax.bar(xs, ys, width, label=tool.label, hatch="//" if tool.micrec else None)
    for j, encoder in enumerate(ENCODERS):
        ref = _find(rows, REFERENCE, encoder)
        if ref is not None:  # the targets: a share of record's pipeline in the same run
            for ratio, style in ((CLI_RATIO_TARGET, "dashed"), (PLAIN_RATIO_TARGET, "dotted")):
                ax.hlines(ratio * ref["cpu_steady"], j - 0.45, j + 0.45, colors="black", linestyles=style,
                          label=f"target ({ratio}x record)" if j == 0 else "_nolegend_")
    ax.set_xticks(range(len(ENCODERS)), [e for e in ENCODERS])
    ax.set_ylabel("CPU seconds per recorded second (steady)")
    ax.set_title("Recording 44.1 kHz stereo, PulseAudio, keep-alive at 20 ms (median of runs)")
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(results: dict[str, Any], out: Path) -> Path:
    stages = _stages(results)
    ka = results.get("keepalive_ms", 20)
    lead = next((rows for server, cond, rows in stages if (server, cond) == ("pulseaudio", "keepalive")),
                stages[0][2] if stages else [])
    has_plot = plot(lead, out / PLOT_NAME)
    voice = [r for r in results["live"] if r["config"] != MAIN_CONFIG]
    m = results["machine"]
    lines = [
        "# Benchmarks: micrec against the recorders users would pick instead",
        "",
        f"Generated by `{results['command']}` on {results['date']} (median of {results['runs']} takes of "
        f"{results['seconds']:g} s per row; the run took {results.get('took_s', 0) / 60:.0f} minutes). "
        "Re-run after the README's set-up with `.venv/bin/python -m benchmarks` (under 10 minutes) or "
        "`--targets` (every target row; the plot needs `pip install -r benchmarks/requirements.txt`).",
        "",
        f"Machine: {m['cpu']}, {m['memory']}, {m['os']}, Python {m['python']}; {m['pulseaudio']}; "
        f"{m.get('pipewire', 'PipeWire')}; {m['ffmpeg']}; {m['sox']}; {m['arecord']}. No sound card: the "
        "microphone is virtual.",
        "",
        f"Load average (1 min) at the start: {results['load_before'][0]:.1f}, at the end: "
        f"{results['load_after'][0]:.1f}; per row, in `docs/benchmarks-results.json`. Other work on the machine "
        "inflates every tool's figures alike; the ratios between tools are the stabler result. "
        f"Page cache: {results.get('page_cache', 'as found')} (see RSS below).",
        "",
        "## micrec as users run it (44.1 kHz stereo)",
        "",
        "The CLI draws its level meter unless told `--quiet`; a script or a Flet app that starts and stops "
        "a take watches nothing (a plain API take). Both against record's pipeline (`parecord | ffmpeg`, "
        "which shows no levels), in the same run and condition. *tail*: stop request → the last fed audio "
        "in the file (negative: audio the server had sent before the stop is missing); *kill loss*: SIGKILL → "
        "the last fed audio ffmpeg reads from the file. `--quiet` and the watched API take have rows of "
        "their own below.",
        "",
    ]
    for server, condition, rows in stages:
        lines += [f"### {_stage_title(server, condition, ka)}", "", *_default_modes(rows), ""]
    lines += ["## Targets", "", *_target_rows(results), ""]
    for server, condition, rows in stages:
        lines += [f"## Every row: {_stage_title(server, condition, ka)}", "", *_live_table(rows), ""]
        if server == "pipewire":
            lines += ["What PipeWire's graph did (node.latency: the smallest one of the tool's capture streams, "
                      "pw-dump, at the end of the steady window; quantum: of every graph cycle in the steady "
                      "window, pw-profiler; xruns: 'client too slow' warnings the daemons logged meanwhile):", "",
                      *_pipewire_table(rows), ""]
    if has_plot:
        lines += [f"![steady CPU per encoder per tool]({PLOT_NAME})", ""]
    if voice:
        lines += ["## 16 kHz mono (PulseAudio, keep-alive)", "", *_live_table(voice), ""]
    lines += ["## micrec's threads", "", "Over each take's steady window (schedstat); a Python thread has "
              "its process's name, so threads are numbered in the order they were created.", ""]
    for server, condition, rows in stages:
        lines += [f"### {_stage_title(server, condition, ka)}", "", *_threads_table(rows), ""]
    if results["offline"]:
        lines += ["## Offline throughput", "", *_offline_table(results), "",
                  f"`import micrec`: {results['import_ms']:.0f} ms (median of 7 fresh interpreters).", ""]
    lines += [_METHOD.format(ka=ka)]
    notes = HERE / "notes.md"
    if notes.exists():
        lines += [notes.read_text()]
    path = out / "benchmarks.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
