"""micrec's benchmarks, one module per concern; ``python -m benchmarks --help`` lists them.

``peers``
    micrec against the recorders users would pick instead (``python -m benchmarks``): CPU,
    wake-ups, memory, latencies, and how complete each take is (tail at the stop, loss at a
    kill), on PulseAudio and PipeWire, with and without other clients on the microphone.
``profiles``
    Where a recorder's CPU goes, thread by thread (``python -m benchmarks profile``).
``features``
    Evaluations of single features: voice activity (``vad``), echo cancelling (``aec``), mixing
    the system audio (``mixing``), segment joins (``segments``), browser load (``web-load``),
    the DSP's and the lossy encoders' CPU (``dsp-cpu``, ``encoders-cpu``).

Generated results go under ``docs/`` only. Nothing runs at import.
"""
