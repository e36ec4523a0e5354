"""AudioRecorder: Flet's recorder control, implemented natively in Python.

The front end holds the settings, the state machine and the events. Devices and codecs are
the business of :mod:`micrec.backends` and :mod:`micrec.encoders`, reached through a
:class:`~micrec.session.Session`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import InvalidConfigError, StateError
from .events import EventDispatcher
from .types import (
    Amplitude,
    AudioEncoder,
    AudioRecorderState,
    AudioRecorderStateChangeEvent,
    InputDevice,
    OutputDevice,
)

if TYPE_CHECKING:
    from .backends import CaptureBackend
    from .session import Session

__all__ = ["AudioRecorder", "list_input_devices", "list_output_devices"]

MIN_RATE, MAX_RATE = 8000, 192000
#: Seconds the exit hook waits for the STOPPED handler before the interpreter goes on exiting.
_EXIT_EVENT_WAIT = 2.0
StateHandler = Callable[[AudioRecorderStateChangeEvent], Any]


class AudioRecorder:
    """Records a microphone to a file.

    Parameters
    ----------
    audio_encoder : AudioEncoder or str
        File format (default WAV). A string is taken as the enum's value (``"flac"``).
    sample_rate : int
        Hz, 8000..192000 (default 44100). Encoders that admit only some rates use the nearest.
    channels_num : int
        1 (mono) or 2 (stereo, default).
    bit_rate : int
        Bits per second for lossy encoders (default 128000).
    auto_gain, suppress_noise, cancel_echo : bool
        Voice processing on the worker thread.
    device : str, optional
        A device id from :meth:`get_input_devices`; None records the system default.
    on_state_changed : callable, optional
        Called with an :class:`AudioRecorderStateChangeEvent` at every transition, in order,
        on a micrec thread.
    backend : str or CaptureBackend, optional
        ``"auto"`` (default: a PulseAudio/PipeWire server, else PortAudio), ``"pulse"``,
        ``"portaudio"``, or a backend object such as :class:`micrec.backends.TestBackend`.
    on_audio : callable, optional
        Called with every block written to the file: an int16 numpy array shaped
        ``(frames, channels)`` at the file's rate, on micrec's worker thread (like a
        sounddevice callback, but never on the audio thread). Copy the block to keep it; an
        exception is logged and the take goes on. See also :meth:`iter_blocks`.
    system_audio : bool or str
        Record what an output plays instead of a microphone: True for the default output, or
        an output id from :meth:`get_output_devices` (default False). ``device`` is then not
        used. PulseAudio and PipeWire only (elsewhere :meth:`start_recording` raises
        FeatureUnavailableError); see docs/system-audio.md.
    mix_system_audio : bool
        Record the microphone and what the default output plays, aligned, in one take
        (default False): both at their own level, peaks above -3 dBFS bent under full scale.
        With ``cancel_echo`` the speakers' echo is removed from the microphone before mixing,
        so the far end of a call is heard once.
    until_silence : float, optional
        Seconds: the take ends by itself (STOPPED, no error, file finalized) that long after the
        last voice, or after the start while no voice has been heard (with ``wait_for_voice``:
        only once a voice was heard). Paused time does not count. Needs ``micrec[vad]``.
    wait_for_voice : bool
        The session is open (RECORDING) at once, but the file starts 300 ms before the first
        voice, so the first word is whole. Needs ``micrec[vad]``.
    segment_seconds : float, optional
        Write the take as ``{stem}-0001{suffix}``, ``{stem}-0002{suffix}``, … of this many
        seconds of audio each (the last one shorter), each finalized as soon as it is full.
        :meth:`stop_recording` returns the last one's path; :attr:`segment_paths` lists all.
    blocksize : int, optional
        Frames per block at ``sample_rate``, as in sounddevice: how much audio each
        ``on_audio`` call and :meth:`iter_blocks` item carries, and how often the level meter
        and the file move on. None (default) is 100 ms (4410 frames at 44.1 kHz), after a first
        block of 10 ms so that audio flows at once; while nobody calls :meth:`get_amplitude`
        (for a second) and nothing listens to the blocks, and no voice processing, voice gate
        or system mix runs, the blocks grow to a second (a tenth of the wake-ups; a killed
        take then loses at most the second in progress), and the next :meth:`get_amplitude`
        brings 100 ms back at once (that one reading may be up to a second old). A number
        keeps the block fixed. Ask for less only where a consumer needs the audio sooner
        (live streaming): every block wakes micrec's capture and worker threads once, so 20 ms
        blocks cost about three times the CPU of 100 ms ones, and on PipeWire a block under 43
        ms also makes the whole audio graph run in shorter cycles (more CPU for every audio
        program).

    Notes
    -----
    Every parameter is also a read/write attribute; a change takes effect at the next
    :meth:`start_recording`. All methods may be called from any thread.

    A take still open when the interpreter exits normally (the script returns, ``sys.exit()``)
    is stopped and finalized by an :mod:`atexit` hook, registered while a session is open and
    removed when it ends: the file is complete, as after :meth:`stop_recording`, and
    ``on_state_changed`` gets STOPPED. A process killed by a signal gets no such chance; its
    file is still readable by ffmpeg and libsndfile to within 0.5 s of the kill, whoever
    watches the take: the blocks are at most 250 ms long and the file is made readable every
    0.25 s, so what is lost is that plus the sound server's last fragment (100 ms).

    :meth:`stop_recording` ends the take where it was called: it waits for the audio the sound
    server still holds from before the call (about one fragment: a few milliseconds on
    PulseAudio, up to ~0.1 s on PipeWire), writes it, and finalizes the file.

    Examples
    --------
    >>> from micrec import AudioRecorder
    >>> rec = AudioRecorder(audio_encoder="flac", channels_num=1)
    >>> rec.start_recording("take.flac")
    True
    >>> rec.stop_recording()
    'take.flac'
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder | str = AudioEncoder.WAV,
        sample_rate: int = 44100,
        channels_num: int = 2,
        bit_rate: int = 128000,
        auto_gain: bool = False,
        suppress_noise: bool = False,
        cancel_echo: bool = False,
        device: str | None = None,
        on_state_changed: StateHandler | None = None,
        *,
        backend: str | CaptureBackend | None = None,
        on_audio: Callable[[Any], Any] | None = None,
        system_audio: bool | str = False,
        mix_system_audio: bool = False,
        until_silence: float | None = None,
        wait_for_voice: bool = False,
        segment_seconds: float | None = None,
        blocksize: int | None = None,
    ) -> None:
        self.audio_encoder = audio_encoder
        self.sample_rate = sample_rate
        self.channels_num = channels_num
        self.bit_rate = bit_rate
        self.auto_gain = auto_gain
        self.suppress_noise = suppress_noise
        self.cancel_echo = cancel_echo
        self.device = device
        self.on_state_changed = on_state_changed
        self.backend = backend
        self.on_audio = on_audio
        self.system_audio = system_audio
        self.mix_system_audio = mix_system_audio
        self.until_silence = until_silence
        self.wait_for_voice = wait_for_voice
        self.segment_seconds = segment_seconds
        self.blocksize = blocksize
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._paused = False
        self._events = EventDispatcher()
        self._last_error: BaseException | None = None
        self._segment_paths: list[Path] = []

    # -- the session -------------------------------------------------------------------------
    def start_recording(self, output_path: str | os.PathLike[str], *, duration: float | None = None) -> bool:
        """Start recording to ``output_path``; returns True.

        Parameters
        ----------
        output_path : str or path-like
            The file to write; its extension picks the container where the encoder has a choice.
        duration : float, optional
            Seconds of audio after which the take ends by itself, exactly (paused time does not
            count): the file is finalized and ``on_state_changed`` gets STOPPED.

        Raises
        ------
        InvalidConfigError
            A setting or the path's extension is not usable; the message names it.
        EncoderUnavailableError
            The encoder cannot run on this machine (the message says what to install).
        OutputError
            The file cannot be created (missing directory, not writable).
        DeviceNotFoundError, DeviceError
            The device id (or the ``system_audio`` output id) is unknown or cannot be opened.
        FeatureUnavailableError
            A feature cannot work with this backend or platform (``system_audio``,
            ``mix_system_audio`` and ``cancel_echo`` need a PulseAudio or PipeWire server).
        StateError
            A session is already open.
        """
        from .backends import get_backend
        from .session import Session

        with self._lock:
            if self._session is not None and self._session.ended:
                self._forget_ended(self._session)
            if self._session is not None:
                raise StateError(
                    f"a recording to {str(self._session.path)!r} is already open; stop_recording() "
                    "or cancel_recording() it first", value=os.fspath(output_path), name="output_path")
            config = self._validated_config(output_path, duration)
            backend = get_backend(self.backend)
            listeners = [self.on_audio] if self.on_audio is not None else []
            self._session = Session.open(config, backend, self._session_ended, listeners)
            atexit.register(self._stop_at_exit)
            self._paused = False
            self._last_error = None
            self._segment_paths = []
            self._emit(AudioRecorderState.RECORDING, self._session.path)
            return True

    def stop_recording(self) -> str | None:
        """Stop, finalize the file and return its path; None when no session is open.

        With ``segment_seconds`` the path is the last segment's; :attr:`segment_paths` has all.
        """
        with self._lock:
            session = self._session
            if session is None:
                return None
            session.stop()
            self._session = None
            atexit.unregister(self._stop_at_exit)
            self._paused = False
            self._last_error = session.error
            self._segment_paths = session.segment_paths
            self._emit(AudioRecorderState.STOPPED, session.path, session.error)
            return str(session.path)

    def cancel_recording(self) -> None:
        """Stop and delete the file."""
        with self._lock:
            session = self._session
            if session is None:
                return
            session.cancel()
            self._session = None
            self._segment_paths = []
            atexit.unregister(self._stop_at_exit)
            self._paused = False
            self._emit(AudioRecorderState.STOPPED, session.path, session.error)

    def pause_recording(self) -> None:
        """Pause; the paused time is left out of the file. No effect unless recording."""
        with self._lock:
            if self._session is None or self._paused:
                return
            self._session.pause()
            self._paused = True
            self._emit(AudioRecorderState.PAUSED, self._session.path)

    def resume_recording(self) -> None:
        """Resume after :meth:`pause_recording`. No effect unless paused."""
        with self._lock:
            if self._session is None or not self._paused:
                return
            self._session.resume()
            self._paused = False
            self._emit(AudioRecorderState.RECORDING, self._session.path)

    pause = pause_recording
    resume = resume_recording

    def seek(self, position_milliseconds: float) -> None:
        """While paused, cut the take at ``position_milliseconds``: resume() records from there.

        Everything recorded after that position is discarded (tape punch-in). WAV, PCM16BITS
        and FLAC cut at the exact sample; other encoders at the nearest preceding frame. With
        ``segment_seconds`` the position is counted from the start of the take and must lie
        in the open segment.

        Raises
        ------
        StateError
            Not paused.
        InvalidConfigError
            The position is negative or beyond the end of the take, or (segments) before the
            open segment's start.
        """
        with self._lock:
            if self._session is None or not self._paused:
                raise StateError("seek() needs a paused recording: pause_recording() first",
                                 value=position_milliseconds, name="position_milliseconds")
            self._session.settle()  # the take's length counts what was captured before the pause
            length_ms = self._session.frames_recorded * 1000 / self._session.rate
            try:
                position = float(position_milliseconds)
            except (TypeError, ValueError):
                position = float("nan")
            if not 0 <= position <= length_ms + 0.5:
                raise InvalidConfigError(
                    f"position_milliseconds={position_milliseconds!r} is outside the take "
                    f"(0..{length_ms:.0f} ms)", value=position_milliseconds, name="position_milliseconds")
            self._session.seek(min(position, length_ms))

    def iter_blocks(self, max_backlog: int = 500) -> Iterator[Any]:
        """Iterate over the blocks written from now on, until the session ends.

        Yields int16 numpy arrays shaped ``(frames, channels)`` at the file's rate. Blocks are
        kept for a slow consumer up to ``max_backlog`` blocks (about 10 s), then the oldest
        are dropped.

        Examples
        --------
        >>> rec.start_recording("take.wav")                     # doctest: +SKIP
        >>> for block in rec.iter_blocks():                      # doctest: +SKIP
        ...     send(block.tobytes())
        """
        session = self._session
        if session is None:
            return
        backlog: queue.Queue[Any] = queue.Queue(maxsize=max_backlog)

        def collect(block: Any) -> None:
            if backlog.full():
                with contextlib.suppress(queue.Empty):
                    backlog.get_nowait()
            backlog.put_nowait(block.copy())

        session.block_listeners.append(collect)
        try:
            while True:
                try:
                    yield backlog.get(timeout=0.05)
                except queue.Empty:
                    if session.ended and backlog.empty():
                        return
        finally:
            with contextlib.suppress(ValueError):
                session.block_listeners.remove(collect)

    # -- state ------------------------------------------------------------------------------
    def is_recording(self) -> bool:
        """True while a session is open, paused included."""
        session = self._session
        return session is not None and not session.ended

    def is_paused(self) -> bool:
        """True while paused."""
        return self._paused and self.is_recording()

    @property
    def state(self) -> AudioRecorderState:
        if not self.is_recording():
            return AudioRecorderState.STOPPED
        return AudioRecorderState.PAUSED if self._paused else AudioRecorderState.RECORDING

    @property
    def last_error(self) -> BaseException | None:
        """The fault that ended the latest session, or None."""
        return self._last_error

    @property
    def overflows(self) -> int:
        """Blocks dropped in the current (or latest) session because the recorder fell behind."""
        session = self._session
        return 0 if session is None else session.overflows

    @property
    def segment_paths(self) -> list[str]:
        """The files of the current (or latest) take written with ``segment_seconds``, in order.

        Empty when the take was one file or was cancelled.
        """
        session = self._session
        paths = session.segment_paths if session is not None else self._segment_paths
        return [str(p) for p in paths]

    @property
    def waiting_for_voice(self) -> bool:
        """True while a ``wait_for_voice`` take has heard no voice yet (nothing is written)."""
        session = self._session
        return session is not None and not session.ended and session.waiting_for_voice

    @property
    def seconds_since_voice(self) -> float | None:
        """Seconds of audio since the last voice (or the start), with ``until_silence`` or
        ``wait_for_voice``; None otherwise, while waiting for the first voice, or when idle."""
        session = self._session
        return None if session is None or session.ended else session.seconds_since_voice()

    @property
    def duration_ms(self) -> float:
        """Length of the take written so far, in milliseconds (0 when idle)."""
        session = self._session
        return 0.0 if session is None else session.frames_recorded * 1000 / session.rate

    def get_amplitude(self) -> Amplitude:
        """Peak levels in dBFS: the latest ~50 ms and the session's highest; -160 when idle.

        Calling it keeps the capture blocks at their default 100 ms (see ``blocksize``).
        """
        session = self._session
        if session is None or session.ended:
            return Amplitude()
        if self._paused:
            return Amplitude(-160.0, session.levels()[1])
        current, peak = session.levels()
        return Amplitude(current, peak)

    # -- devices and capabilities -----------------------------------------------------------
    def get_input_devices(self) -> dict[str, str]:
        """``{device_id: label}`` of the capture devices present now."""
        return {d.id: d.label for d in list_input_devices(self.backend)}

    def get_output_devices(self) -> dict[str, str]:
        """``{output_id: label}`` of the outputs whose sound can be recorded (``system_audio``).

        Empty where the backend cannot record outputs (PortAudio, the test backend).
        """
        return {d.id: d.label for d in list_output_devices(self.backend)}

    def has_permission(self) -> bool:
        """Whether a capture device (``device``, or the default) can be opened now."""
        from .backends import get_backend

        try:
            return get_backend(self.backend).can_capture(self.device)
        except Exception:  # noqa: BLE001 - never raises
            return False

    def is_supported_encoder(self, encoder: AudioEncoder | str) -> bool:
        """True exactly when :meth:`start_recording` with ``encoder`` would work here now."""
        from . import encoders

        try:
            codec = AudioEncoder(encoder)
        except ValueError:
            return False
        return encoders.unavailable_reason(codec) is None

    # -- context manager --------------------------------------------------------------------
    def __enter__(self) -> AudioRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_recording()

    def wait_for_events(self, timeout: float | None = None) -> bool:
        """Wait until every state-change event emitted so far has been handled."""
        return self._events.wait_idle(timeout)

    # -- internals --------------------------------------------------------------------------
    def _validated_config(self, output_path: str | os.PathLike[str], duration: float | None = None) -> Any:
        from .session import SessionConfig

        try:
            encoder = AudioEncoder(self.audio_encoder)
        except ValueError:
            raise InvalidConfigError(
                f"audio_encoder={self.audio_encoder!r} is not an encoder; use one of "
                f"{[e.value for e in AudioEncoder]}", value=self.audio_encoder, name="audio_encoder") from None
        rate = _int_setting("sample_rate", self.sample_rate)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise InvalidConfigError(f"sample_rate={self.sample_rate!r} is outside {MIN_RATE}..{MAX_RATE} Hz",
                                     value=self.sample_rate, name="sample_rate")
        channels = _int_setting("channels_num", self.channels_num)
        if channels not in (1, 2):
            raise InvalidConfigError(f"channels_num={self.channels_num!r}: use 1 (mono) or 2 (stereo)",
                                     value=self.channels_num, name="channels_num")
        bit_rate = _int_setting("bit_rate", self.bit_rate)
        if bit_rate <= 0:
            raise InvalidConfigError(f"bit_rate={self.bit_rate!r} must be a positive number of bits/s",
                                     value=self.bit_rate, name="bit_rate")
        try:
            path = Path(os.fspath(output_path))
        except TypeError:
            raise InvalidConfigError(f"output_path={output_path!r} is not a path", value=output_path,
                                     name="output_path") from None
        if not str(path) or str(path) == ".":
            raise InvalidConfigError("output_path is empty; give a file name", value=output_path,
                                     name="output_path")
        if self.device is not None and not isinstance(self.device, str):
            raise InvalidConfigError(f"device={self.device!r} must be a device id string from "
                                     "get_input_devices()", value=self.device, name="device")
        if duration is not None and not (isinstance(duration, int | float) and duration > 0):
            raise InvalidConfigError(f"duration={duration!r} must be a positive number of seconds",
                                     value=duration, name="duration")
        system_audio, output = self._validated_system_audio()
        return SessionConfig(encoder, path, rate, channels, bit_rate, self.device,
                             bool(self.auto_gain), bool(self.suppress_noise), bool(self.cancel_echo),
                             None if duration is None else float(duration), system_audio=system_audio,
                             output=output, mix_system_audio=bool(self.mix_system_audio),
                             until_silence=_seconds_setting("until_silence", self.until_silence),
                             wait_for_voice=bool(self.wait_for_voice),
                             segment_seconds=_seconds_setting("segment_seconds", self.segment_seconds),
                             blocksize=self._validated_blocksize(rate))

    def _validated_system_audio(self) -> tuple[bool, str | None]:
        """(record an output, which one: None for the default) from ``system_audio``."""
        value = self.system_audio
        if value is None or isinstance(value, bool):
            system_audio, output = bool(value), None
        elif isinstance(value, str) and value:
            system_audio, output = True, value
        else:
            raise InvalidConfigError(f"system_audio={value!r}: use True (the default output), False, or "
                                     "an output id from get_output_devices()", value=value, name="system_audio")
        if system_audio and self.mix_system_audio:
            raise InvalidConfigError("system_audio records an output instead of the microphone and "
                                     "mix_system_audio mixes the default output into it: set one of them",
                                     value=value, name="system_audio")
        if system_audio and self.cancel_echo:
            raise InvalidConfigError("cancel_echo removes what the output plays from the microphone; with "
                                     "system_audio there is no microphone to clean: set cancel_echo=False",
                                     value=value, name="cancel_echo")
        return system_audio, output

    def _stop_at_exit(self) -> None:
        # Registered while a session is open: a script that returns without stop_recording()
        # gets its file finalized, and its STOPPED handler run, as with the context manager.
        self.stop_recording()
        self._events.wait_idle(_EXIT_EVENT_WAIT)

    def _validated_blocksize(self, rate: int) -> int | None:
        if self.blocksize is None:
            return None
        frames = _int_setting("blocksize", self.blocksize)
        if not 0 < frames <= rate * 10:
            raise InvalidConfigError(
                f"blocksize={self.blocksize!r} must be a number of frames from 1 to {rate * 10} (10 s at "
                f"{rate} Hz), or None for 100 ms", value=self.blocksize, name="blocksize")
        return frames

    def _session_ended(self, session: Session) -> None:
        # Called on the worker thread after a fault (or the configured duration) ended the
        # take and finalized the file. The bookkeeping runs on the event thread so that the
        # worker never waits for a lock a stop() may hold.
        self._events.submit(lambda: self._forget_ended(session))

    def _forget_ended(self, session: Session) -> None:
        with self._lock:
            if self._session is not session:
                return  # stop_recording() got there first and reported it
            self._session = None
            atexit.unregister(self._stop_at_exit)
            self._paused = False
            self._last_error = session.error
            self._segment_paths = session.segment_paths
            self._emit(AudioRecorderState.STOPPED, session.path, session.error)

    def _emit(self, state: AudioRecorderState, path: Path, error: BaseException | None = None) -> None:
        event = AudioRecorderStateChangeEvent(state, str(path), error)
        self._events.submit(lambda: self._deliver(event))

    def _deliver(self, event: AudioRecorderStateChangeEvent) -> None:
        handler = self.on_state_changed
        if handler is not None:
            handler(event)


def _int_setting(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, float) and value.is_integer():
                return int(value)
        except AttributeError:
            pass
        raise InvalidConfigError(f"{name}={value!r} must be a whole number", value=value, name=name)
    return value


def list_output_devices(backend: str | CaptureBackend | None = None) -> list[OutputDevice]:
    """The outputs whose sound can be recorded now, with the default marked (``is_default``)."""
    from .backends import get_backend
    from .backends.outputs import list_outputs

    try:
        return list_outputs(get_backend(backend))
    except Exception:  # noqa: BLE001 - no backend: no outputs
        return []


def _seconds_setting(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise InvalidConfigError(f"{name}={value!r} must be a positive number of seconds (or None)",
                                 value=value, name=name)
    return float(value)


def list_input_devices(backend: str | CaptureBackend | None = None) -> list[InputDevice]:
    """The capture devices present now, with the default marked (``InputDevice.is_default``)."""
    from .backends import get_backend

    try:
        return get_backend(backend).list_devices()
    except Exception:  # noqa: BLE001 - no backend: no devices
        return []
