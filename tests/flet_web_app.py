"""A Flet web app written like flet-audio-recorder's own example, run as ``python flet_web_app.py``.

tests/test_flet_web.py serves it with flet-web (Flet's stock web client, offline) and clicks
its buttons in chromium. The environment chooses the recorder (``FAR_MODULE``: micrec.flet or
flet_audio_recorder), the port (``APP_PORT``), where takes go (``TAKES_DIR``) and a log file
(``APP_LOG``) where every event and call result is written as a JSON line with the time it
happened on this process's monotonic clock. ``APP_STREAM=1`` gives the recorder an
``on_stream`` handler (which logs each chunk's size).
"""

import importlib
import json
import os
import time
import traceback
from pathlib import Path

import flet as ft

far = importlib.import_module(os.environ.get("FAR_MODULE", "micrec.flet"))  # was: import flet_audio_recorder as far
TAKES = Path(os.environ.get("TAKES_DIR", "."))
LOG = Path(os.environ.get("APP_LOG", "app-log.jsonl"))


def log(event: str, **fields) -> None:
    with LOG.open("a") as f:
        f.write(json.dumps({"event": event, "t": time.monotonic(), **fields}, default=repr) + "\n")


def main(page: ft.Page):
    page.title = "Audio Recorder"
    page.horizontal_alignment = ft.CrossAxisAlignment.CENTER
    page.appbar = ft.AppBar(title=ft.Text("Audio Recorder"), center_title=True)
    status = ft.Text("State: stopped")

    def handle_state_change(e):
        state = getattr(e, "state", None)
        log("state", data=e.data, state=getattr(state, "value", state), has_state=hasattr(e, "state"),
            error=repr(getattr(e, "error", None)) if getattr(e, "error", None) is not None else None)
        status.value = f"State: {e.data}"
        page.update()

    def handle_stream(e):
        log("stream", size=len(e.chunk), sequence=e.sequence, bytes_streamed=e.bytes_streamed)

    recorder = far.AudioRecorder(
        configuration=far.AudioRecorderConfiguration(encoder=far.AudioEncoder.WAV),
        on_state_change=handle_state_change,
        on_stream=handle_stream if os.environ.get("APP_STREAM") else None,
    )

    async def call(name, coro):
        log("call", name=name)
        try:
            result = await coro
        except Exception as exc:  # noqa: BLE001 - the test reads what happened
            log("raised", name=name, type=type(exc).__name__, message=str(exc),
                bases=[c.__name__ for c in type(exc).__mro__], tb=traceback.format_exc())
            status.value = f"Error: {type(exc).__name__}"
            page.update()
            return None
        log("returned", name=name, result=result)
        return result

    def start(encoder, name):
        async def handler(e):
            await call(f"start {name}", recorder.start_recording(
                output_path=str(TAKES / name),
                configuration=far.AudioRecorderConfiguration(encoder=encoder, sample_rate=48000, channels=1)))
        return handler

    async def handle_stop(e):
        output_path = await call("stop", recorder.stop_recording())
        status.value = f"Stopped: {output_path}"
        page.update()

    async def handle_pause(e):
        if await recorder.is_recording():
            await call("pause", recorder.pause_recording())

    async def handle_resume(e):
        if await recorder.is_paused():
            await call("resume", recorder.resume_recording())

    async def handle_permission(e):
        await call("has_permission", recorder.has_permission())

    async def handle_devices(e):
        await call("devices", recorder.get_input_devices())

    async def handle_level(e):
        level = await call("level", recorder.get_amplitude())
        log("amplitude", current=level.current, max=level.max)

    page.add(
        ft.Button(content="Start WAV", on_click=start(far.AudioEncoder.WAV, "take.wav")),
        ft.Button(content="Start Opus", on_click=start(far.AudioEncoder.OPUS, "take.ogg")),
        ft.Button(content="Start MP3", on_click=start(far.AudioEncoder.WAV, "take.mp3")),  # no such encoder
        ft.Button(content="Start PCM", on_click=start(far.AudioEncoder.PCM16BITS, "take.pcm")),
        ft.Button(content="Stop", on_click=handle_stop),
        ft.Button(content="Pause", on_click=handle_pause),
        ft.Button(content="Resume", on_click=handle_resume),
        ft.Button(content="Permission", on_click=handle_permission),
        ft.Button(content="Devices", on_click=handle_devices),
        ft.Button(content="Level", on_click=handle_level),
        status,
    )
    log("ready", web=page.web)


if __name__ == "__main__":
    ft.run(main, view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=int(os.environ["APP_PORT"]), no_cdn=True)
