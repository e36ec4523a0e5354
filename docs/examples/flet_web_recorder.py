"""A Flet web app that records the visitor's microphone into a file on the server.

Run: ``python flet_web_recorder.py`` (needs ``pip install 'micrec[flet]' flet-web``), then open
http://127.0.0.1:8550/ and allow the microphone. Takes are written to ./takes on the server.
"""

from pathlib import Path

import flet as ft

import micrec.flet as far  # was: import flet_audio_recorder as far
from micrec import PermissionDeniedError

TAKES = Path("takes")


def main(page: ft.Page):
    page.title = "micrec in a Flet web app"
    status, saved = ft.Text("stopped"), ft.Text()
    TAKES.mkdir(exist_ok=True)

    def on_state(e: far.AudioRecorderStateChangeEvent):
        status.value = e.state.value if e.error is None else f"stopped: {e.error}"
        page.update()

    recorder = far.AudioRecorder(
        configuration=far.AudioRecorderConfiguration(encoder=far.AudioEncoder.OPUS, channels=1),
        on_state_change=on_state,
    )

    async def record(e):
        try:
            await recorder.start_recording(output_path=str(TAKES / "take.ogg"))
        except PermissionDeniedError as exc:  # the visitor said no
            status.value = str(exc)

    async def stop(e):
        saved.value = f"saved {await recorder.stop_recording()} on the server"
        page.update()

    page.add(
        ft.Text(f"web: {page.web}"),
        ft.Button("Record", on_click=record),
        ft.Button("Pause", on_click=lambda e: page.run_task(recorder.pause_recording)),
        ft.Button("Resume", on_click=lambda e: page.run_task(recorder.resume_recording)),
        ft.Button("Stop", on_click=stop),
        status,
        saved,
    )


if __name__ == "__main__":
    ft.run(main, view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=8550, no_cdn=True)
