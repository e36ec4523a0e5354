"""``micrec.flet.AudioRecorder``: flet-audio-recorder's service, recording with micrec.

The recorder is a Flet 1.0 ``Service`` of flet-audio-recorder's control type
(``"AudioRecorder"``), so Flet's stock clients run their own Dart recorder for it. In a
desktop app it records the microphone of this process; in a web (or mobile) app the client's
recorder streams the visitor's microphone as PCM16 and micrec writes the file here
(:mod:`micrec.flet._client`).

The methods are flet-audio-recorder 1.0's coroutines. Each one runs micrec's blocking call
on a thread of the recorder's own (a :class:`micrec.aio.CallThread`: one call at a time, in
call order, the core's events handed over before the caller resumes), so the app's event
loop never waits for a device or a file. Events come back to that loop through
:class:`~micrec.flet._dispatch.Delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Optional, TypeVar

import flet as ft

from ..aio import CallThread
from ..errors import DeviceError, DeviceLostError, InvalidConfigError, PermissionDeniedError, StateError
from ..recorder import AudioRecorder as CoreRecorder
from ..types import Amplitude, AudioEncoder, AudioRecorderState, InputDevice
from ..types import AudioRecorderStateChangeEvent as CoreStateEvent
from . import types as t
from ._client import ClientFeed, client_configuration, uses_client
from ._dispatch import Delivery, Handler, current_page
from ._upload import upload_file

log = logging.getLogger("micrec")

__all__ = ["AudioRecorder"]

T = TypeVar("T")

#: Flet 0.27's property-style settings and the configuration field each one stands for.
LEGACY_SETTINGS = {
    "audio_encoder": "encoder",
    "suppress_noise": "suppress_noise",
    "cancel_echo": "cancel_echo",
    "auto_gain": "auto_gain",
    "channels_num": "channels",
    "sample_rate": "sample_rate",
    "bit_rate": "bit_rate",
}
#: micrec's own settings beyond Flet's (docs/API.md "Extensions"): keyword arguments and
#: attributes of the recorder, handed to the core at each start_recording.
EXTENSION_SETTINGS = ("system_audio", "mix_system_audio", "until_silence", "wait_for_voice", "segment_seconds")
EVENT_WAIT = 10.0  # s: how long a method waits for micrec to hand over the events it caused
CLIENT_WAIT = 30.0  # s: how long a call to the Flet client may take (a permission prompt waits for the visitor)


@dataclasses.dataclass
class _Take:
    """One recording as the Flet layer sees it."""

    path: Path
    keep: bool  # the app named the file; otherwise it is a temporary file of ours
    upload: t.AudioRecorderUploadSettings | None


def _client_stream(e: Any) -> None:
    """The stream handler the client sees during a client take: the chunks are micrec's to take."""


def _legacy_setting(name: str) -> property:
    field_name = LEGACY_SETTINGS[name]

    def get(self: AudioRecorder) -> Any:
        return getattr(self.configuration, field_name)

    def set_(self: AudioRecorder, value: Any) -> None:
        if value is not None:
            setattr(self.configuration, field_name, value)

    return property(get, set_, doc=f"Flet 0.27 name of ``configuration.{field_name}``.")


