"""Shared fixtures: a private PulseAudio server with two virtual microphones, and signal helpers.

The server is started once per test session in a private runtime directory; every test that
records from it gets the process environment pointed at it (PULSE_SERVER etc.) and the feeds
cleared of players afterwards.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from micrec.vmic import MicSpec, VirtualMicrophone

MIC_A = MicSpec("vmic_a", 48000, 1, "Virtual mic A")
MIC_B = MicSpec("vmic_b", 44100, 1, "Virtual mic B")


def pulse_available() -> bool:
    return shutil.which("pulseaudio") is not None and shutil.which("pacat") is not None


@pytest.fixture(scope="session")
def pulse_server() -> Iterator[VirtualMicrophone]:
    """The private PulseAudio server (session-wide)."""
    if not pulse_available():
        if os.environ.get("CI"):
            pytest.fail("PulseAudio is not installed; .ci/run must install pulseaudio")
        pytest.skip("PulseAudio is not installed (apt-get install pulseaudio pulseaudio-utils)")
    vm = VirtualMicrophone(mics=(MIC_A, MIC_B), speaker=True).start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture
def vmic(pulse_server: VirtualMicrophone) -> Iterator[VirtualMicrophone]:
    """The private server, activated for this process, with its feeds silent at the start."""
    pulse_server.stop_players()
    with pulse_server.activated():
        yield pulse_server
    pulse_server.stop_players()
