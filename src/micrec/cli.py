"""The ``micrec`` command: record, devices, encoders, demo (and plug-in subcommands).

The CLI only calls micrec's public API.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import select
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import AudioEncoder, AudioRecorder, MicrecError, list_input_devices

# Subcommands that live with the feature they drive; each module has register(subparsers).
_PLUGINS = ("micrec.web.cli",)
_METER_WIDTH = 30
_METER_FLOOR_DB = -60.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except MicrecError as exc:
        print(f"micrec: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `micrec encoders | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micrec", description="Record the microphone to a file.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    rec = sub.add_parser("record", help="record to a file with a live level meter")
    rec.add_argument("output", help="output file; its extension picks the encoder unless --encoder")
    rec.add_argument("--duration", "-d", type=float, help="seconds to record (default: until Ctrl-C)")
    rec.add_argument("--encoder", "-e", choices=[e.value for e in AudioEncoder])
    rec.add_argument("--rate", "-r", type=int, default=44100, help="sample rate in Hz (default 44100)")
    rec.add_argument("--channels", "-c", type=int, default=2, help="1 or 2 (default 2)")
    rec.add_argument("--bit-rate", "-b", type=int, default=128000, help="bits/s for lossy encoders")
    rec.add_argument("--device", help="device id (see `micrec devices`)")
    rec.add_argument("--backend", help="auto (default), pulse or portaudio")
    rec.add_argument("--agc", action="store_true", help="automatic gain control")
    rec.add_argument("--ns", action="store_true", help="noise suppression")
    rec.add_argument("--aec", action="store_true", help="echo cancellation")
    rec.add_argument("--quiet", "-q", action="store_true", help="no level meter")
    rec.set_defaults(run=_cmd_record)

    dev = sub.add_parser("devices", help="list input devices")
    dev.add_argument("--backend", help="auto (default), pulse or portaudio")
    dev.set_defaults(run=_cmd_devices)

    enc = sub.add_parser("encoders", help="list encoders and whether they work here")
    enc.set_defaults(run=_cmd_encoders)

    demo = sub.add_parser("demo", help="record a few seconds (from a virtual microphone if none exists)")
    demo.add_argument("--seconds", type=float, default=3.0)
    demo.add_argument("--output", "-o", default="micrec-demo.wav")
    demo.add_argument("--virtual", action="store_true", help="use the virtual microphone even if a real one exists")
    demo.set_defaults(run=_cmd_demo)

    for name in _PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(sub)
    return parser


# -- record --------------------------------------------------------------------------------
def _cmd_record(args: argparse.Namespace) -> int:
    from .encoders import guess_encoder

    encoder = args.encoder or guess_encoder(args.output)
    if encoder is None:
        print(f"micrec: cannot tell the encoder from {args.output!r}; pass --encoder", file=sys.stderr)
        return 2
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=args.rate, channels_num=args.channels,
                        bit_rate=args.bit_rate, auto_gain=args.agc, suppress_noise=args.ns,
                        cancel_echo=args.aec, device=args.device, backend=args.backend)
    path = record_interactively(rec, args.output, duration=args.duration, meter=not args.quiet)
    if path is None:
        return 1
    print(f"wrote {path}")
    return 0


def record_interactively(rec: AudioRecorder, output: str, *, duration: float | None,
                         meter: bool = True, out: TextIO = sys.stderr) -> str | None:
    """Record with a live meter until ``duration``, Ctrl-C, or a fault; space/p pauses."""
    interrupted = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        rec.start_recording(output, duration=duration)
        with _keys() as read_key:
            while rec.is_recording() and not interrupted:
                key = read_key(0.1)
                if key in (" ", "p"):
                    rec.resume() if rec.is_paused() else rec.pause()
                if meter:
                    out.write("\r" + _meter_line(rec))
                    out.flush()
        path = rec.stop_recording() or output  # None when the take already ended by itself
        error = rec.last_error
    finally:
        signal.signal(signal.SIGINT, previous)
        if meter:
            out.write("\n")
    if error is not None:
        print(f"micrec: recording ended by a fault: {error}", file=sys.stderr)
        return path if path and Path(path).exists() else None
    return path


def _meter_line(rec: AudioRecorder) -> str:
    amp = rec.get_amplitude()
    level = max(0.0, min(1.0, (amp.current - _METER_FLOOR_DB) / -_METER_FLOOR_DB))
    bar = "#" * round(level * _METER_WIDTH)
    seconds = rec.duration_ms / 1000
    state = "PAUSED" if rec.is_paused() else "REC   "
    current = f"{amp.current:6.1f}" if amp.current > -160 else "  -inf"
    return (f"{state} {int(seconds // 60):02d}:{seconds % 60:04.1f} [{bar:<{_METER_WIDTH}}] "
            f"{current} dBFS (max {amp.max:6.1f})  space/p: pause, Ctrl-C: stop ")


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """A key reader (timeout -> key or None) that also returns at once when a signal arrives.

    Keys are read only when stdin is a terminal. Signals wake the reader through
    ``signal.set_wakeup_fd``, so Ctrl-C stops the take without waiting out the timeout.
    """
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous_wakeup = signal.set_wakeup_fd(wake_w)
    tty_fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = None
    if tty_fd is not None:
        import termios
        import tty

        saved = termios.tcgetattr(tty_fd)
        tty.setcbreak(tty_fd)

    def read_key(timeout: float) -> str | None:
        watched = [wake_r] if tty_fd is None else [wake_r, tty_fd]
        ready, _, _ = select.select(watched, [], [], timeout)
        if wake_r in ready:
            os.read(wake_r, 64)
        if tty_fd is not None and tty_fd in ready:
            return os.read(tty_fd, 1).decode(errors="ignore")
        return None

    try:
        yield read_key
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        if tty_fd is not None and saved is not None:
            import termios

            termios.tcsetattr(tty_fd, termios.TCSADRAIN, saved)
        os.close(wake_r)
        os.close(wake_w)


# -- devices, encoders ---------------------------------------------------------------------
def _cmd_devices(args: argparse.Namespace) -> int:
    devices = list_input_devices(args.backend)
    if not devices:
        print("no input devices found (no sound server, or no microphone)")
        return 1
    width = max(len(d.id) for d in devices)
    print(f"  {'ID':<{width}}  DESCRIPTION")
    for d in devices:
        print(f"{'*' if d.is_default else ' '} {d.id:<{width}}  {d.label}")
    print("(* = default)")
    return 0


def _cmd_encoders(args: argparse.Namespace) -> int:
    from .encoders import describe

    print(f"{'ENCODER':<10} {'SUPPORTED':<9} {'CONTAINERS':<22} {'RATES':<19} NOTES")
    for codec in AudioEncoder:
        info = describe(codec)
        rates = _rates_label(info.rates)
        containers = " ".join(info.extensions) + (" (any)" if codec is AudioEncoder.PCM16BITS else "")
        note = info.unavailable or (f"seek: {info.seek}" if info.seek else "")
        print(f"{codec.value:<10} {'yes' if info.supported else 'no':<9} {containers:<22} {rates:<19} {note}")
    return 0


def _rates_label(rates: Sequence[int]) -> str:
    def khz(rate: int) -> str:
        return f"{rate // 1000 if rate % 1000 == 0 else rate / 1000}k"

    if not rates:
        return "8k-192k"
    if len(rates) > 4:
        return f"{khz(min(rates))}-{khz(max(rates))} ({len(rates)})"
    return "/".join(khz(r) for r in rates)


# -- demo ----------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return demo.run(seconds=args.seconds, output=args.output, force_virtual=args.virtual)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
