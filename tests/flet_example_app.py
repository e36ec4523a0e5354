"""Flet apps written for flet-audio-recorder, with only the import changed to micrec.flet.

``main`` follows the official flet-audio-recorder 1.0 example (buttons for start, stop,
devices, pause, resume, encoder support and permission) and adds a label that shows the
state. ``main_0_27`` is the same app as Flet 0.27 code wrote it: synchronous methods,
property-style settings, ``on_state_changed`` and the recorder appended to ``page.overlay``.
tests/test_flet.py drives their buttons the way the Flet client reports clicks.
"""

import flet as ft

import micrec.flet as far  # was: import flet_audio_recorder as far

OUTPUT_PATH = "test-audio-file.wav"


def main(page: ft.Page):
    page.horizontal_alignment = ft.CrossAxisAlignment.CENTER
    page.appbar = ft.AppBar(title=ft.Text("Audio Recorder"), center_title=True)
    status = ft.Text("State: stopped")
    devices = ft.Text()

    def show_snackbar(message):
        page.show_dialog(ft.SnackBar(ft.Text(message)))

    async def handle_recording_start(e: ft.Event[ft.Button]):
        show_snackbar("Starting recording...")
        await recorder.start_recording(output_path=OUTPUT_PATH)

    async def handle_recording_stop(e: ft.Event[ft.Button]):
        output_path = await recorder.stop_recording()
        show_snackbar(f"Stopped recording. Output Path: {output_path}")
        if page.web and output_path is not None:
            await page.launch_url(output_path)

    async def handle_list_devices(e: ft.Event[ft.Button]):
        o = await recorder.get_input_devices()
        devices.value = f"Input Devices: {', '.join([f'{d.id}:{d.label}' for d in o])}"
        show_snackbar(devices.value)

    async def handle_has_permission(e: ft.Event[ft.Button]):
        try:
            status = await recorder.has_permission()
            show_snackbar(f"Audio Recording Permission status: {status}")
        except Exception as e:  # noqa: BLE001 - as in the official example
            show_snackbar(f"Error checking permission: {e}")

    async def handle_pause(e: ft.Event[ft.Button]):
        print(f"isRecording: {await recorder.is_recording()}")
        if await recorder.is_recording():
            await recorder.pause_recording()

    async def handle_resume(e: ft.Event[ft.Button]):
        print(f"isPaused: {await recorder.is_paused()}")
        if await recorder.is_paused():
            await recorder.resume_recording()

    async def handle_audio_encoder_test(e: ft.Event[ft.Button]):
        show_snackbar(f"WAV supported: {await recorder.is_supported_encoder(far.AudioEncoder.WAV)}")

    def handle_state_change(e: far.AudioRecorderStateChangeEvent):
        status.value = f"State: {e.data}"
        page.update()

    recorder = far.AudioRecorder(
        configuration=far.AudioRecorderConfiguration(encoder=far.AudioEncoder.WAV),
        on_state_change=handle_state_change,
    )

    page.add(
        ft.Button(content="Start Audio Recorder", on_click=handle_recording_start),
        ft.Button(content="Stop Audio Recorder", on_click=handle_recording_stop),
        ft.Button(content="List Devices", on_click=handle_list_devices),
        ft.Button(content="Pause Recording", on_click=handle_pause),
        ft.Button(content="Resume Recording", on_click=handle_resume),
        ft.Button(content="WAV Encoder Support", on_click=handle_audio_encoder_test),
        ft.Button(content="Get Audio Recording Permission Status", on_click=handle_has_permission),
        status,
        devices,
    )


def main_0_27(page: ft.Page):
    page.horizontal_alignment = ft.CrossAxisAlignment.CENTER
    status = ft.Text("State: stopped")
    devices = ft.Text()

    def handle_start_recording(e):
        audio_rec.start_recording(OUTPUT_PATH)

    def handle_stop_recording(e):
        output_path = audio_rec.stop_recording()
        print(f"StopRecording: {output_path}")

    def handle_list_devices(e):
        devices.value = f"Input Devices: {audio_rec.get_input_devices(wait_timeout=10)}"
        page.update()

    def handle_has_permission(e):
        print(f"HasPermission: {audio_rec.has_permission()}")

    def handle_pause(e):
        if audio_rec.is_recording():
            audio_rec.pause()

    def handle_resume(e):
        if audio_rec.is_paused():
            audio_rec.resume()

    async def handle_audio_encoder_test(e):
        print(await audio_rec.is_supported_encoder_async(far.AudioEncoder.WAV))

    def handle_state_change(e):
        status.value = f"State: {e.data}"
        page.update()

    audio_rec = far.AudioRecorder(
        audio_encoder=far.AudioEncoder.WAV,
        on_state_changed=handle_state_change,
    )
    audio_rec.channels_num = 1
    audio_rec.sample_rate = 48000
    page.overlay.append(audio_rec)
    page.update()

    buttons = {
        "Start Audio Recorder": handle_start_recording,
        "Stop Audio Recorder": handle_stop_recording,
        "List Devices": handle_list_devices,
        "Pause Recording": handle_pause,
        "Resume Recording": handle_resume,
        "WAV Encoder Support": handle_audio_encoder_test,
        "Get Audio Recording Permission Status": handle_has_permission,
    }
    page.add(*[ft.Button(content=text, on_click=handler) for text, handler in buttons.items()], status, devices)


if __name__ == "__main__":
    ft.run(main)