@ft.control("AudioRecorder", init=False)  # type: ignore[arg-type]
class AudioRecorder(ft.Service):
    """Records a microphone into a file with micrec, with flet-audio-recorder's API.

    In a desktop app the microphone is the Python process's own; in a web app (``page.web``)
    or a mobile app it is the client's (the visitor's browser), whose recorder streams PCM16
    to micrec, which writes ``output_path`` on the server.

    Parameters
    ----------
    configuration : AudioRecorderConfiguration, optional
        Default settings of every take (Flet's defaults: WAV, 44100 Hz, stereo).
    on_state_change : callable, optional
        Called with an :class:`AudioRecorderStateChangeEvent` at every transition.
    on_upload : callable, optional
        Called with :class:`AudioRecorderUploadEvent` progress while a take is uploaded.
    on_stream : callable, optional
        Called with :class:`AudioRecorderStreamEvent` PCM16 chunks while recording. Setting
        it makes every take a stream, which needs ``AudioEncoder.PCM16BITS`` (as in Flet).
    audio_encoder, suppress_noise, cancel_echo, auto_gain, channels_num, sample_rate, bit_rate
        Flet 0.27's names for the configuration fields. Passing any of them (or
        ``on_state_changed``) makes a 0.27-style recorder whose methods are synchronous, with
        ``*_async`` coroutine twins and ``wait_timeout=``, as in Flet 0.27.
    on_state_changed : callable, optional
        Flet 0.27's name of ``on_state_change``.
    ref, data, key
        As on any Flet control.
    backend : str or CaptureBackend, optional
        micrec's capture backend (default: the sound server, else PortAudio).
    system_audio, mix_system_audio, until_silence, wait_for_voice, segment_seconds
        micrec's extensions, as on :class:`micrec.AudioRecorder` (also read/write attributes;
        a change takes effect at the next ``start_recording``). A take that ends by itself
        (``until_silence``) is finalized, and uploaded if asked, as after ``stop_recording``.

    Notes
    -----
    Handlers may be plain functions or coroutine functions, with or without the event
    argument. They run on the event loop that called ``start_recording`` (in the order the
    transitions happened), so they may change controls and call ``page.update()``; the page
    is updated after a handler that did not, as Flet does after its own events.

    Made inside a page's handler (or ``main``), the recorder registers itself with the page,
    as every Flet 1.0 service does; keep a reference to it. A desktop recorder needs no page.
    In a client take the client's pause is micrec's: the client streams on and micrec leaves
    the paused audio out; levels come from micrec's meter; a denied microphone raises
    :class:`~micrec.PermissionDeniedError`; a client that goes away ends the take with
    :class:`~micrec.DeviceLostError` after finalizing what arrived.
    """

    configuration: t.AudioRecorderConfiguration = dataclasses.field(
        default_factory=lambda: t.AudioRecorderConfiguration())
    on_state_change: Optional[ft.EventHandler[t.AudioRecorderStateChangeEvent]] = None  # noqa: UP045
    on_upload: Optional[ft.EventHandler[t.AudioRecorderUploadEvent]] = None  # noqa: UP045
    on_stream: Optional[ft.EventHandler[t.AudioRecorderStreamEvent]] = None  # noqa: UP045

    #: The Flet 0.27 flavour (``micrec.flet.legacy``), which registers itself by subclassing
    #: with ``legacy=True``: this module stays below it and never imports it.
    _legacy_flavour: ClassVar[type[AudioRecorder] | None] = None

    def __init_subclass__(cls, *, legacy: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if legacy:
            AudioRecorder._legacy_flavour = cls

    def __new__(cls, **kwargs: Any) -> AudioRecorder:
        legacy = any(kwargs.get(name) is not None for name in (*LEGACY_SETTINGS, "on_state_changed"))
        if cls is AudioRecorder and legacy and cls._legacy_flavour is not None:
            cls = cls._legacy_flavour
        return super().__new__(cls)

    def __init__(
        self,
        *,
        configuration: t.AudioRecorderConfiguration | None = None,
        on_state_change: Handler | None = None,
        on_upload: Handler | None = None,
        on_stream: Handler | None = None,
        audio_encoder: AudioEncoder | str | None = None,
        suppress_noise: bool | None = None,
        cancel_echo: bool | None = None,
        auto_gain: bool | None = None,
        channels_num: int | None = None,
        sample_rate: int | None = None,
        bit_rate: int | None = None,
        on_state_changed: Handler | None = None,
        ref: Any = None,
        data: Any = None,
        key: Any = None,
        backend: Any = None,
        system_audio: bool | str = False,
        mix_system_audio: bool = False,
        until_silence: float | None = None,
        wait_for_voice: bool = False,
        segment_seconds: float | None = None,
    ) -> None:
        # What the dataclass __init__ flet generates would set first (its sparse property store).
        self._values: dict[str, Any] = {}
        self._dirty: dict[str, Any] = {}
        self._internals: dict[str, Any] = {}
        self.configuration = configuration if configuration is not None else t.AudioRecorderConfiguration()
        self.on_state_change = on_state_change
        self.on_state_changed = on_state_changed
        self.on_upload = on_upload
        self.on_stream = on_stream
        self.data = data
        self.key = key
        self.audio_encoder = audio_encoder
        self.suppress_noise = suppress_noise
        self.cancel_echo = cancel_echo
        self.auto_gain = auto_gain
        self.channels_num = channels_num
        self.sample_rate = sample_rate
        self.bit_rate = bit_rate
        self.system_audio = system_audio
        self.mix_system_audio = mix_system_audio
        self.until_silence = until_silence
        self.wait_for_voice = wait_for_voice
        self.segment_seconds = segment_seconds
        self._backend = backend
        self._core = CoreRecorder(backend=backend, on_state_changed=self._on_core_state)
        self._delivery = Delivery()
        self._delivery.bind(current_page())
        self._take: _Take | None = None
        self._take_lock = threading.Lock()
        self._calls = CallThread("micrec-flet", after=lambda: self._core.wait_for_events(EVENT_WAIT))
        self._sequence = 0
        self._bytes_streamed = 0
        self._feed: ClientFeed | None = None  # the open client take's audio, if any
        self.__post_init__(ref)  # flet: id, ref, init(), and registration with the current page

    audio_encoder = _legacy_setting("audio_encoder")
    suppress_noise = _legacy_setting("suppress_noise")
    cancel_echo = _legacy_setting("cancel_echo")
    auto_gain = _legacy_setting("auto_gain")
    channels_num = _legacy_setting("channels_num")
    sample_rate = _legacy_setting("sample_rate")
    bit_rate = _legacy_setting("bit_rate")

    @property
    def page(self) -> Any:
        """The Flet page the recorder is registered with, else that of the app that made or
        last started it, or None."""
        with contextlib.suppress(RuntimeError):
            return super().page
        return self._delivery.page

    @property
    def segment_paths(self) -> list[str]:
        """The files of the current (or latest) take written with ``segment_seconds``, in order."""
        return self._core.segment_paths

    @property
    def waiting_for_voice(self) -> bool:
        """True while a ``wait_for_voice`` take has heard no voice yet (nothing is written)."""
        return self._core.waiting_for_voice

    @property
    def seconds_since_voice(self) -> float | None:
        """Seconds of audio since the last voice (or the start), with ``until_silence`` or
        ``wait_for_voice``; None otherwise, while waiting for the first voice, or when idle."""
        return self._core.seconds_since_voice

    def update(self) -> None:
        """Send changed fields to the client if the recorder is on a page (0.27 code calls this
        anyway; micrec's settings take effect at the next ``start_recording``)."""
        if self.parent is not None:
            super().update()

    def __repr__(self) -> str:
        return f"AudioRecorder(configuration={self.configuration!r})"

    # -- flet-audio-recorder 1.0 methods ---------------------------------------------------
    async def start_recording(self, output_path: str | os.PathLike[str] | None = None,
                              configuration: t.AudioRecorderConfiguration | None = None,
                              upload: t.AudioRecorderUploadSettings | None = None, *,
                              timeout: float | None = None, wait_timeout: float | None = None) -> bool:
        """Start a take; returns True.

        Parameters
        ----------
        output_path : str or PathLike, optional
            The file to write. May be omitted only when streaming (``on_stream`` or
            ``upload``): the take then goes to a temporary file that is deleted at stop.
        configuration : AudioRecorderConfiguration, optional
            Settings of this take; default :attr:`configuration`.
        upload : AudioRecorderUploadSettings, optional
            Send the take there after ``stop_recording()``.
        timeout, wait_timeout : float, optional
            Seconds to wait for the start (older Flet keywords); TimeoutError past them.

        Raises
        ------
        InvalidConfigError
            (a ValueError) No ``output_path`` and nothing to stream to, streaming with an
            encoder other than PCM16BITS, or a setting micrec cannot use.
        PermissionDeniedError
            (a PermissionError) In a client take: the visitor denied the microphone.
        MicrecError
            The device or the file could not be opened (see :meth:`micrec.AudioRecorder.start_recording`).
        """
        self._delivery.bind(current_page())
        timeout = _either(timeout, wait_timeout)
        if self._client_takes():
            return await self._start_client(output_path, configuration, upload, timeout)
        return await self._run(self._start, output_path, configuration, upload, timeout=timeout)

    async def stop_recording(self, *, timeout: float | None = None,
                             wait_timeout: float | None = None) -> str | None:
        """Stop and finalize the take; upload it if asked to.

        Returns
        -------
        str or None
            The file's path; None when no take was open, or for a stream without
            ``output_path`` (as in Flet).
        """
        feed = self._pop_feed()
        if feed is not None:  # the client stops first: what it captured until now is sent before it answers
            await self._end_client("stop_recording", feed)
        return await self._run(self._stop, timeout=_either(timeout, wait_timeout))

    async def cancel_recording(self, *, timeout: float | None = None,
                               wait_timeout: float | None = None) -> None:
        """Stop and delete the take (nothing is uploaded)."""
        feed = self._pop_feed()
        if feed is not None:
            await self._end_client("cancel_recording", feed)
        await self._run(self._cancel, timeout=_either(timeout, wait_timeout))

    async def pause_recording(self, *, timeout: float | None = None,
                              wait_timeout: float | None = None) -> None:
        """Pause; the paused time is left out of the take."""
        if self._feed is not None:  # the client streams on; what it sends while paused is dropped here
            self._feed.pause()
        await self._run(self._core.pause_recording, timeout=_either(timeout, wait_timeout))

    async def resume_recording(self, *, timeout: float | None = None,
                               wait_timeout: float | None = None) -> None:
        """Resume a paused take."""
        await self._run(self._core.resume_recording, timeout=_either(timeout, wait_timeout))
        if self._feed is not None:
            self._feed.resume()

    async def is_recording(self, *, timeout: float | None = None,
                           wait_timeout: float | None = None) -> bool:
        """True while a take is open, paused included."""
        return self._core.is_recording()

    async def is_paused(self, *, timeout: float | None = None, wait_timeout: float | None = None) -> bool:
        """True while paused."""
        return self._core.is_paused()

    async def is_supported_encoder(self, encoder: AudioEncoder | str, *, timeout: float | None = None,
                                   wait_timeout: float | None = None) -> bool:
        """True exactly when a take with ``encoder`` would start on this machine now."""
        return await self._run(self._core.is_supported_encoder, encoder,
                               timeout=_either(timeout, wait_timeout))

    async def get_input_devices(self, *, timeout: float | None = None,
                                wait_timeout: float | None = None) -> list[t.InputDevice]:
        """The capture devices present now (``is_default`` marks the system default); in a
        client take, the client's (the visitor's browser's)."""
        if self._client_takes():
            found = await self._invoke_method("get_input_devices", timeout=_either(timeout, wait_timeout))
            return [t.InputDevice(id=str(key), label=str(label), backend="client")
                    for key, label in (found or {}).items()]
        return await self._run(self._devices, timeout=_either(timeout, wait_timeout))

    async def has_permission(self, *, timeout: float | None = None,
                             wait_timeout: float | None = None) -> bool:
        """Whether the configured device (or the default) can be opened now; in a client take,
        whether the client may use its microphone (asking the visitor if it must)."""
        if self._client_takes():
            return bool(await self._invoke_method("has_permission", timeout=_either(timeout, wait_timeout)
                                                  or CLIENT_WAIT))
        return await self._run(self._permission, timeout=_either(timeout, wait_timeout))

    async def get_amplitude(self) -> Amplitude:
        """micrec's level meter (not in flet-audio-recorder): the peak in dBFS of the latest
        ~50 ms and the take's highest; -160.0 when idle. The same in a client take, where the
        level is measured on the server."""
        return self._core.get_amplitude()

    # Flet 0.28-0.70 and 0.27 spellings.
    start_recording_async = start_recording
    stop_recording_async = stop_recording
    cancel_recording_async = cancel_recording
    pause_recording_async = pause_recording
    resume_recording_async = resume_recording
    is_recording_async = is_recording
    is_paused_async = is_paused
    is_supported_encoder_async = is_supported_encoder
    get_input_devices_async = get_input_devices
    has_permission_async = has_permission
    pause = pause_recording
    resume = resume_recording

    # -- blocking implementations, run on the recorder's worker thread ---------------------
    async def _run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        return await self._calls.run(fn, *args, timeout=timeout)

    def _call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Blocking twin of :meth:`_run`, for 0.27-style synchronous methods."""
        return self._calls.call(fn, *args, timeout=timeout)

    def _start(self, output_path: str | os.PathLike[str] | None,
               configuration: t.AudioRecorderConfiguration | None,
               upload: t.AudioRecorderUploadSettings | None, backend: Any = None) -> bool:
        config = configuration if configuration is not None else self.configuration
        streaming = upload is not None or self._user_stream() is not None
        _check_stream_request(output_path, config, upload, streaming)
        if streaming and self.segment_seconds is not None:
            raise InvalidConfigError(
                f"segment_seconds={self.segment_seconds!r} splits the take into files, and a streamed or "
                "uploaded take is one continuous PCM16 stream; set segment_seconds=None or drop "
                "on_stream/upload", value=self.segment_seconds, name="segment_seconds")
        self._configure_core(config)
        keep = output_path is not None and os.fspath(output_path) != ""
        path = Path(os.fspath(output_path)) if keep else _temporary_take()  # type: ignore[arg-type]
        self._sequence = self._bytes_streamed = 0
        self._core.on_audio = self._on_audio if self._user_stream() is not None else None
        if backend is not None:  # a client take: the audio is the client's, pushed in
            self._core.backend, self._core.device = backend, None
        try:
            self._core.start_recording(path)
        except BaseException:
            if not keep:
                shutil.rmtree(path.parent, ignore_errors=True)
            raise
        finally:
            self._core.backend = self._backend
        with self._take_lock:
            self._take = _Take(path, keep, upload)
        return True

    def _configure_core(self, config: t.AudioRecorderConfiguration) -> None:
        core = self._core
        core.audio_encoder = config.encoder
        core.sample_rate = config.sample_rate
        core.channels_num = config.channels
        core.bit_rate = config.bit_rate  # type: ignore[assignment]  # ft.Number; the core checks it
        core.auto_gain = config.auto_gain
        core.suppress_noise = config.suppress_noise
        core.cancel_echo = config.cancel_echo
        device: Any = config.device
        core.device = device.id if isinstance(device, InputDevice) else device
        for name in EXTENSION_SETTINGS:
            setattr(core, name, getattr(self, name))

    def _stop(self) -> str | None:
        take = self._pop_take()
        path = self._core.stop_recording()
        self._core.wait_for_events(EVENT_WAIT)  # STOPPED goes out before any upload event
        if take is None:
            return path
        self._finish(take)
        return path if take.keep else None

    def _cancel(self) -> None:
        take = self._pop_take()
        self._core.cancel_recording()
        if take is not None and not take.keep:
            shutil.rmtree(take.path.parent, ignore_errors=True)

    def _devices(self) -> list[t.InputDevice]:
        from ..recorder import list_input_devices

        return list_input_devices(self._core.backend)

    def _permission(self) -> bool:
        self._configure_core(self.configuration)
        return self._core.has_permission()

    def _pop_take(self) -> _Take | None:
        with self._take_lock:
            take, self._take = self._take, None
        return take

    def _finish(self, take: _Take) -> None:
        """After the file is final: stream its tail, upload it if asked, drop our temporary file."""
        self._stream_tail(take.path)
        uploaded = take.upload is None or self._upload(take)
        if uploaded and not take.keep:
            shutil.rmtree(take.path.parent, ignore_errors=True)

    def _stream_tail(self, path: Path) -> None:
        # The core hands listeners the blocks it encodes while recording, but not what its
        # resampler still held at stop; the file (raw PCM16 when streaming) has it.
        if self._user_stream() is None or self._core.on_audio is None:
            return
        try:
            with open(path, "rb") as f:
                f.seek(self._bytes_streamed)
                tail = f.read()
        except OSError:
            log.warning("micrec.flet: could not read the end of %s to stream it", path, exc_info=True)
            return
        if tail:
            self._emit_chunk(tail)

    def _upload(self, take: _Take) -> bool:
        settings = take.upload
        assert settings is not None

        def progress(fraction: float | None, sent: int, error: str | None) -> None:
            if error is not None:
                error = f"{error}; the take is kept at {str(take.path)!r}"
            self._delivery.post(self.on_upload, t.AudioRecorderUploadEvent(
                name="upload", control=self, file_name=settings.file_name, progress=fraction,
                bytes_uploaded=sent, error=error, path=str(take.path), data=error))

        return upload_file(take.path, settings, progress)

    # -- client takes: the Flet client's recorder streams its microphone to micrec --------
    def _client_takes(self) -> bool:
        return uses_client(self.page, self._backend)

    def _user_stream(self) -> Handler | None:
        """The app's ``on_stream`` handler (not the one micrec shows the client during a take)."""
        handler = self.on_stream
        return None if handler is _client_stream else handler

    async def _start_client(self, output_path: str | os.PathLike[str] | None,
                            configuration: t.AudioRecorderConfiguration | None,
                            upload: t.AudioRecorderUploadSettings | None, timeout: float | None) -> bool:
        if self._core.is_recording() or self._feed is not None:
            raise StateError("a take is already open; stop_recording() or cancel_recording() it first",
                             name="start_recording")
        config = configuration if configuration is not None else self.configuration
        _check_stream_request(output_path, config, upload, upload is not None or self._user_stream() is not None)
        wait = timeout or CLIENT_WAIT
        if self.parent is None:  # made outside the app (no page then): the client must know it to run it
            self.page._services.register_service(self)
        if not await self._invoke_method("has_permission", timeout=wait):
            raise PermissionDeniedError(
                "the visitor denied the microphone (the Flet client's has_permission() is False); "
                "ask them to allow it for this site and start again", value=False, name="has_permission")
        feed = ClientFeed()
        self._feed = feed  # chunks are taken from now on (dropped until the session opens)
        marked = self.on_stream is None
        if marked:  # the client streams to Python only while the control has a stream handler
            self.on_stream = _client_stream
            self.update()
        try:
            started = await self._invoke_method("start_recording", {
                "output_path": None, "configuration": client_configuration(config), "upload": None},
                timeout=wait)
            if not started:
                raise DeviceError("the Flet client's recorder did not start (it returned False: no "
                                  "microphone, or access to it was refused)", value=started, name="start_recording")
            try:
                await self._run(self._start, output_path, configuration, upload, feed.backend, timeout=timeout)
            except BaseException:
                await self._client_call("cancel_recording")
                raise
        except BaseException:
            self._feed = None
            if marked:
                self._unmark_stream()
            raise
        feed.watch(self._connected)
        return True

    def _pop_feed(self) -> ClientFeed | None:
        with self._take_lock:
            feed, self._feed = self._feed, None
        return feed

    async def _end_client(self, method: str, feed: ClientFeed) -> None:
        """Stop the client's recorder for a take that ends, and stop listening to it."""
        await self._client_call(method)
        await asyncio.sleep(0.05)  # chunks that came in before the answer are dispatched in tasks of their own
        feed.flush()
        feed.close()
        self._unmark_stream()

    async def _client_call(self, method: str) -> None:
        try:
            await self._invoke_method(method, timeout=EVENT_WAIT)
        except Exception as exc:  # noqa: BLE001 - a client that went away cannot be stopped
            log.info("micrec.flet: the client's %s failed: %s", method, exc)

    def _unmark_stream(self) -> None:
        if self.on_stream is _client_stream:
            self.on_stream = None
            with contextlib.suppress(Exception):  # a client that went away gets no update
                self.update()

    def _connected(self) -> bool:
        return self.page.session.connection is not None

    async def _trigger_event(self, event_name: str, event_data: Any, e: Any = None) -> None:
        """Events of the client's recorder: its audio feeds the take; micrec reports the states."""
        feed = self._feed
        if event_name == "stream":
            if feed is not None and isinstance(event_data, dict):
                feed.feed(event_data.get("chunk"))
        elif event_name == "state_change":
            if event_data == "stopped" and feed is not None:
                feed.fail(DeviceLostError("the Flet client's recorder stopped by itself mid-take; the file "
                                          "keeps the audio that arrived", name="client"))
        elif event_name != "upload":  # the client uploads nothing: micrec does, after stop
            await super()._trigger_event(event_name, event_data, e)

    # -- events from micrec's threads -----------------------------------------------------
    def _on_core_state(self, core_event: CoreStateEvent) -> None:
        state = AudioRecorderState(core_event.state)
        event = t.AudioRecorderStateChangeEvent(
            name="state_change", control=self, state=state, data=state.value,
            path=core_event.path, error=core_event.error)
        for handler in _distinct(self.on_state_change, self.on_state_changed):
            self._delivery.post(handler, event)
        if state is AudioRecorderState.STOPPED:
            feed = self._pop_feed()
            loop = self._delivery.loop
            if feed is not None and loop is not None:  # a client take that ended by itself: stop the client
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._end_client("cancel_recording", feed)))
            # Still ours: the take ended by itself (a fault, until_silence, a duration), not by
            # stop or cancel, which take it first; nobody will call stop for it.
            take = self._pop_take()
            if take is not None:
                threading.Thread(target=self._finish, args=(take,), name="micrec-flet-finish",
                                 daemon=True).start()

    def _on_audio(self, block: Any) -> None:
        self._emit_chunk(block.astype("<i2", copy=False).tobytes())

    def _emit_chunk(self, chunk: bytes) -> None:
        self._bytes_streamed += len(chunk)
        event = t.AudioRecorderStreamEvent(name="stream", control=self, chunk=chunk,
                                           sequence=self._sequence, bytes_streamed=self._bytes_streamed)
        self._sequence += 1
        self._delivery.post(self._user_stream(), event)


