"""The client path: the Flet client's own recorder streams its microphone to micrec.

In a web app (``page.web``), and wherever the Python process has no capture device of its own
but the client has one (Flet's mobile apps), the microphone is the client's. Flet's stock
clients contain flet-audio-recorder's Dart service (control type ``"AudioRecorder"``), which
streams PCM16 to Python as ``stream`` events when the control has a stream handler. Those
chunks go into a :class:`~micrec.backends.pushed.PushedBackend`, the capture backend of every
front end whose audio is pushed from outside, and micrec's ordinary session resamples,
processes, meters and encodes them into the file on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..backends.pushed import PushedBackend, PushLimits
from ..errors import DeviceLostError, MalformedAudioError
from ..types import AudioEncoder

log = logging.getLogger("micrec")

__all__ = ["CLIENT_CHANNELS", "CLIENT_RATE", "ClientFeed", "client_configuration", "uses_client"]

#: What the client's recorder sends, whatever rate and channels it is asked for (measured with
#: flet 1.0.5's web client: PCM16 at 44100 Hz stereo). micrec asks for exactly that, so that the
#: request and the stream agree, and converts on the server.
CLIENT_RATE, CLIENT_CHANNELS = 44100, 2
#: Largest chunk accepted: the web client sends a few kilobytes at a time; 1 MiB is 6 s.
MAX_CHUNK_BYTES = 1 << 20
#: No chunk for this long while a take is open: the client is gone (tab closed, network lost).
#: The client keeps streaming while paused (the pause is micrec's), so silence means absence.
IDLE_SECONDS = 5.0
#: How often the watchdog looks at the connection and the pace.
WATCH_SECONDS = 0.25
#: After this much wall time the stream's pace is compared with the format it should have...
FORMAT_CHECK_SECONDS = 5.0
#: ...and under this fraction of real time it is another format, which would play at the wrong speed.
MIN_PACE = 0.6


def uses_client(page: Any, backend: Any) -> bool:
    """Whether takes record the Flet client's microphone rather than this process's.

    True in a web app, and in a mobile app (the Python process runs on the phone, where
    micrec has no backend), unless the app chose a ``backend=`` itself.
    """
    if page is None or backend is not None:
        return False
    if getattr(page, "web", False):
        return True
    platform = getattr(page, "platform", None)
    is_mobile = getattr(platform, "is_mobile", None)
    return bool(is_mobile()) if callable(is_mobile) else False


def client_configuration(config: Any) -> Any:
    """The configuration sent to the client's recorder for a take configured as ``config``.

    Raw PCM16 in the client's own format; voice processing is micrec's (on the server); the
    device is passed on (an id from the client's ``get_input_devices()``).
    """
    from .types import AudioRecorderConfiguration

    return AudioRecorderConfiguration(encoder=AudioEncoder.PCM16BITS, sample_rate=CLIENT_RATE,
                                      channels=CLIENT_CHANNELS, device=config.device)


class ClientFeed:
    """One take's audio from the client: checks each chunk and pushes it into micrec's session.

    Parameters
    ----------
    limits : PushLimits, optional
        Take length and real-time limits of the pushed stream.
    clock : callable, optional
        Monotonic seconds.

    Notes
    -----
    Every method runs on the app's event loop (chunks arrive there as Flet events).
    """

    def __init__(self, limits: PushLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = PushedBackend(CLIENT_RATE, CLIENT_CHANNELS, limits, clock=clock, device_id="client",
                                     label="The Flet client's microphone", limit_error=MalformedAudioError)
        self._clock = clock
        self._first_chunk: float | None = None
        self._last_chunk = clock()
        self._watcher: asyncio.Task[None] | None = None
        self.ended = False

    def feed(self, chunk: Any) -> None:
        """Hand one ``stream`` event's chunk to the take; a bad one ends the take with the reason."""
        stream = self.backend.stream
        if stream is None or self.ended:
            return  # before the session opened (the client starts first), or after it ended
        now = self._clock()
        self._last_chunk = now
        if self._first_chunk is None:
            self._first_chunk = now
        try:
            frames = _frames(chunk)  # checks the chunk before anything is made of it
            stream.feed(bytes(chunk), frames)
            self._check_pace(now)
        except Exception as exc:  # noqa: BLE001 - any bad chunk ends the take, with its reason
            self.fail(exc)

    def pause(self) -> None:
        stream = self.backend.stream
        if stream is not None:
            stream.flush()
            stream.paused = True

    def resume(self) -> None:
        stream = self.backend.stream
        if stream is not None:
            stream.paused = False

    def flush(self) -> None:
        """Hand over what was held back to fill a block (before a stop)."""
        if self.backend.stream is not None and not self.ended:
            self.backend.stream.flush()

    def fail(self, error: BaseException) -> None:
        """End the take with ``error``: the session finalizes the file with what arrived."""
        stream = self.backend.stream
        if stream is None or self.ended:
            return
        self.ended = True
        log.warning("micrec.flet: the client's take ends: %s", error)
        stream.fail(error)

    def watch(self, connected: Callable[[], bool]) -> None:
        """Start watching for a client that went away (call on the app's event loop)."""
        self._last_chunk = self._clock()
        self._watcher = asyncio.ensure_future(self._watch(connected))

    def close(self) -> None:
        """Stop watching (the take ended)."""
        self.ended = True
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self, connected: Callable[[], bool]) -> None:
        while not self.ended:
            await asyncio.sleep(WATCH_SECONDS)
            gone = _safe(connected) is False
            silent = self._clock() - self._last_chunk > IDLE_SECONDS
            if gone or silent:
                why = "disconnected (tab closed or network lost)" if gone else \
                    f"sent no audio for {IDLE_SECONDS:g} s"
                self.fail(DeviceLostError(
                    f"the Flet client {why} mid-take; the file keeps the audio that arrived",
                    name="client"))

    def _check_pace(self, now: float) -> None:
        stream = self.backend.stream
        assert stream is not None and self._first_chunk is not None
        elapsed = now - self._first_chunk
        if elapsed < FORMAT_CHECK_SECONDS or elapsed > FORMAT_CHECK_SECONDS + 1:
            return
        pace = stream.received_frames / stream.rate / elapsed
        if pace < MIN_PACE:
            raise MalformedAudioError(
                f"the client sends {stream.received_frames * 2 * stream.channels / elapsed:.0f} bytes/s, "
                f"not the {stream.rate * 2 * stream.channels} of {stream.rate} Hz "
                f"{stream.channels}-channel PCM16 it should: its recorder uses a format micrec does not "
                "know, and the take would play at the wrong speed", value=round(pace, 2), name="chunk")


def _frames(chunk: Any) -> int:
    if not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise MalformedAudioError(f"a stream chunk of type {type(chunk).__name__} is not PCM16 bytes",
                                  value=type(chunk).__name__, name="chunk")
    size = len(chunk)
    width = 2 * CLIENT_CHANNELS
    if size > MAX_CHUNK_BYTES:
        raise MalformedAudioError(f"a stream chunk of {size} bytes is over the limit of {MAX_CHUNK_BYTES}",
                                  value=size, name="chunk")
    if size == 0 or size % width:
        raise MalformedAudioError(f"a stream chunk of {size} bytes is not a whole number of "
                                  f"{CLIENT_CHANNELS}-channel PCM16 frames", value=size, name="chunk")
    return size // width


def _safe(probe: Callable[[], bool]) -> bool | None:
    with contextlib.suppress(Exception):
        return probe()
    return None
