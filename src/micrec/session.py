"""One recording session: capture stream → queue → worker (convert, DSP, level, encode, write).

The capture side only hands blocks to :class:`CaptureQueue`; everything else happens on the
session's worker thread, in the order the blocks and commands were queued. A fault on either
side (the device, the encoder, the disk), or reaching the configured duration, ends the session
on the worker: the file is finalized with what was captured and ``on_end`` is told.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import encoders
from .backends import CaptureBackend, StreamSpec
from .dsp import build_voice_processing
from .dsp.convert import build_converter
from .errors import MicrecError, OutputError
from .types import AudioEncoder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .backends import CaptureStream
    from .encoders import Encoder

    Block = npt.NDArray[np.int16]

__all__ = ["CaptureQueue", "Session", "SessionConfig"]

log = logging.getLogger("micrec")

#: Capture block length. Every block wakes two Python threads (capture and worker), and those
#: wake-ups, not the work, are most of micrec's CPU: 50 ms costs 0.6x of 20 ms (see
#: docs/benchmarks.md) and keeps stop prompt (the reader finishes at most one block).
BLOCK_MS = 50
#: Seconds of audio the queue holds before blocks are dropped (and counted as overflows).
QUEUE_SECONDS = 10
#: How often the encoder is asked to make its file readable by others (header updates).
FLUSH_INTERVAL = 0.5
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
    """The take has the configured duration: the session ends normally."""


class _Fault:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class CaptureQueue:
    """The sink capture streams deliver to: a lock-free hand-off to the worker thread.

    ``push`` is all an audio callback does: one C-level queue put (or a counted drop when the
    worker is more than :data:`QUEUE_SECONDS` behind, or while paused).
    """

    def __init__(self, max_blocks: int) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.max_blocks = max_blocks
        self.paused = False
        self.closed = False
        self.overflows = 0
        self.dropped_frames = 0

    def push(self, block: Block, *, wait: bool = False) -> None:
        if self.paused or self.closed:
            return
        q = self._queue
        if q.qsize() >= self.max_blocks:
            if not wait:
                self._count_drop(len(block))
                return
            while q.qsize() >= self.max_blocks and not self.closed:
                time.sleep(0.001)
        q.put(block)

    def overflow(self, frames: int = 0) -> None:
        self._count_drop(frames)

    def fail(self, error: BaseException) -> None:
        self._queue.put(_Fault(error))

    def put_command(self, command: Any) -> None:
        self._queue.put(command)

    def get(self) -> Any:
        return self._queue.get()

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
                 on_end: Callable[[Session], None]) -> None:
        self.config = config
        self.path = config.path
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
        self._on_end = on_end
        self._stream_closed = False
        self._stream_lock = threading.Lock()
        self._peaks = _PeakWindow(self.rate * _LEVEL_WINDOW_MS // 1000)
        self._current_peak = 0
        self._max_peak = 0
        self._worker = threading.Thread(target=self._run, name="micrec-worker", daemon=True)

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
        _check_output_path(config.path)
        sink = CaptureQueue(max_blocks=QUEUE_SECONDS * 1000 // BLOCK_MS)
        spec = StreamSpec(config.device, rate, channels, rate * BLOCK_MS // 1000)
        stream = backend.open(spec, sink)
        try:
            encoder = _create_encoder(encoder_cls, config.path, rate, channels, config.bit_rate)
        except BaseException:
            stream.close()
            raise
        processors = build_converter(stream.rate, stream.channels, rate, channels)
        if voice is not None:
            processors.append(voice)
        session = cls(config, stream, sink, encoder, processors, on_end)
        session.block_listeners.extend(listeners or ())
        session._worker.start()
        try:
            for processor in processors:
                start = getattr(processor, "start", None)
                if start is not None:
                    start()
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
        self._sink.paused = True
        self._current_peak = 0

    def resume(self) -> None:
        self._sink.paused = False

    def seek(self, position_ms: float) -> int:
        """Cut the take at ``position_ms``; returns the frame it now ends at."""
        frame = round(position_ms * self.rate / 1000)
        return int(self._call(_Seek(frame)))

    def stop(self) -> None:
        """Stop capture, write every block already captured, and finalize the file."""
        self._close_stream()
        if self._worker.is_alive():
            self._sink.put_command(_Stop())
            self._worker.join()

    def cancel(self) -> None:
        self.stop()
        self.path.unlink(missing_ok=True)

    def _call(self, command: _Command) -> Any:
        if not self._worker.is_alive():
            raise self.error or MicrecError("the session has ended")
        self._sink.put_command(command)
        while not command.done.wait(0.1):
            if not self._worker.is_alive():
                raise self.error or MicrecError("the session ended before the command ran")
        if command.error is not None:
            raise command.error
        return command.result

    # -- readings ----------------------------------------------------------------------------
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
        """(current, max) peak levels in dBFS."""
        return _dbfs(self._current_peak), _dbfs(self._max_peak)

    @property
    def ended(self) -> bool:
        return not self._worker.is_alive()

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        import numpy as np

        ndarray, get, consume, encoder = np.ndarray, self._sink.get, self._consume, self._encoder
        # Flush every FLUSH_INTERVAL of wall time or of audio, whichever comes first: after a
        # stall the device delivers a burst, and the file must keep up with the audio too.
        flush_frames = int(self.rate * FLUSH_INTERVAL)
        next_flush, next_flush_frame = time.monotonic() + FLUSH_INTERVAL, flush_frames
        try:
            while True:
                item = get()
                if type(item) is ndarray:
                    consume(item)
                    now = time.monotonic()
                    if now >= next_flush or encoder.frames_written >= next_flush_frame:
                        encoder.flush()
                        next_flush = now + FLUSH_INTERVAL
                        next_flush_frame = encoder.frames_written + flush_frames
                elif isinstance(item, _Stop):
                    break
                elif isinstance(item, _Fault):
                    raise item.error
                else:
                    self._run_command(item)
            self._drain_processors()
        except _LimitReached:
            self.reached_duration = True
        except BaseException as exc:  # noqa: BLE001 - kept, surfaced through on_end / stop()
            self.error = exc
            log.error("micrec: recording to %s ended by a fault: %s", self.path, exc)
        finally:
            self._finish()

    def _consume(self, block: Block) -> None:
        for processor in self._processors:
            block = processor.process(block)
        if not len(block):
            return
        hi, lo = int(block.max()), int(block.min())
        peak = hi if hi >= -lo else -lo
        self._current_peak = self._peaks.add(peak, len(block))
        if peak > self._max_peak:
            self._max_peak = peak
        self._write(block)

    def _write(self, block: Block) -> None:
        if self._max_frames is not None:
            room = self._max_frames - self._encoder.frames_written
            block = block[:room]
            if not len(block):
                raise _LimitReached
        self._encoder.write(block)
        for listener in self.block_listeners:
            try:
                listener(block)
            except Exception:
                log.exception("micrec: block listener failed")
        if self._max_frames is not None and self._encoder.frames_written >= self._max_frames:
            raise _LimitReached

    def _drain_processors(self) -> None:
        tail = None
        for processor in self._processors:
            if tail is not None and len(tail):
                tail = processor.process(tail)
            held = processor.flush()
            if len(held):
                import numpy as np

                tail = held if tail is None or not len(tail) else np.concatenate([tail, held])
        if tail is not None and len(tail):
            self._write(tail)

    def _run_command(self, command: _Command) -> None:
        try:
            if isinstance(command, _Seek):
                command.result = self._encoder.seek(command.frame)
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

    def _close_stream(self) -> None:
        with self._stream_lock:
            if self._stream_closed:
                return
            self._stream_closed = True
            self._sink.closed = True
        try:
            self._stream.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("micrec: closing the capture stream failed: %s", exc)


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
