"""CPU cost of auto_gain, suppress_noise and cancel_echo, in CPU seconds per recorded second.

Two ways, each at 16 kHz mono and 48 kHz stereo, for every flag alone and all three together:

``offline`` (default)
    The whole pipeline (worker, DSP, WAV encoder) fed by a TestBackend as fast as it goes;
    cancel_echo gets a far end from a test "monitor". CPU time of the process per second of
    audio, median of ``--repeat`` runs; the ``none`` row is the pipeline without DSP.
``--live``
    Real time on a private PulseAudio server (micrec.vmic): speech into the microphone, speech
    on the default output and module-loopback bringing it back as echo; cancel_echo reads the
    output's monitor like on a desktop. CPU time of the process over ``--seconds`` of recording.

Usage::

    python -m benchmarks dsp-cpu [--live] [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from micrec import AudioRecorder
from micrec.backends import StreamSpec, TestBackend

CONFIGS = ((16000, 1), (48000, 2))
FLAGS: dict[str, dict[str, Any]] = {
    "none": {},
    "auto_gain": {"auto_gain": True},
    "suppress_noise": {"suppress_noise": True},
    "cancel_echo": {"cancel_echo": True},
    "all three": {"auto_gain": True, "suppress_noise": True, "cancel_echo": True},
}
TEXT = ("Please record this sentence at a comfortable level. The quick brown fox jumps over the lazy dog, "
        "and the microphone hears every word of it.")


def speech(rate: int, seconds: float, workdir: Path) -> npt.NDArray[np.int16]:
    """espeak-ng speech over faint noise at ``rate``, looped to ``seconds`` (noise alone without espeak)."""
    import soxr

    rng = np.random.default_rng(1)
    x = rng.standard_normal(int(seconds * rate)) * 10 ** (-45 / 20)
    if shutil.which("espeak-ng"):
        path = workdir / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), TEXT], check=True, timeout=30, capture_output=True)
        with wave.open(str(path)) as w:
            voice = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768
            voice = soxr.resample(voice, w.getframerate(), rate)
        x += np.resize(0.5 * voice / np.abs(voice).max(), len(x))
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


class MonitoredTestBackend(TestBackend):
    """A TestBackend whose "default output" plays ``far``, read like PulseAudio's monitor.

    The monitor delivers a far-end block just before each microphone block, as a real output
    running on the same clock would.
    """

    def __init__(self, near: npt.NDArray[np.int16], far: npt.NDArray[np.int16], rate: int) -> None:
        super().__init__(near, rate, realtime=False, after_end="stop")
        self.far = far
        self.far_position = 0
        self.monitor_sink: Any = None

    def open(self, spec: StreamSpec, sink: Any) -> Any:
        return super().open(spec, _WithMonitor(self, sink))

    def open_monitor(self, spec: StreamSpec, sink: Any) -> Any:
        self.monitor_sink = sink
        return _IdleStream(spec.rate, spec.channels)


class _WithMonitor:
    def __init__(self, backend: MonitoredTestBackend, sink: Any) -> None:
        self._backend = backend
        self._sink = sink

    def push(self, block: npt.NDArray[np.int16], *, wait: bool = False,
             capture_time: float | None = None) -> None:
        backend = self._backend
        if backend.monitor_sink is not None:
            start = backend.far_position
            backend.far_position += len(block)
            backend.monitor_sink.push(backend.far[start:backend.far_position].copy(), capture_time=capture_time)
        self._sink.push(block, wait=wait, capture_time=capture_time)

    def overflow(self, frames: int = 0) -> None:
        self._sink.overflow(frames)

    def fail(self, error: BaseException) -> None:
        self._sink.fail(error)


class _IdleStream:
    def __init__(self, rate: int, channels: int) -> None:
        self.rate = rate
        self.channels = channels

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def offline_run(rate: int, channels: int, flags: dict[str, Any], seconds: float, workdir: Path) -> float:
    near = np.repeat(speech(rate, seconds, workdir)[:, None], channels, axis=1)
    far = np.roll(near, rate // 3, axis=0)  # another talker
    backend = MonitoredTestBackend(near, far, rate)
    rec = AudioRecorder(sample_rate=rate, channels_num=channels, backend=backend, **flags)
    before = time.process_time()
    rec.start_recording(workdir / "take.wav")
    if not backend.wait_done(600):
        raise RuntimeError("the test backend did not finish")
    rec.stop_recording()
    return (time.process_time() - before) / seconds


def live_setup(workdir: Path, seconds: float) -> Any:
    from micrec.vmic import MicSpec, VirtualMicrophone, write_wav

    vm = VirtualMicrophone(mics=(MicSpec("vmic_a", 48000, 1, "Virtual mic A"),), speaker=True).start()
    vm.activate()
    vm.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=vmic_a_feed", "latency_msec=60")
    total = seconds * (len(FLAGS) * len(CONFIGS) + 2)  # enough for every row
    voice = speech(48000, total, workdir)
    vm.play_samples(voice, 48000)
    far = workdir / "far.wav"
    write_wav(far, np.repeat(np.roll(voice, 48000 * 3)[:, None] // 2, 2, axis=1), 48000)
    player = subprocess.Popen(["paplay", "--latency-msec=20", "-d", "speaker", str(far)], env=vm.env)
    return vm, player


def live_run(rate: int, channels: int, flags: dict[str, Any], seconds: float, workdir: Path) -> float:
    rec = AudioRecorder(sample_rate=rate, channels_num=channels, backend="pulse", **flags)
    rec.start_recording(workdir / "take.wav")
    time.sleep(0.5)  # past the session's start-up work
    before = time.process_time()
    time.sleep(seconds)
    used = time.process_time() - before
    rec.stop_recording()
    return used / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live", action="store_true", help="real time on a private PulseAudio server")
    parser.add_argument("--seconds", type=float, default=None, help="audio per run (default 30 offline, 10 live)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row, median reported")
    parser.add_argument("--only", nargs="+", choices=list(FLAGS), default=list(FLAGS), help="rows to measure")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.live else 30.0)
    with tempfile.TemporaryDirectory(prefix="micrec-dsp-cpu-") as tmp:
        workdir = Path(tmp)
        setup = live_setup(workdir, seconds * args.repeat) if args.live else None
        run = live_run if args.live else offline_run
        try:
            print(f"{'live' if args.live else 'offline'}, {seconds:g} s per run, median of {args.repeat}")
            print(f"{'flags':<16}" + "".join(f"{f'{r // 1000} kHz {c} ch':>16}" for r, c in CONFIGS))
            for name in args.only:
                flags = FLAGS[name]
                cells = []
                for rate, channels in CONFIGS:
                    runs = [run(rate, channels, flags, seconds, workdir) for _ in range(args.repeat)]
                    cells.append(f"{statistics.median(runs):>16.4f}")
                print(f"{name:<16}" + "".join(cells), flush=True)
        finally:
            if setup is not None:
                vm, player = setup
                player.terminate()
                player.wait(timeout=5)
                vm.deactivate()
                vm.stop()


if __name__ == "__main__":
    main()
