"""A take recorded from a terminal: level meter, pause key, stop signals and the summary line.

Used by ``micrec record`` and ``micrec demo`` (both import it from here; it imports neither).
Only micrec's public API is called.

Ctrl-C (SIGINT), SIGTERM (``kill``, ``systemctl stop``, ``docker stop``) and SIGHUP (the
terminal closed) all end a take the same way: stop, finalize, report. Further signals while the
file is being finalized are counted and otherwise ignored, so a burst of them cannot leave a
half-written file.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ._pacing import needs_blocks_soon
from .recorder import AudioRecorder
from .types import AudioEncoder

__all__ = ["STOP_SIGNALS", "StopSignals", "TakeResult", "TakeStats", "record_interactively", "report_take"]

#: The signals that stop a take (and are held off while it is finalized).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_METER_WIDTH = 30
#: Seconds between redraws of the meter line.
_METER_INTERVAL = 0.1
_METER_FLOOR_DB = -60.0
_FULL_SCALE = 32768
_SILENT_DB = -160.0


class StopSignals:
    """Turns SIGINT, SIGTERM and SIGHUP into a request to stop, from ``with`` to its end.

    The first signal is kept in :attr:`received`; every one wakes :meth:`wait` at once
    (``signal.set_wakeup_fd``). The previous handlers are restored on exit, so a caller that
    wants later signals ignored too (until it has reported and exited) keeps the scope open.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.count = 0
        self._previous: dict[signal.Signals, Any] = {}
        self._wake_r = self._wake_w = -1
        self._previous_wakeup = -1

    def __enter__(self) -> StopSignals:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._previous_wakeup = signal.set_wakeup_fd(self._wake_w)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def name(self) -> str | None:
        """The first signal's name (``"SIGTERM"``), or None."""
        return None if self.received is None else self.received.name

    @property
    def wake_fd(self) -> int:
        """Readable when a signal arrived (see :meth:`drain`)."""
        return self._wake_r

    def wake(self) -> None:
        """Make :attr:`wake_fd` readable, as a signal does (from any thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def drain(self) -> None:
        """Empty the wake-up pipe."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only bookkeeping here: the main thread may be inside a write to the same stream.
        self.count += 1
        if self.received is None:
            self.received = signal.Signals(signum)


@dataclass
class TakeStats:
    """What the recorder wrote, counted from the blocks the encoder received (``on_audio``).

    Attributes
    ----------
    frames : int
        Sample frames written (paused time is not in the file, so not here).
    peak : int
        Highest absolute int16 sample value.
    clipped : int
        Samples at full scale (+32767 or -32768).
    channels : int
        Channels of the blocks (0 before the first).
    """

    frames: int = 0
    peak: int = 0
    clipped: int = 0
    channels: int = 0
    _blocks_can_wait = True  # a summary at the end: the blocks may grow (micrec._pacing)

    def __call__(self, block: Any) -> None:
        if not len(block):
            return
        hi, lo = int(block.max()), int(block.min())
        self.frames += len(block)
        self.channels = block.shape[1]
        self.peak = max(self.peak, hi, -lo)
        if hi == _FULL_SCALE - 1 or lo == -_FULL_SCALE:
            self.clipped += int((block == _FULL_SCALE - 1).sum() + (block == -_FULL_SCALE).sum())

    @property
    def peak_dbfs(self) -> float:
        """The peak in dBFS (-160 for digital silence)."""
        import math

        return 20 * math.log10(self.peak / _FULL_SCALE) if self.peak else _SILENT_DB


