"""The ``micrec`` command: record, devices, encoders, demo (and plug-in subcommands).

The CLI only calls micrec's public API.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from . import (
    AudioEncoder,
    AudioRecorder,
    InputDevice,
    MicrecError,
    OutputDevice,
    _version,
    list_input_devices,
    list_output_devices,
)

__all__ = ["entry", "exit_now", "main"]

# Subcommands that live with the feature they drive; each module has register(subparsers).
_PLUGINS = ("micrec.web.cli",)
#: Exit status of a command interrupted by Ctrl-C outside a take (the shell's 128 + SIGINT).
_INTERRUPTED = 130


def entry() -> NoReturn:
    """The ``micrec`` console script and ``python -m micrec``: :func:`main`, then a quick exit."""
    try:
        status = main(exit_process=True)
    except KeyboardInterrupt:  # Ctrl-C outside a take (starting up, listing devices)
        status = _INTERRUPTED
    exit_now(status)


def main(argv: Sequence[str] | None = None, *, exit_process: bool = False) -> int:
    """Run the ``micrec`` command line ``argv`` (default ``sys.argv[1:]``); the exit status.

    With ``exit_process`` the process exits through :func:`exit_now` once the command is done
    (what :func:`entry` asks); otherwise this returns, for callers in Python.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.exit_process = exit_process
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


def exit_now(status: int) -> NoReturn:
    """End the process with ``status`` without the interpreter's teardown, where that is safe.

    Tearing down numpy, PyAV and friends costs tens of milliseconds after the file is long
    finalized. Output is flushed and the ``atexit`` hooks run first; while any non-daemon
    thread is still alive the ordinary exit (which joins it) is taken instead. A stop signal
    from here on has nothing left to stop: it is ignored rather than cut the flushing short.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        raise SystemExit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _finish(args: argparse.Namespace, status: int) -> int:
    if getattr(args, "exit_process", False):
        exit_now(status)
    return status


class _VersionAction(argparse.Action):
    """``--version``: the installed version, read from the package metadata only when asked.

    (argparse's own ``version`` action needs the string when the parser is built, and reading
    the metadata imports importlib.metadata, zipfile and email: tens of ms on every command.)
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show micrec's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"micrec {_version.package_version()}")  # on stdout, as argparse's version action
        parser.exit()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micrec", description="Record the microphone to a file.")
    parser.add_argument("--version", action=_VersionAction)
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
    rec.add_argument("--system-audio", nargs="?", const=True, default=False, metavar="OUTPUT",
                     help="record what an output plays instead of the microphone: the default output, "
                          "or OUTPUT (see `micrec devices --outputs`)")
    rec.add_argument("--mix-system-audio", action="store_true",
                     help="mix what the default output plays into the microphone's take "
                          "(with --aec, the speakers' echo is removed first)")
    rec.add_argument("--until-silence", type=_positive_seconds, metavar="S",
                     help="end the take by itself S seconds after the last voice (or after the start while "
                          "none was heard); needs micrec[vad]")
    rec.add_argument("--wait-for-voice", action="store_true",
                     help="write nothing until a voice is heard, then start 300 ms before it; needs micrec[vad]")
    rec.add_argument("--segment", type=_positive_seconds, metavar="S",
                     help="write the take as OUTPUT-0001.ext, OUTPUT-0002.ext, ... of S seconds each")
    rec.add_argument("--quiet", "-q", action="store_true", help="no level meter (and 250 ms blocks: less CPU)")
    rec.set_defaults(run=_cmd_record)

    dev = sub.add_parser("devices", help="list input devices (or, with --outputs, outputs)")
    dev.add_argument("--outputs", action="store_true",
                     help="list the outputs whose sound can be recorded (for --system-audio)")
    dev.add_argument("--backend", help="auto (default), pulse or portaudio")
    dev.set_defaults(run=_cmd_devices)

    enc = sub.add_parser("encoders", help="list encoders and whether they work here")
    enc.set_defaults(run=_cmd_encoders)

    demo = sub.add_parser("demo", help="record a few seconds (from a virtual microphone if none exists)")
    demo.add_argument("--seconds", type=float, default=3.0)
    demo.add_argument("--output", "-o", default="micrec-demo.wav")
    demo.add_argument("--virtual", action="store_true", help="use the virtual microphone even if a real one exists")
    demo.set_defaults(run=_cmd_demo)

    plot = sub.add_parser("plot", help="draw a take as a PNG: waveform, level, clipping, silences")
    plot.add_argument("take", help="a file micrec wrote (any format; raw PCM needs --rate and --channels)")
    plot.add_argument("--output", "-o", help="the PNG to write (default: TAKE.png)")
    plot.add_argument("--rate", "-r", type=int, help="sample rate of a raw PCM16 take")
    plot.add_argument("--channels", "-c", type=int, help="channels of a raw PCM16 take")
    plot.add_argument("--size", default="1200x600", help="WIDTHxHEIGHT in pixels (default 1200x600)")
    plot.set_defaults(run=_cmd_plot)

    for name in _PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(sub)
    return parser


# -- record --------------------------------------------------------------------------------
# With --quiet nothing reads the levels: the library lengthens the blocks by itself after a
# second (micrec._pacing), as for any take that nobody watches.

def _cmd_record(args: argparse.Namespace) -> int:
    from .console import StopSignals, record_interactively, report_take
    from .encoders import guess_encoder

    encoder = args.encoder or guess_encoder(args.output)
    if encoder is None:
        print(f"micrec: cannot tell the encoder from {args.output!r}; pass --encoder", file=sys.stderr)
        return 2
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=args.rate, channels_num=args.channels,
                        bit_rate=args.bit_rate, auto_gain=args.agc, suppress_noise=args.ns,
                        cancel_echo=args.aec, device=args.device, backend=args.backend,
                        system_audio=args.system_audio, mix_system_audio=args.mix_system_audio,
                        until_silence=args.until_silence, wait_for_voice=args.wait_for_voice,
                        segment_seconds=args.segment)
    # The stop signals stay held off until the process has reported and exited: a second
    # SIGTERM or Ctrl-C while the file is finalized or the summary printed changes nothing.
    with StopSignals() as stop:
        result = record_interactively(rec, args.output, duration=args.duration, meter=not args.quiet,
                                      stop=stop)
        return _finish(args, report_take(result))


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


# -- devices, encoders ---------------------------------------------------------------------
def _cmd_devices(args: argparse.Namespace) -> int:
    devices: Sequence[InputDevice | OutputDevice] = (
        list_output_devices(args.backend) if args.outputs else list_input_devices(args.backend))
    if not devices:
        print("no recordable outputs found (only a PulseAudio or PipeWire server has them)" if args.outputs
              else "no input devices found (no sound server, or no microphone)")
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


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_take

    width, _, height = args.size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        print(f"micrec: --size {args.size!r}: give WIDTHxHEIGHT, e.g. 1200x600", file=sys.stderr)
        return 2
    path = plot_take(args.take, args.output, width=int(width), height=int(height), rate=args.rate,
                     channels=args.channels)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    entry()
