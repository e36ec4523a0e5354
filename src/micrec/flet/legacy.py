"""The Flet 0.27 flavour of the recorder: synchronous methods and ``*_async`` twins.

``micrec.flet.AudioRecorder(audio_encoder=..., on_state_changed=...)`` builds this class, so
that code written for flet-audio-recorder 0.27 (``rec.start_recording(path)`` without
``await``, ``get_input_devices()`` returning a dict) runs unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import FeatureUnavailableError
from ..types import AudioEncoder
from ._dispatch import current_page
from .recorder import AudioRecorder

__all__ = ["LegacyAudioRecorder"]

# Flet 0.27's default wait_timeout of each method, in seconds.
START_WAIT, STOP_WAIT, QUERY_WAIT, PERMISSION_WAIT = 10.0, 5.0, 5.0, 10.0


class LegacyAudioRecorder(AudioRecorder, legacy=True):
    """An :class:`AudioRecorder` with Flet 0.27's synchronous methods.

    Each method blocks until micrec has done it (at most ``wait_timeout`` seconds, then
    TimeoutError) and then returns what Flet 0.27 returned. Handlers still run on the event
    loop of the thread that started the take, if it has one, else on a micrec thread as Flet
    0.27 ran them on a worker thread.
    """

    def start_recording(self, output_path: str | os.PathLike[str] | None = None,  # type: ignore[override]
                        wait_timeout: float | None = START_WAIT, **kwargs: Any) -> bool:
        self._delivery.bind(current_page())
        if self._client_takes():
            raise FeatureUnavailableError(
                "Flet 0.27's synchronous start_recording() cannot record the client's microphone (a web "
                "or mobile app): pass on_state_change= instead of 0.27's settings and await "
                "start_recording_async()", name="start_recording")
        return self._call(self._start, output_path, kwargs.get("configuration"), kwargs.get("upload"),
                          timeout=wait_timeout)

    def stop_recording(self, wait_timeout: float | None = STOP_WAIT) -> str | None:  # type: ignore[override]
        return self._call(self._stop, timeout=wait_timeout)

    def cancel_recording(self, wait_timeout: float | None = STOP_WAIT) -> None:  # type: ignore[override]
        self._call(self._cancel, timeout=wait_timeout)

    def pause_recording(self, wait_timeout: float | None = QUERY_WAIT) -> None:  # type: ignore[override]
        self._call(self._core.pause_recording, timeout=wait_timeout)

    def resume_recording(self, wait_timeout: float | None = QUERY_WAIT) -> None:  # type: ignore[override]
        self._call(self._core.resume_recording, timeout=wait_timeout)

    pause = pause_recording  # type: ignore[assignment]
    resume = resume_recording  # type: ignore[assignment]

    def is_recording(self, wait_timeout: float | None = QUERY_WAIT) -> bool:  # type: ignore[override]
        return self._core.is_recording()

    def is_paused(self, wait_timeout: float | None = QUERY_WAIT) -> bool:  # type: ignore[override]
        return self._core.is_paused()

    def is_supported_encoder(self, encoder: AudioEncoder | str,  # type: ignore[override]
                             wait_timeout: float | None = QUERY_WAIT) -> bool:
        return self._call(self._core.is_supported_encoder, encoder, timeout=wait_timeout)

    def get_input_devices(self, wait_timeout: float | None = QUERY_WAIT) -> dict[str, str]:  # type: ignore[override]
        """``{device_id: label}``, as Flet 0.27 returned."""
        return {d.id: d.label for d in self._call(self._devices, timeout=wait_timeout)}

    def has_permission(self, wait_timeout: float | None = PERMISSION_WAIT) -> bool:  # type: ignore[override]
        return self._call(self._permission, timeout=wait_timeout)

    async def get_input_devices_async(self, *, timeout: float | None = None,  # type: ignore[override]
                                      wait_timeout: float | None = QUERY_WAIT) -> dict[str, str]:
        devices = await self._run(self._devices, timeout=timeout or wait_timeout)
        return {d.id: d.label for d in devices}