@dataclass
class TakeResult:
    """How a take recorded by :func:`record_interactively` ended, and what it wrote.

    Attributes
    ----------
    path : str or None
        The finalized file; None when nothing usable was written.
    encoder : AudioEncoder
        The format.
    rate : int
        The file's sample rate (the encoder's admitted rate nearest the requested one).
    stats : TakeStats
        Frames, peak and clipped samples, from what the recorder saw.
    error : BaseException or None
        The fault that ended the take early, if any.
    stopped_by : str or None
        The name of the signal that stopped the take (``"SIGINT"`` for Ctrl-C).
    segments : list of str
        Every file of a take written with ``segment_seconds`` (``path`` is the last one).
    """

    path: str | None
    encoder: AudioEncoder
    rate: int
    stats: TakeStats = field(default_factory=TakeStats)
    error: BaseException | None = None
    stopped_by: str | None = None
    segments: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.stats.frames / self.rate if self.rate else 0.0

    def summary(self) -> str:
        """One line: path, duration, format, size, peak dBFS and clipped samples."""
        size = sum(map(_file_size, self.segments)) if self.segments else _file_size(self.path)
        channels = {1: "mono", 2: "stereo"}.get(self.stats.channels, f"{self.stats.channels} ch")
        peak = f"{self.stats.peak_dbfs:.1f} dBFS" if self.stats.peak else "-inf dBFS (silence)"
        clipped = self.stats.clipped
        n = len(self.segments)
        what = self.path if n < 2 else f"{n} segments {self.segments[0]} .. {self.path}"
        return (f"wrote {what}: {_clock(self.seconds)}, {self.encoder.value} {self.rate} Hz {channels}, "
                f"{_human_bytes(size)}, peak {peak}, {clipped} clipped sample{'' if clipped == 1 else 's'}")


def record_interactively(rec: AudioRecorder, output: str, *, duration: float | None, meter: bool = True,
                         out: TextIO | None = None, stop: StopSignals | None = None) -> TakeResult:
    """Record with a live meter until ``duration``, a stop signal, or a fault; space/p pauses.

    Parameters
    ----------
    rec : AudioRecorder
        Configured, idle. Its ``on_audio`` (if any) still gets every block.
    output : str
        The file to write.
    duration : float, optional
        Seconds of audio; None records until a stop signal.
    meter : bool
        Draw the level meter on ``out`` (default stderr).
    stop : StopSignals, optional
        An entered :class:`StopSignals` whose scope outlasts this call (so the caller can
        report and exit while late signals are still held off); by default one of its own.

    Raises
    ------
    MicrecError
        The take could not start (nothing is left on disk then).
    """
    with contextlib.ExitStack() as scope:
        signals = stop if stop is not None else scope.enter_context(StopSignals())
        stats = TakeStats()
        own_listener, own_handler = rec.on_audio, rec.on_state_changed
        rec.on_audio = _both(own_listener, stats)
        # A take that ends by itself (duration, silence, fault) wakes the wait below at once, so
        # that without a meter to redraw the main thread sleeps for the whole take.
        rec.on_state_changed = _both(own_handler, lambda event: signals.wake() if event.data == "stopped" else None)
        scope.callback(setattr, rec, "on_state_changed", own_handler)
        try:
            encoder = AudioEncoder(rec.audio_encoder)
            rec.start_recording(output, duration=duration)
        finally:
            rec.on_audio = own_listener  # the session keeps the listeners it started with
        screen = _Screen(out if out is not None else sys.stderr, meter)
        try:
            _record_until_stopped(rec, signals, screen)
        finally:
            path = rec.stop_recording() or _ended_path(rec, output)  # None: it ended by itself
            screen.end()
        error = rec.last_error
        kept = path if error is None or Path(path).exists() else None
        return TakeResult(kept, encoder, _file_rate(encoder, int(rec.sample_rate)), stats, error, signals.name,
                          rec.segment_paths)


def _ended_path(rec: AudioRecorder, output: str) -> str:
    """The file of a take that ended by itself (duration, silence, fault): the last segment's."""
    segments = rec.segment_paths
    return segments[-1] if segments else output


def report_take(result: TakeResult) -> int:
    """Print how a take ended and its summary line; the exit status (0, or 1 after a fault)."""
    if result.stopped_by not in (None, "SIGINT"):
        _say(f"micrec: stopped by {result.stopped_by}", sys.stderr)
    if result.error is not None:
        _say(f"micrec: recording ended by a fault: {result.error}", sys.stderr)
    if result.path is not None:
        _say(result.summary(), sys.stdout)
    return 0 if result.error is None and result.path is not None else 1


