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
    from .console import record_interactively, report_take
    from .encoders import guess_encoder

    rec.audio_encoder = guess_encoder(output) or rec.audio_encoder
    result = record_interactively(rec, output, duration=seconds, meter=sys.stderr.isatty())
    status = report_take(result)
    if result.path is not None:
        _report_frequency(result.path)
    return status


def _report_frequency(path: str) -> None:
    """The strongest frequency in the take (a check that the demo heard its chord)."""
    import numpy as np
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="int16", always_2d=True)
    except Exception:  # noqa: BLE001 - a format libsndfile does not read: nothing to add
        return
    if not len(data):
        return
    mono = data.astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    freq = np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum))]
    print(f"strongest frequency {freq:.0f} Hz")
