"""Shared fixtures: a private sound server with two virtual microphones, and signal helpers.

Every real-stack test runs twice: on a private PulseAudio and on a private PipeWire (with
WirePlumber and pipewire-pulse), the two servers Linux desktops run. Each server is started
once per test session in a private runtime directory (one at a time: the tests are grouped by
server); every test that records from it gets the process environment pointed at it
(PULSE_SERVER etc.) and the feeds cleared of players afterwards. ``vmic.server`` (or
``vmic.is_pipewire``) tells a test which one it is on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from _pytest.runner import runtestprotocol

from micrec.vmic import SERVERS, MicSpec, VirtualMicrophone, install_command, missing_programs

from audio import ensure_delivering, restart_if_not_delivering

MIC_A = MicSpec("vmic_a", 48000, 1, "Virtual mic A")
MIC_B = MicSpec("vmic_b", 44100, 1, "Virtual mic B")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "xfail_on_pipewire(reason): a known product fault on PipeWire; the test runs, and may pass")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only the PipeWire run of a test is expected to fail; its PulseAudio run counts in full.
    for item in items:
        mark = item.get_closest_marker("xfail_on_pipewire")
        callspec = getattr(item, "callspec", None)
        if mark is not None and callspec is not None and callspec.params.get("pulse_server") == "pipewire":
            item.add_marker(pytest.mark.xfail(reason=mark.kwargs["reason"], strict=False))


#: The private server whose tests are running (None between the two servers' groups).
_live_server: VirtualMicrophone | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a real-stack test again, once, when it failed on a server that then proves broken.

    pipewire-pulse 0.3.65 was seen to stop delivering audio in the middle of a long run (three
    times in five runs of the suite, each time in another test): the test that was recording
    then fails for the server's sake. Whether it was the server is decided by the same check as
    before every test (a tone through the feed); a server that still delivers leaves the failure
    standing. The restart and the second run are reported as a warning.
    """
    if "vmic" not in getattr(item, "fixturenames", ()):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    server = _live_server
    failure = next((r for r in reports if r.failed), None)
    if failure is not None and server is not None and restart_if_not_delivering(
            server, f"during {item.nodeid}, which runs again (the first run: "
                    f"{failure.longreprtext.strip().splitlines()[-1]})"):
        if isinstance(item, pytest.Function):
            item._initrequest()
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def server_available(server: str = "pulseaudio") -> bool:
    """Whether the programs a private ``server`` needs are installed."""
    return not missing_programs(server)


def pulse_available() -> bool:
    return server_available("pulseaudio")


@pytest.fixture(scope="session", params=SERVERS)
def pulse_server(request: pytest.FixtureRequest) -> Iterator[VirtualMicrophone]:
    """The private sound server (session-wide), once PulseAudio and once PipeWire."""
    server: str = request.param
    if not server_available(server):
        message = f"{server} is not installed ({install_command(server)})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; scripts/setup.sh must install it")
        pytest.skip(message)
    global _live_server
    vm = VirtualMicrophone(mics=(MIC_A, MIC_B), speaker=True, server=server).start()
    _live_server = vm
    try:
        yield vm
    finally:
        _live_server = None
        vm.stop()


@pytest.fixture
def vmic(pulse_server: VirtualMicrophone) -> Iterator[VirtualMicrophone]:
    """The private server, activated for this process, with its feeds silent at the start."""
    # Checked before every test (on PipeWire, a short tone through the feed: 0.2 s), so that one
    # fault of the server fails at most one test.
    ensure_delivering(pulse_server)
    pulse_server.stop_players()
    with pulse_server.activated():
        yield pulse_server
    pulse_server.stop_players()