def _say(line: str, stream: TextIO) -> None:
    """Print, unless the terminal is gone (closed window: SIGHUP, then EIO on every write)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=stream, flush=True)


def _record_until_stopped(rec: AudioRecorder, signals: StopSignals, screen: _Screen) -> None:
    redraw = _METER_INTERVAL if screen.enabled else None  # None: wait for a key, a signal or the end
    with _key_reader(signals) as read_key:
        while rec.is_recording() and signals.received is None:
            key = read_key(redraw)
            if key in (" ", "p"):
                rec.resume() if rec.is_paused() else rec.pause()
            if screen.enabled:
                screen.show(_meter_line(rec))


class _Screen:
    """The meter line; a terminal that went away (SIGHUP) turns it off instead of failing."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self._out = out
        self._enabled = enabled
        self._shown = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    def show(self, line: str) -> None:
        if not self._enabled:
            return
        try:
            self._out.write("\r" + line)
            self._out.flush()
            self._shown = True
        except (OSError, ValueError):
            self._enabled = False

    def end(self) -> None:
        if self._shown and self._enabled:
            with contextlib.suppress(OSError, ValueError):
                self._out.write("\n")
                self._out.flush()


def _meter_line(rec: AudioRecorder) -> str:
    amp = rec.get_amplitude()
    level = max(0.0, min(1.0, (amp.current - _METER_FLOOR_DB) / -_METER_FLOOR_DB))
    bar = "#" * round(level * _METER_WIDTH)
    seconds = rec.duration_ms / 1000
    state = "PAUSED" if rec.is_paused() else "REC   "
    current = f"{amp.current:6.1f}" if amp.current > _SILENT_DB else "  -inf"
    return (f"{state} {int(seconds // 60):02d}:{seconds % 60:04.1f} [{bar:<{_METER_WIDTH}}] "
            f"{current} dBFS (max {amp.max:6.1f})  {_voice_note(rec)}space/p: pause, Ctrl-C: stop ")


def _voice_note(rec: AudioRecorder) -> str:
    """"waiting for voice", or the time since the last voice (with the limit), for the meter."""
    if rec.waiting_for_voice:
        return "waiting for voice  "
    since = rec.seconds_since_voice
    if since is None:
        return ""
    limit = f"/{rec.until_silence:g}" if rec.until_silence is not None else ""
    return f"voice {since:4.1f}{limit} s ago  "


@contextlib.contextmanager
def _key_reader(signals: StopSignals) -> Iterator[Callable[[float | None], str | None]]:
    """A key reader (timeout -> key or None) that returns at once when a signal arrives.

    Keys are read only when stdin is a terminal (in cbreak mode, restored at the end). A
    terminal that hangs up stops the key reading; the take goes on until the SIGHUP is seen.
    """
    tty_fd: int | None = None
    saved = None
    with contextlib.suppress(OSError, ValueError):
        if sys.stdin is not None and sys.stdin.isatty():
            import termios
            import tty

            tty_fd = sys.stdin.fileno()
            saved = termios.tcgetattr(tty_fd)
            tty.setcbreak(tty_fd)

    def read_key(timeout: float | None) -> str | None:
        nonlocal tty_fd
        watched = [signals.wake_fd] if tty_fd is None else [signals.wake_fd, tty_fd]
        ready, _, _ = select.select(watched, [], [], timeout)
        if signals.wake_fd in ready:
            signals.drain()
        if tty_fd is None or tty_fd not in ready:
            return None
        try:
            key = os.read(tty_fd, 1)
        except OSError:
            key = b""
        if not key:  # the terminal hung up
            tty_fd = None
            return None
        return key.decode(errors="ignore")

    try:
        yield read_key
    finally:
        if saved is not None:
            import termios

            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


def _both(first: Callable[[Any], Any] | None, second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Call ``first`` then ``second``; wants blocks soon if ``first`` does (see micrec._pacing)."""
    if first is None:
        return second

    def both(block: Any) -> None:
        first(block)
        second(block)

    both._blocks_can_wait = not (needs_blocks_soon(first) or needs_blocks_soon(second))  # type: ignore[attr-defined]
    return both


def _file_rate(encoder: AudioEncoder, requested: int) -> int:
    from . import encoders

    cls = encoders.encoder_class(encoder)
    return requested if cls is None else int(cls.admitted_rate(requested))


def _file_size(path: str | None) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:05.2f}" if hours else f"{minutes}:{rest:05.2f}"


def _human_bytes(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
