"""``micrec demo``: a real recording, from the default microphone or a virtual one.

Where no microphone can be opened (a server, CI, a container), the demo starts a private
PulseAudio server with a virtual microphone, plays a generated chord into it, and records
that, saying so plainly.
"""

from __future__ import annotations

import sys

from . import AudioRecorder, MicrecError

_DEMO_TONES = (440.0, 660.0)


def run(seconds: float = 3.0, output: str = "micrec-demo.wav", force_virtual: bool = False) -> int:
    if not force_virtual and AudioRecorder().has_permission():
        print("micrec demo: recording from the default microphone")
        try:
            return _record_and_report(AudioRecorder(), output, seconds)
        except MicrecError as exc:
            print(f"micrec demo: the default microphone failed ({exc}); using a virtual one")
    return _run_virtual(seconds, output)


def _run_virtual(seconds: float, output: str) -> int:
    import numpy as np

    from .vmic import MicSpec, VirtualMicrophone

    print("micrec demo: no usable microphone here, so this is a VIRTUAL microphone: a private "
          "PulseAudio server that micrec started, fed with a generated 440 Hz + 660 Hz signal")
    spec = MicSpec("micrec_demo_mic", 48000, 1, "micrec demo virtual microphone")
    with VirtualMicrophone(mics=(spec,)) as vm, vm.activated():
        t = np.arange(int((seconds + 2) * spec.rate)) / spec.rate
        signal = sum(0.25 * np.sin(2 * np.pi * f * t) for f in _DEMO_TONES)
        vm.play_samples(np.round(signal * 32767).astype(np.int16), spec.rate)
        return _record_and_report(AudioRecorder(device=spec.name, backend="pulse"), output, seconds)


def _record_and_report(rec: AudioRecorder, output: str, seconds: float) -> int:
    from .cli import record_interactively
    from .encoders import guess_encoder

    rec.audio_encoder = guess_encoder(output) or rec.audio_encoder
    path = record_interactively(rec, output, duration=seconds, meter=sys.stderr.isatty())
    if path is None:
        return 1
    _report(path)
    return 0


def _report(path: str) -> None:
    import numpy as np
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="int16", always_2d=True)
    except Exception:  # noqa: BLE001 - a format libsndfile does not read: report the path only
        print(f"wrote {path}")
        return
    mono = data.astype(np.float64).mean(axis=1)
    peak = np.abs(mono).max() if len(mono) else 0
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) if len(mono) else np.zeros(1)
    freq = np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum))] if len(mono) else 0
    level = 20 * np.log10(peak / 32768) if peak else -160.0
    print(f"wrote {path}: {len(data) / rate:.2f} s, {rate} Hz, {data.shape[1]} channel(s), "
          f"peak {level:.1f} dBFS, strongest frequency {freq:.0f} Hz")
