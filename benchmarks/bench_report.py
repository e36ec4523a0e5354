"""``docs/benchmarks.md`` and its plot, from the results of one run.

The hand-written analysis lives in ``benchmarks/notes.md`` and is appended as it is, so that a
new run refreshes every figure without losing it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_tools import AAC, ENCODERS, FLAC, OPUS, TOOLS, WAV

HERE = Path(__file__).resolve().parent
PLOT_NAME = "benchmarks-cpu.png"
REFERENCE = "record"
#: Issue 10's targets (steady CPU as ratios to peers measured in the same run).
CPU_RATIO_TARGET = 0.5  # x record's pipeline, every encoder
ARECORD_RATIO_TARGET = 1.0  # x arecord -D pulse, WAV
API_STOP_TARGET_MS = 25
CLI_STOP_TARGET_MS = 30
FIRST_SAMPLE_TARGET_MS = 30
FIRST_AUDIO_TARGET_MS = {WAV: 200, FLAC: 200, OPUS: 400, AAC: 400}
RSS_TARGET_MB = {WAV: 40, FLAC: 40, OPUS: 65, AAC: 65}
NODE_LATENCY_TARGET_MS = 2048 / 48000 * 1000
OFFLINE_TARGET = {WAV: 300, FLAC: 50, OPUS: 50, AAC: 50}
IMPORT_TARGET_MS = 100
_LABEL = {t.key: t.label.replace("|", "\\|") for t in TOOLS}

_METHOD = """\
## How it is measured

- **Signal**: a private PulseAudio server (`micrec.vmic.VirtualMicrophone`) with one virtual
  microphone (44.1 kHz stereo) that hears one continuous 1 kHz sine at -6 dBFS for the whole run
  (a `pacat` fed by the harness). Every tool records the server's default source.
