"""One recording session: capture stream → queue → worker (convert, DSP, level, encode, write).

The capture side only hands blocks to :class:`CaptureQueue`; everything else happens on the
session's worker thread, in the order the blocks and commands were queued. A fault on either
side (the device, the encoder, the disk), or reaching the configured duration, ends the session
on the worker: the file is finalized with what was captured and ``on_end`` is told.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import encoders
from ._doorbell import Doorbell
from ._pacing import BlockPacer, needs_blocks_soon, pacer_for
from .backends import CaptureBackend, StreamSpec
from .backends.outputs import check_output, monitor_channels
from .dsp import build_voice_processing
from .dsp.convert import build_converter
from .dsp.mix import build_system_mix
from .errors import MicrecError, OutputError, StateError
from .types import AudioEncoder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .backends import CaptureStream
    from .dsp.vad import VoiceGate
    from .encoders import Encoder

    Block = npt.NDArray[np.int16]

__all__ = ["CaptureQueue", "Session", "SessionConfig"]

log = logging.getLogger("micrec")

#: Capture block length (default; ``AudioRecorder(blocksize=...)`` asks for another). Every
#: block wakes two Python threads (capture and worker), and those wake-ups, not the work, are
#: most of micrec's CPU (see docs/benchmarks.md). The first block is shorter (10 ms on the Pulse
#: backend), so that audio flows at once; a stop delivers every frame captured up to it.
#: While nobody reads levels or blocks, the blocks grow to 250 ms (:mod:`._pacing`).
BLOCK_MS = 100
#: Seconds of audio the queue holds before blocks are dropped (and counted as overflows).
QUEUE_SECONDS = 10
#: How often the encoder is asked to make its file readable by others (header updates). With
#: blocks of at most 250 ms and the server's 100 ms fragment, a killed take loses under 0.5 s.
FLUSH_INTERVAL = 0.25
#: The first this many seconds of audio are flushed block by block: a lossy encoder's first
#: packet needs a few blocks (AAC: its priming and a frame), and the file should hold audio from
#: the start.
EAGER_FLUSH_SECONDS = 0.5
#: Longest a seek waits for the audio captured before the pause (a fragment, and a margin).
TAIL_WAIT_SECONDS = 0.25
SILENCE_DBFS = -160.0
_LEVEL_WINDOW_MS = 50


@dataclass(frozen=True)
class SessionConfig:
    """A validated recording configuration (see :class:`micrec.AudioRecorder`)."""

    encoder: AudioEncoder
    path: Path
    sample_rate: int
    channels: int
    bit_rate: int
    device: str | None = None
    auto_gain: bool = False
    suppress_noise: bool = False
    cancel_echo: bool = False
    #: Seconds of audio after which the session ends by itself (None: until stopped).
    duration: float | None = None
    #: Record what an output plays (its monitor) instead of the microphone.
    system_audio: bool = False
    #: The output for ``system_audio``: an id from ``list_outputs()``; None is the default output.
    output: str | None = None
    #: Mix what the default output plays into the microphone's take.
    mix_system_audio: bool = False
    #: Seconds without voice after which the session ends by itself (None: never).
    until_silence: float | None = None
    #: Start the file 300 ms before the first voice.
    wait_for_voice: bool = False
    #: Write the take as files of this many seconds each (None: one file).
    segment_seconds: float | None = None
    #: Frames per block at ``sample_rate`` (None: :data:`BLOCK_MS`).
    blocksize: int | None = None


class _Command:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None


class _Seek(_Command):
    __slots__ = ("frame",)

    def __init__(self, frame: int) -> None:
        super().__init__()
        self.frame = frame


class _Stop(_Command):
    __slots__ = ()


class _LimitReached(Exception):
    """The take has the configured duration (or silence): the session ends normally."""


class _Fault:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class CaptureQueue:
    """The sink capture streams deliver to: a lock-free hand-off to the worker thread.

    ``push`` is all an audio callback does: a deque append and a ring of the worker's doorbell
    (or a counted drop when the worker is more than :data:`QUEUE_SECONDS` behind, or while
    paused).

    A pause cuts at the moment :meth:`pause` and :meth:`resume` were called, on the capture
    clock: a block that carries its ``capture_time`` keeps the frames captured before the
    pause and after the resume, whatever its length. Blocks without one are dropped whole
    while paused.
    """

    def __init__(self, max_blocks: int) -> None:
        self._items: deque[Any] = deque()
        self._bell = Doorbell()
        #: The worker's doorbell as a file descriptor that C code rings (an eventfd), or -1; see
        #: :meth:`push_quietly`.
        self.doorbell_fd = self._bell.fd
        self.max_blocks = max_blocks
        self.closed = False
        self.overflows = 0
        self.dropped_frames = 0
        #: The capture stream's rate (set by the session): frames per second of capture time.
        self.rate: int | None = None
        self._pause: tuple[float, float] | None = None  # the latest (pause, resume), time.monotonic()
        # The take's bounds on the capture clock (time.monotonic()): the stream's start and the
        # stop. A server may hand over audio captured just before the start (PipeWire's first
        # packet holds up to a quantum of it) and, at the stop, the rest of its last fragment.
        self._begin = -math.inf
        self._end = math.inf
        self._ended = False  # a block was cut at the end: nothing more is kept
        #: Where the stream's latest block ended on the capture clock (kept or cut), or -inf.
        self.delivered_until = -math.inf

    def pause(self) -> None:
        self._pause = (time.monotonic(), math.inf)

    def resume(self) -> None:
        if self._pause is not None:
            self._pause = (self._pause[0], time.monotonic())

    @property
    def paused(self) -> bool:
        return self._pause is not None and self._pause[1] == math.inf

    @property
    def paused_at(self) -> float | None:
        """When the latest pause began (time.monotonic()), or None."""
        return None if self._pause is None else self._pause[0]

    def begin_at(self, moment: float) -> None:
        """Begin the take at ``moment`` (time.monotonic()): frames captured before it are cut off."""
        self._begin = moment

    def end_at(self, moment: float) -> None:
        """End the take at ``moment`` (time.monotonic()) on the capture clock.

        The stream still delivers what it captured before it (the server's last fragment);
        frames captured later are cut off. Blocks without a capture time are kept whole.
        """
        self._end = moment

    def push(self, block: Block, *, wait: bool = False, capture_time: float | None = None) -> None:
        self._push(block, wait, capture_time, True)

    def push_quietly(self, block: Block, capture_time: float | None = None) -> None:
        """:meth:`push` without waking the worker: the caller rings :attr:`doorbell_fd` soon after.

        For a capture thread that goes to sleep in a foreign call right after it hands over its
        blocks, and rings from there, once it has let go of the GIL (see :mod:`micrec._doorbell`).
        """
        self._push(block, False, capture_time, False)

    def _push(self, block: Block, wait: bool, capture_time: float | None, ring: bool) -> None:
        if self.closed:
            return
        pause, rate = self._pause, self.rate
        if capture_time is not None and rate is not None:
            end = self.delivered_until = capture_time + len(block) / rate
            if self._ended:
                return
            if end > self._end:
                # Once cut, the take is over: a later block the clock places earlier (a
                # server's timing report off by a quantum) would put audio after the cut.
                block, self._ended = block[:max(0, round((self._end - capture_time) * rate))], True
            if capture_time < self._begin:
                early = round((self._begin - capture_time) * rate)
                block, capture_time = block[early:], capture_time + early / rate
            if not len(block):
                return
            self._begin = -math.inf  # the take has begun: the clock's later jumps cut nothing out of it
        if pause is None or capture_time is None or rate is None:
            if pause is None or pause[1] != math.inf:  # not paused: no cut to make
                self._put(block, wait, capture_time, ring)
            return
        frames = len(block)
        before = min(frames, max(0, round((pause[0] - capture_time) * rate)))
        after = frames if pause[1] == math.inf else min(frames, max(0, round((pause[1] - capture_time) * rate)))
        if before >= frames or after <= 0:  # all of it before the pause, or all after the resume
            self._put(block, wait, capture_time, ring)
            return
        if before:
            self._put(block[:before], wait, capture_time, ring)
        if after < frames:
            self._put(block[after:], wait, capture_time + after / rate, ring)

    def wait_delivered(self, moment: float, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the stream has delivered what it captured before ``moment``."""
        deadline = time.monotonic() + timeout
        while self.delivered_until < moment:
            if time.monotonic() >= deadline or self.closed:
                return False
            time.sleep(0.005)
        return True

    def _put(self, block: Block, wait: bool, capture_time: float | None, ring: bool = True) -> None:
        items = self._items
        if len(items) >= self.max_blocks:
            if not wait:
                self._count_drop(len(block))
                return
            while len(items) >= self.max_blocks and not self.closed:
                time.sleep(0.001)
        items.append(block if capture_time is None else (block, capture_time))
        if ring:
            self._bell.ring()

    def overflow(self, frames: int = 0) -> None:
        self._count_drop(frames)

    def fail(self, error: BaseException) -> None:
        self.put_command(_Fault(error))

    def put_command(self, command: Any) -> None:
        self._items.append(command)
        self._bell.ring()

    def get(self, timeout: float | None = None) -> Any:
        """The next item, or None when ``timeout`` seconds pass without one (the worker's only)."""
        items = self._items
        deadline = None if timeout is None else time.monotonic() + timeout
        while not items:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._bell.wait(left)  # producers append, then ring: a ring that finds nothing was used up
        return items.popleft()

    def _count_drop(self, frames: int) -> None:
        self.overflows += 1
        self.dropped_frames += frames
        if self.overflows == 1 or self.overflows % 100 == 0:
            log.warning("micrec: audio overflow #%d (%d frames dropped so far): the recorder "
                        "could not keep up", self.overflows, self.dropped_frames)


class Session:
    """A running recording. Created by :meth:`open`; ended by :meth:`stop` or by a fault."""

    def __init__(self, config: SessionConfig, stream: CaptureStream, sink: CaptureQueue,
                 encoder: Encoder, processors: list[Any],
                 on_end: Callable[[Session], None], *, gate: VoiceGate | None = None) -> None:
        self.config = config
        self.rate = encoder.rate
        self.channels = encoder.channels
        self.error: BaseException | None = None
        self.reached_duration = False
        self._max_frames = None if config.duration is None else round(config.duration * self.rate)
        self.block_listeners: list[Callable[[Block], None]] = []
        self._stream = stream
        self._sink = sink
        self._encoder = encoder
        self._processors = processors
        self._gate = gate
        self._on_end = on_end
        self._stream_closed = False
        self._stream_lock = threading.Lock()
        self._level_frames = self.rate * _LEVEL_WINDOW_MS // 1000
        self._peaks = _PeakWindow(self._level_frames)
        # Processors that pair blocks by time (the echo canceller) are told each block's.
        self._timed = [p for p in processors if hasattr(p, "set_capture_time")]
        self._current_peak = 0
        self._max_peak = 0
        self._pacer: BlockPacer | None = None
        self._seek_fence = -math.inf  # see _run_command
        self._worker = threading.Thread(target=self._run, name="micrec-worker", daemon=True)
        self._output_identity = _identity(self.path)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, config: SessionConfig, backend: CaptureBackend,
             on_end: Callable[[Session], None],
             listeners: list[Callable[[Block], None]] | None = None) -> Session:
        """Check everything, open the device and the file, and start recording.

        Raises a MicrecError (and leaves no file) when anything cannot be done.
        """
        encoder_cls = encoders.resolve(config.encoder, config.path)
        rate = encoder_cls.admitted_rate(config.sample_rate)
        channels = encoder_cls.admitted_channels(config.channels)
        voice = build_voice_processing(rate, channels, auto_gain=config.auto_gain,
                                       suppress_noise=config.suppress_noise,
                                       cancel_echo=config.cancel_echo, backend=backend)
        mix = build_system_mix(rate, channels, backend) if config.mix_system_audio else None
        monitored = check_output(backend, config.output, "system_audio") if config.system_audio else None
        gate = _voice_gate(config, rate, channels)
        _check_output_path(config.path)
        block_frames = _block_frames(config, rate)
        sink = CaptureQueue(max_blocks=max(1, QUEUE_SECONDS * rate // block_frames))
        if monitored is not None:
            outputs, output = monitored
            spec = StreamSpec(output.id, rate, monitor_channels(output, channels), block_frames)
            stream = outputs.open_monitor(spec, sink)
        else:
            spec = StreamSpec(config.device, rate, channels, block_frames)
            stream = backend.open(spec, sink)
        sink.rate = stream.rate
        try:
            encoder = _open_encoder(encoder_cls, config, rate, channels)
        except BaseException:
            stream.close()
            raise
        processors = build_converter(stream.rate, stream.channels, rate, channels)
        if mix is not None:
            processors.append(mix.clock)  # before the echo canceller holds any audio back
        if voice is not None:
            processors.append(voice)
        if mix is not None:
            processors.append(mix)
        session = cls(config, stream, sink, encoder, processors, on_end, gate=gate)
        session.block_listeners.extend(listeners or ())
        if config.blocksize is None and voice is None and mix is None and gate is None:
            # Nothing reacts to the audio as it comes: the blocks may grow while nobody reads.
            # (The test closes over the list, not the session: no reference cycle keeps the
            # session, and its queue's doorbell, a file descriptor, after the take.)
            listeners = session.block_listeners
            session._pacer = pacer_for(stream, round(block_frames * stream.rate / rate),
                                       lambda: any(map(needs_blocks_soon, listeners)))
        session._worker.start()
        try:
            for processor in processors:
                start = getattr(processor, "start", None)
                if start is not None:
                    start()
            sink.begin_at(time.monotonic())
            stream.start()
        except BaseException:
            session._sink.closed = True
            sink.put_command(_Stop())
            session._worker.join()
            encoder.abort()
            raise
        return session

    # -- control (any thread but the worker) -------------------------------------------------
    def pause(self) -> None:
        self._sink.pause()
        self._current_peak = 0
        self._touch()

    def resume(self) -> None:
        self._sink.resume()
        self._touch()  # the caller watches the take: its length moves on in short blocks again

    def _touch(self) -> None:
        if self._pacer is not None:
            self._pacer.touch()

    def seek(self, position_ms: float) -> int:
        """Cut the take at ``position_ms``; returns the frame it now ends at (call :meth:`settle` first)."""
        frame = round(position_ms * self.rate / 1000)
        return int(self._call(_Seek(frame)))

    def settle(self) -> None:
        """While paused: return once what was captured before the pause is written.

        It is still on its way at the pause (the server's last fragment, a block in the queue)
        and belongs to the take before any cut: a seek, and the length it is checked against,
        wait for it (at most :data:`TAIL_WAIT_SECONDS` for the stream, then the worker's queue).
        """
        paused_at = self._sink.paused_at
        if paused_at is None or not self._sink.paused or not self._worker.is_alive():
            return
        self._sink.wait_delivered(paused_at, TAIL_WAIT_SECONDS)
        self._call(_Command())  # queued after those blocks: done once they are written

    def stop(self) -> None:
        """Stop capture, write every frame captured up to now, and finalize the file.

        The capture stream delivers what the sound server still holds of the audio captured
        before the call (about one fragment's wait), and nothing captured after it.
        """
        self._sink.end_at(time.monotonic())
        self._close_stream(keep_tail=True)
        if self._worker.is_alive():
            self._sink.put_command(_Stop())
            self._worker.join()

    def cancel(self) -> None:
        self.stop()
        self._encoder.abort()  # deletes the file (every segment of a segmented take)

    def _call(self, command: _Command) -> Any:
        if not self._worker.is_alive():
            raise self._ended_error("the session has ended")
        self._sink.put_command(command)
        while not command.done.wait(0.1):
            if not self._worker.is_alive():
                raise self._ended_error("the session ended before the command ran")
        if command.error is not None:
            raise command.error
        return command.result

    def _ended_error(self, what: str) -> BaseException:
        if self.error is not None:
            return self.error
        # Blocks captured before a pause are still written after it, so a take can reach its
        # duration (or its gate's end) while paused: it ended normally, as after stop().
        why = "it reached its configured end" if self.reached_duration else "it was stopped"
        return StateError(f"{what} ({why}): the take is complete")

    # -- readings ----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The file being written (with segments: the open segment's)."""
        return self._encoder.path

    @property
    def segment_paths(self) -> list[Path]:
        """Every segment's file so far, or empty when the take is one file."""
        return list(getattr(self._encoder, "segment_paths", ()))

    @property
    def waiting_for_voice(self) -> bool:
        return self._gate is not None and self._gate.waiting

    def seconds_since_voice(self) -> float | None:
        """Seconds of audio since the last voice (or the start); None without a voice gate or while waiting."""
        return None if self._gate is None else self._gate.seconds_since_voice()

    @property
    def frames_recorded(self) -> int:
        return self._encoder.frames_written

    @property
    def overflows(self) -> int:
        return self._sink.overflows

    @property
    def dropped_frames(self) -> int:
        return self._sink.dropped_frames

    def levels(self) -> tuple[float, float]:
        """(current, max) peak levels in dBFS; a reader keeps the blocks short (see :mod:`._pacing`)."""
        self._touch()
        return _dbfs(self._current_peak), _dbfs(self._max_peak)

    @property
    def ended(self) -> bool:
        return not self._worker.is_alive()

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        import numpy as np

        ndarray, get, consume, encoder = np.ndarray, self._sink.get, self._consume, self._encoder
        # Flush every FLUSH_INTERVAL of wall time or of audio, whichever comes first: after a
        # stall the device delivers a burst, and the file must keep up with the audio too. The
        # wait for the next item ends at the flush time, so a stalled input (a browser that
        # stops sending, a suspended source) still gets its header written; with nothing new
        # since the last flush the worker sleeps until the next item.
        #
        # The first blocks are flushed at once, so that the file holds audio from the start. A
        # flush due before the next block would come is done with this one: the worker then
        # wakes once per block, not again for the flush timer. The timer waits half a block
        # longer than the flush time, so that a block that comes a little late (the server's
        # packets are not the blocks' length apart to the millisecond) is not preceded by a
        # wake-up of its own.
        flush_frames = int(self.rate * FLUSH_INTERVAL)
        eager_frames = int(self.rate * EAGER_FLUSH_SECONDS)
        next_flush, next_flush_frame = time.monotonic() + FLUSH_INTERVAL, 1  # the first block
        flushed = encoder.frames_written
        stream_rate = self._stream.rate
        late = 0.0  # half the latest block's length
        try:
            while True:
                timeout = None if encoder.frames_written == flushed else next_flush + late - time.monotonic()
                item = get(timeout)
                capture_time = None
                if type(item) is tuple:  # (block, capture_time)
                    item, capture_time = item
                if type(item) is ndarray:
                    if capture_time is not None and capture_time < self._seek_fence:
                        continue  # captured before the pause that a seek cut: the cut ends the take there
                    consume(item, capture_time)
                    if self._pacer is not None:
                        self._pacer.block_done()
                    late = 0.5 * len(item) / stream_rate
                    if encoder.frames_written < next_flush_frame and \
                            time.monotonic() + len(item) / stream_rate < next_flush:
                        continue
                elif item is None:  # the flush time passed with no item
                    pass
                elif isinstance(item, _Stop):
                    break
                elif isinstance(item, _Fault):
                    self._keep_what_was_captured()
                    raise item.error
                else:
                    self._run_command(item)
                    continue
                if encoder.frames_written != flushed:
                    self._flush()
                flushed = encoder.frames_written
                next_flush = time.monotonic() + FLUSH_INTERVAL
                # Within the first EAGER_FLUSH_SECONDS of audio every block is flushed.
                next_flush_frame = flushed + (1 if flushed < eager_frames else flush_frames)
            self._drain_processors()
        except _LimitReached:
            self.reached_duration = True
        except BaseException as exc:  # noqa: BLE001 - kept, surfaced through on_end / stop()
            self.error = exc
            log.error("micrec: recording to %s ended by a fault: %s", self.path, exc)
        finally:
            self._finish()

    def _flush(self) -> None:
        self._check_output_file()  # first: FLAC's header update opens the file by its name
        self._encoder.flush()

    def _check_output_file(self) -> None:
        # On Linux a file deleted (or whose directory is removed) mid-take takes the writes
        # without complaint, into an inode that vanishes at close: the take would be lost
        # silently. One stat per flush notices it.
        try:
            now = _identity(self.path)
        except FileNotFoundError:
            now = None
        if now == self._output_identity:
            return
        if now is not None and now[0] != self._output_identity[0]:  # a new segment's file
            self._output_identity = now
            return
        seconds = self._encoder.frames_written / self.rate
        if now is not None:
            what = "was replaced by another file"
        elif not self.path.parent.exists():
            what = f"was removed with its directory {str(self.path.parent)!r}"
        else:
            what = "was deleted"
        raise OutputError(f"the output file {str(self.path)!r} {what} while recording: the take ended after "
                          f"{seconds:.2f} s, and what was written went with the deleted file", path=self.path,
                          errno=errno.ENOENT)

    def _consume(self, block: Block, capture_time: float | None = None) -> None:
        if capture_time is not None:
            for processor in self._timed:
                processor.set_capture_time(capture_time)
        for processor in self._processors:
            block = processor.process(block)
        if not len(block):
            return
        self._measure(block)
        if self._gate is None:
            self._write(block)
        else:
            self._write_gated(self._gate.process(block))

    def _write_gated(self, block: Block) -> None:
        if len(block):
            self._write(block)
        if self._gate is not None and self._gate.ended:
            raise _LimitReached

    def _measure(self, block: Block) -> None:
        """The level meter: the peak of the latest ~50 ms, even inside a longer block."""
        window = self._level_frames
        if len(block) > window:
            head = _peak(block[:-window])
            peak = _peak(block[-window:])
            self._peaks.add(head, len(block) - window)
            self._current_peak = self._peaks.add(peak, window)
            peak = max(peak, head)
        else:
            peak = _peak(block)
            self._current_peak = self._peaks.add(peak, len(block))
        if peak > self._max_peak:
            self._max_peak = peak

    def _write(self, block: Block) -> None:
        if self._max_frames is not None:
            room = self._max_frames - self._encoder.frames_written
            block = block[:room]
            if not len(block):
                raise _LimitReached
        try:
            self._encoder.write(block)
        except OutputError:
            self._check_output_file()  # a deleted or replaced file is the cause to report
            raise
        for listener in self.block_listeners:
            try:
                listener(block)
            except Exception:
                log.exception("micrec: block listener failed")
        if self._max_frames is not None and self._encoder.frames_written >= self._max_frames:
            raise _LimitReached

    def _keep_what_was_captured(self) -> None:
        """Before a capture fault ends the take: the converters still hold audio from before it."""
        try:
            self._drain_processors()
        except Exception as exc:  # noqa: BLE001 - the capture fault is the one to report
            log.warning("micrec: writing the last converted audio of %s failed: %s", self.path, exc)

    def _drain_processors(self) -> None:
        tail = None
        for processor in self._processors:
            if tail is not None and len(tail):
                tail = processor.process(tail)
            held = processor.flush()
            if len(held):
                import numpy as np

                tail = held if tail is None or not len(tail) else np.concatenate([tail, held])
        if self._gate is not None:
            import numpy as np

            parts = [self._gate.process(tail)] if tail is not None and len(tail) else []
            parts.append(self._gate.flush())  # empty once the gate has ended the take
            self._write_gated(np.concatenate(parts))
        elif tail is not None and len(tail):
            self._write(tail)

    def _run_command(self, command: _Command) -> None:
        try:
            if isinstance(command, _Seek):
                if self._gate is not None:
                    self._write_gated(self._gate.flush())  # what was held back precedes the cut
                command.result = self._encoder.seek(command.frame)
                # Blocks captured before the pause may still be on their way (a pause cuts by
                # capture time): after the cut, only audio from after the resume belongs.
                paused_at = self._sink.paused_at
                self._seek_fence = -math.inf if paused_at is None else paused_at
                self._output_identity = _identity(self.path)  # a seek may write the file afresh
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            command.error = exc
        finally:
            command.done.set()

    def _finish(self) -> None:
        self._close_stream()
        for processor in self._processors:
            close = getattr(processor, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("micrec: closing %r failed: %s", processor, exc)
        self._processors = []  # native resamplers are freed now, not at interpreter exit
        try:
            self._encoder.close()
        except BaseException as exc:  # noqa: BLE001
            if self.error is None:
                self.error = exc
        if self.error is not None or self.reached_duration:
            self._on_end(self)

    def _close_stream(self, keep_tail: bool = False) -> None:
        """Close the capture stream; with ``keep_tail``, what it delivers while closing is kept.

        The worker closes without the tail: a stream still pushing (``wait=True``) into a full
        queue would wait for the worker forever.
        """
        with self._stream_lock:
            if self._stream_closed:
                return
            self._stream_closed = True
            if not keep_tail:
                self._sink.closed = True
        try:
            self._stream.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("micrec: closing the capture stream failed: %s", exc)
        self._sink.closed = True


class _PeakWindow:
    """The highest peak over the latest blocks that together cover at least ``frames`` frames."""

    def __init__(self, frames: int) -> None:
        self._frames = max(1, frames)
        self._blocks: deque[tuple[int, int]] = deque()
        self._total = 0

    def add(self, peak: int, frames: int) -> int:
        blocks = self._blocks
        blocks.append((peak, frames))
        self._total += frames
        while self._total - blocks[0][1] >= self._frames:
            self._total -= blocks.popleft()[1]
        return max(p for p, _ in blocks)


def _identity(path: Path) -> tuple[Path, int, int]:
    info = os.stat(path)
    return path, info.st_dev, info.st_ino


def _peak(block: Block) -> int:
    hi, lo = int(block.max()), int(block.min())
    return hi if hi >= -lo else -lo


def _block_frames(config: SessionConfig, rate: int) -> int:
    """Frames per capture block at ``rate`` (the encoder's, which may differ from the configured)."""
    if config.blocksize is None:
        return rate * BLOCK_MS // 1000
    return max(1, round(config.blocksize * rate / config.sample_rate))


def _dbfs(peak: int) -> float:
    if peak <= 0:
        return SILENCE_DBFS
    return round(20.0 * math.log10(peak / 32768.0), 2)


def _check_output_path(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"output_path {str(path)!r} is a directory; give a file name", path=path)
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"the directory {str(parent)!r} of output_path does not exist; create it first",
                          path=path)
    if not parent.is_dir():
        raise OutputError(f"{str(parent)!r} in output_path is not a directory", path=path)
    if not os.access(parent, os.W_OK):
        raise OutputError(f"the directory {str(parent)!r} is not writable; choose another output_path",
                          path=path)


def _voice_gate(config: SessionConfig, rate: int, channels: int) -> VoiceGate | None:
    if config.until_silence is None and not config.wait_for_voice:
        return None
    from .dsp.vad import VoiceGate

    return VoiceGate(rate, channels, until_silence=config.until_silence, wait_for_voice=config.wait_for_voice)


def _open_encoder(encoder_cls: type[Encoder], config: SessionConfig, rate: int, channels: int) -> Encoder:
    if config.segment_seconds is None:
        return _create_encoder(encoder_cls, config.path, rate, channels, config.bit_rate)
    from .encoders.segmented import SegmentedEncoder

    def open_segment(path: Path) -> Encoder:
        return _create_encoder(encoder_cls, path, rate, channels, config.bit_rate)

    return SegmentedEncoder(open_segment, config.path, rate, channels, config.bit_rate,
                            max(1, round(config.segment_seconds * rate)))


def _create_encoder(encoder_cls: type[Encoder], path: Path, rate: int, channels: int,
                    bit_rate: int) -> Encoder:
    existed = path.exists()
    try:
        return encoder_cls(path, rate, channels, bit_rate)
    except MicrecError:
        if not existed:
            path.unlink(missing_ok=True)
        raise
    except Exception as exc:
        if not existed:
            path.unlink(missing_ok=True)
        raise OutputError(f"cannot create {str(path)!r}: {exc}", path=path) from exc