def _either(timeout: float | None, wait_timeout: float | None) -> float | None:
    return timeout if timeout is not None else wait_timeout


def _distinct(*handlers: Handler | None) -> list[Handler]:
    found: list[Handler] = []
    for handler in handlers:
        if handler is not None and all(handler is not h for h in found):
            found.append(handler)
    return found


def _check_stream_request(output_path: Any, config: t.AudioRecorderConfiguration,
                          upload: t.AudioRecorderUploadSettings | None, streaming: bool) -> None:
    """flet-audio-recorder's own checks, with its messages (and micrec's typed errors)."""
    if not streaming and not output_path:
        raise InvalidConfigError(
            "output_path must be provided on platforms other than web (or set on_stream / "
            "upload= to stream the take)", value=output_path, name="output_path")
    if streaming and _encoder(config.encoder) is not AudioEncoder.PCM16BITS:
        raise InvalidConfigError(
            f"Streaming recordings require AudioEncoder.PCM16BITS as encoder (got {config.encoder!r}); "
            "set configuration.encoder or drop on_stream/upload", value=config.encoder, name="encoder")
    if upload is not None and not getattr(upload, "upload_url", None):
        raise InvalidConfigError(f"upload.upload_url={getattr(upload, 'upload_url', None)!r} is empty; "
                                 "give the URL to send the take to", value=upload, name="upload")


def _encoder(value: Any) -> AudioEncoder | None:
    try:
        return AudioEncoder(value)
    except ValueError:
        return None  # the core names the bad value when the take starts


def _temporary_take() -> Path:
    # A directory of our own, so that nothing else can sit at (or race for) the file's name.
    return Path(tempfile.mkdtemp(prefix="micrec-flet-")) / "stream.pcm"