- **CPU s/s**: CPU seconds per recorded second of the tool's whole process tree. *steady*: the
  sum of every thread's `/proc/<pid>/task/<tid>/schedstat` runtime (ns) over a window that opens
  1 s after the first audio reached the file (at the latest 3 s after the start) and closes at the
  stop request. *all*: the `wait4()` rusage of every process (start-up, stop and finalization
  included) over the take; for the API it is the driver's own `process_time()` from just before
  `start_recording()` to after `stop_recording()` (the driver's interpreter start and warm-up
  take are not the API's cost). The PulseAudio server's own CPU is not counted for anyone.
- **RSS**: peak resident set (`ru_maxrss`) summed over the tree's processes (both sides of a pipe).
  The page cache is dropped before the run where the harness may (root): freshly written
  libraries (a new install) are cached in large folios that inflate every mapping's RSS, by
  up to 10 MB for micrec's AAC take (`drop_page_cache` in `benchmarks/run.py`).
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
- **kill -9**: a separate take, SIGKILL to the whole group 3 s after the start; then the same
  decoders; the figure is the seconds ffmpeg decodes (✗: it fails).
- **rows**: kill -9 takes only at 44.1 kHz stereo, to keep a full run near 20 minutes. The sounddevice script writes
  Opus at 48 kHz (libsndfile's Ogg Opus admits only 8/12/16/24/48 kHz); ffmpeg and micrec
  resample Opus to 48 kHz themselves. sox and arecord have no Opus/AAC writer here.
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
    return f"{killed['seconds']:.1f} s{sndfile}"


def _live_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| tool | encoder | CPU s/s steady | CPU s/s all | peak RSS MB | first sample ms | "
             "first audio ms | stop ms | file | ffmpeg | libsndfile | dur. err ms | dropouts | kill -9 @3 s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---|"]
    for r in rows:
        if r.get("skipped"):
            if r["skipped"] != "cannot write it":
                lines.append(f"| {_LABEL[r['tool']]} | {r['encoder']} | n/a: {r['skipped']} |||||||||||| ")
            continue
        fmt = f"{r['codec']} {r['rate'] / 1000:g}k/{r['channels']}" if r.get("codec") else "—"
        lines.append(
            f"| {_LABEL[r['tool']]} | {r['encoder']} | {_num(r['cpu_steady'], '.4f')} | "
            f"{_num(r['cpu_total'], '.4f')} | "
            f"{_num(r['rss_mb'], '.0f')} | {_num(r['first_sample_s'], '.0f', 1000)} | "
            f"{_num(r['first_audio_s'], '.0f', 1000)} | {_num(r['stop_s'], '.0f', 1000)} | {fmt} | "
            f"{_ok(r['ffmpeg_ok'])} | {_ok(r['sndfile_ok'])} | {_num(r['duration_error_s'], '+.0f', 1000)} | "
            f"{_num(r['dropouts'], '.0f')} | {_killed(r)} |")
    return lines


def _find(rows: list[dict[str, Any]], tool: str, encoder: str) -> dict[str, Any] | None:
    for r in rows:
        if r["tool"] == tool and r["encoder"] == encoder and not r.get("skipped"):
            return r
    return None


def _ratio_table(rows: list[dict[str, Any]], key: str, title: str) -> list[str]:
    peers = [t.key for t in TOOLS if not t.micrec]
    lines = [f"| {title} | encoder | " + " | ".join(_LABEL[p] for p in peers) + " |",
             "|---|---|" + "---:|" * len(peers)]
    for mine in ("micrec-cli", "micrec-api"):
        for encoder in ENCODERS:
            r = _find(rows, mine, encoder)
            if r is None or r.get(key) is None:
                continue
            cells = []
            for peer in peers:
                p = _find(rows, peer, encoder)
                cells.append("—" if p is None or not p.get(key) else f"{r[key] / p[key]:.2f}x")
            lines.append(f"| {_LABEL[mine]} | {encoder} | " + " | ".join(cells) + " |")
    return lines


def _target_rows(results: dict[str, Any]) -> list[str]:
    main = [r for r in _on(results["live"], "pulseaudio") if r["config"] == "44.1 kHz stereo"]
    pipewire = _on(results["live"], "pipewire")
    lines = ["| target (issue 10) | encoder | goal | measured | met |", "|---|---|---:|---:|---|"]

    def add(name: str, encoder: str, goal: str, value: float | None, fmt: str, ok: Callable[[float], bool]) -> None:
        shown = "—" if value is None else format(value, fmt)
        met = "—" if value is None else ("yes" if ok(value) else "**no**")
        lines.append(f"| {name} | {encoder} | {goal} | {shown} | {met} |")

    for encoder in ENCODERS:
        ref, arecord = _find(main, REFERENCE, encoder), _find(main, "arecord", encoder)
        cli, api = _find(main, "micrec-cli", encoder), _find(main, "micrec-api", encoder)
        for tool, r in (("micrec-cli", cli), ("micrec-api", api)):
            if r is None:
                lines.append(f"| {_LABEL[tool]} | {encoder} | | not run: {_skip_of(main, tool, encoder)} | |")
                continue
            if ref is not None:
                add(f"steady CPU vs record's pipeline, {_LABEL[tool]}", encoder, f"≤ {CPU_RATIO_TARGET}x",
                    r["cpu_steady"] / ref["cpu_steady"], ".2f", _at_most(CPU_RATIO_TARGET))
            if arecord is not None:
                add(f"steady CPU vs arecord -D pulse, {_LABEL[tool]}", encoder, f"≤ {ARECORD_RATIO_TARGET}x",
                    r["cpu_steady"] / arecord["cpu_steady"], ".2f", _at_most(ARECORD_RATIO_TARGET))
        if api is not None:
            add("API stop_recording() ms", encoder, f"≤ {API_STOP_TARGET_MS}", _scaled(api["stop_s"]), ".0f",
                _at_most(API_STOP_TARGET_MS))
            add("API start → first captured sample ms", encoder, f"≤ {FIRST_SAMPLE_TARGET_MS}",
                _scaled(api["first_sample_s"]), ".0f", _at_most(FIRST_SAMPLE_TARGET_MS))
        if cli is not None:
            add("CLI SIGINT → exit ms", encoder, f"≤ {CLI_STOP_TARGET_MS}", _scaled(cli["stop_s"]), ".0f",
                _at_most(CLI_STOP_TARGET_MS))
            add("CLI launch → first audio in file ms", encoder, f"≤ {FIRST_AUDIO_TARGET_MS[encoder]}",
                _scaled(cli["first_audio_s"]), ".0f", _at_most(FIRST_AUDIO_TARGET_MS[encoder]))
            add("CLI peak RSS MB", encoder, f"≤ {RSS_TARGET_MB[encoder]}", cli["rss_mb"], ".0f",
                _at_most(RSS_TARGET_MB[encoder]))
    lines += _pipewire_target_rows(pipewire, add)
    for off in results["offline"]:
        goal_x = OFFLINE_TARGET[off["encoder"]]
        add("offline x real time (DSP off)", off["encoder"], f"≥ {goal_x}", off.get("dsp_off"), ".0f",
            _at_least(goal_x))
    add("`import micrec` ms", "—", f"≤ {IMPORT_TARGET_MS}", results["import_ms"], ".0f",
        _at_most(IMPORT_TARGET_MS))
    return lines


def _pipewire_target_rows(rows: list[dict[str, Any]], add: Callable[..., None]) -> list[str]:
    """PipeWire's targets, added through ``add``: micrec's node.latency, the quantum, xruns."""
    baseline = min((r["pw_quantum_min"] for r in rows if r["tool"] == REFERENCE and not r.get("skipped")
                    and r.get("pw_quantum_min")), default=None)
    for encoder in ENCODERS:
        for tool in ("micrec-cli", "micrec-api"):
            r = _find(rows, tool, encoder)
            if r is None:
                continue
            add(f"PipeWire node.latency ms, {_LABEL[tool]}", encoder, f"≥ {NODE_LATENCY_TARGET_MS:.1f}",
                r.get("pw_node_latency_ms"), ".1f", _at_least(NODE_LATENCY_TARGET_MS - 0.05))
            if baseline is not None:
                add(f"PipeWire smallest quantum, {_LABEL[tool]}", encoder, f"= record's ({baseline})",
                    r.get("pw_quantum_min"), ".0f", _at_least(baseline))
            add(f"PipeWire xruns logged + dropouts in the file, {_LABEL[tool]}", encoder, "0",
                (r.get("pw_xruns") or 0) + (r.get("dropouts") or 0), ".0f", _at_most(0))
    return []


def _on(rows: list[dict[str, Any]], server: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("server", "pulseaudio") == server]


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


def _skip_of(rows: list[dict[str, Any]], tool: str, encoder: str) -> str:
    for r in rows:
        if r["tool"] == tool and r["encoder"] == encoder:
            return str(r.get("skipped") or "")
    return "not in this run"


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    """A few sentences computed from the 44.1 kHz stereo rows."""
    lines = []
    for encoder in ENCODERS:
        ref, api, cli = (_find(rows, k, encoder) for k in (REFERENCE, "micrec-api", "micrec-cli"))
        if ref is None or api is None or cli is None:
            continue
        survivors = [_LABEL[r["tool"]] for r in rows if r["encoder"] == encoder and not r.get("skipped")
                     and r.get("killed") and r["killed"]["ffmpeg_ok"]]
        lines.append(
            f"- **{encoder}**: steady CPU micrec API {api['cpu_steady']:.4f} / CLI {cli['cpu_steady']:.4f} "
            f"against record's pipeline {ref['cpu_steady']:.4f} s/s ({api['cpu_steady'] / ref['cpu_steady']:.2f}x / "
            f"{cli['cpu_steady'] / ref['cpu_steady']:.2f}x); peak RSS {api['rss_mb']:.0f} / {cli['rss_mb']:.0f} "
            f"against {ref['rss_mb']:.0f} MB; killed after 3 s, the file decodes for: "
            f"{', '.join(survivors) or 'none'}.")
    return lines


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
        if ref is not None:  # the target: half of record's pipeline in the same run
            ax.hlines(CPU_RATIO_TARGET * ref["cpu_steady"], j - 0.45, j + 0.45, colors="black",
                      linestyles="dashed", label="target (0.5x record)" if j == 0 else "_nolegend_")
    ax.set_xticks(range(len(ENCODERS)), [e for e in ENCODERS])
    ax.set_ylabel("CPU seconds per recorded second (steady)")
    ax.set_title("Recording 44.1 kHz stereo from a virtual microphone (median of runs)")
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(results: dict[str, Any], out: Path) -> Path:
    live = _on(results["live"], "pulseaudio")
    pipewire = _on(results["live"], "pipewire")
    main = [r for r in live if r["config"] == "44.1 kHz stereo"]
    voice = [r for r in live if r["config"] != "44.1 kHz stereo"]
    has_plot = plot(main, out / PLOT_NAME)
    m = results["machine"]
    lines = [
        "# Benchmarks: micrec against the recorders users would pick instead",
        "",
        f"Generated by `{results['command']}` on {results['date']} (median of {results['runs']} takes of "
        f"{results['seconds']:g} s per row). Re-run after the README's set-up with "
        "`.venv/bin/python benchmarks/run.py` (the plot needs `pip install -r benchmarks/requirements.txt`).",
        "",
        f"Machine: {m['cpu']}, {m['memory']}, {m['os']}, Python {m['python']}; {m['pulseaudio']}; "
        f"{m['ffmpeg']}; {m['sox']}; {m['arecord']}. No sound card: the microphone is virtual.",
        "",
        f"Load average (1 min) at the start: {results['load_before'][0]:.1f}, at the end: "
        f"{results['load_after'][0]:.1f}; per row, in `docs/benchmarks-results.json`. Other work on the machine "
        "inflates every tool's figures alike; the ratios between tools are the stabler result. "
        f"Page cache: {results.get('page_cache', 'as found')} (see RSS below).",
        "",
        "## Summary (44.1 kHz stereo)",
        "",
        *_summary(main),
        "",
        "Where micrec misses a target, the profile at the end of this page says what limits it and "
        "which change would help (measured).",
        "",
        "## Targets",
        "",
        *_target_rows(results),
        "",
        "## 44.1 kHz stereo (PulseAudio)",
        "",
        *_live_table(main),
        "",
    ]
    if pipewire:
        lines += ["## PipeWire (44.1 kHz stereo, one take per row)", "",
                  f"{m.get('pipewire', 'PipeWire')} with WirePlumber and pipewire-pulse, private instance, no "
                  "keep-alive stream. node.latency: the smallest one of the tool's capture streams (pw-dump) "
                  "at the end of the steady window; quantum: of every graph cycle in the steady window "
                  "(pw-profiler); xruns: 'client too slow' warnings the daemons logged meanwhile; dropouts: "
                  "in the recorded tone.", "", *_pipewire_table(pipewire), ""]
    if has_plot:
        lines += [f"![steady CPU per encoder per tool]({PLOT_NAME})", ""]
    if voice:
        lines += ["## 16 kHz mono", "", *_live_table(voice), ""]
    lines += ["## micrec / peers", "", "Steady CPU, 44.1 kHz stereo (below 1 = micrec is cheaper):", "",
              *_ratio_table(main, "cpu_steady", "micrec"), "", "Peak RSS, 44.1 kHz stereo:", "",
              *_ratio_table(main, "rss_mb", "micrec"), "",
              "## Offline throughput", "", *_offline_table(results), "",
              f"`import micrec`: {results['import_ms']:.0f} ms (median of 7 fresh interpreters).", "",
              _METHOD]
    notes = HERE / "notes.md"
    if notes.exists():
        lines += [notes.read_text()]
    path = out / "benchmarks.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
