"""Recording what an output plays: which backends can, and which outputs there are.

On PulseAudio and PipeWire every output (sink) has a *monitor*, a capture source of what it
plays. A backend that can open one has ``list_outputs()`` and ``open_monitor(spec, sink)``
(:class:`~micrec.backends.pulse.PulseBackend`); PortAudio and the test backend cannot.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import DeviceNotFoundError, FeatureUnavailableError

if TYPE_CHECKING:
    from ..types import OutputDevice
    from .base import BlockSink, CaptureStream, StreamSpec

__all__ = ["MonitorBackend", "check_output", "list_outputs", "monitor_backend"]


@runtime_checkable
class MonitorBackend(Protocol):
    """A backend that can record what an output plays."""

    name: str

    def list_outputs(self) -> list[OutputDevice]:
        """The outputs present now whose sound can be recorded, the default one marked."""
        ...

    def open_monitor(self, spec: StreamSpec, sink: BlockSink) -> CaptureStream:
        """A stream of what the output ``spec.device`` (None: the default) plays."""
        ...


def monitor_backend(backend: Any, feature: str) -> MonitorBackend:
    """``backend`` as a :class:`MonitorBackend`, or FeatureUnavailableError naming ``feature``."""
    if isinstance(backend, MonitorBackend):
        return backend
    name = getattr(backend, "name", type(backend).__name__)
    raise FeatureUnavailableError(
        f"{feature} records what an output plays, and the {name!r} capture backend on {sys.platform} "
        "cannot (only a PulseAudio or PipeWire server exposes outputs' monitors); record through "
        f"a sound server (backend='pulse') or leave {feature} off", value=name, name=feature)


def check_output(backend: Any, output: str | None, feature: str) -> tuple[MonitorBackend, OutputDevice]:
    """The monitor-capable backend and the output ``output`` names (None: the default one).

    Raises
    ------
    FeatureUnavailableError
        The backend cannot record outputs, or the server has no default output.
    DeviceNotFoundError
        ``output`` names no output of the server.
    """
    monitors = monitor_backend(backend, feature)
    outputs = monitors.list_outputs()
    chosen = next((o for o in outputs if (o.is_default if output is None else o.id == output)), None)
    if chosen is None and output is None:
        raise FeatureUnavailableError(
            f"{feature} needs the default output, and the sound server has none; name one of "
            f"{sorted(o.id for o in outputs)} (see get_output_devices())", value=True, name=feature)
    if chosen is None:
        raise DeviceNotFoundError(
            f"no output {output!r} on the sound server; pick one of {sorted(o.id for o in outputs)} "
            "(see get_output_devices())", value=output, name=feature)
    return monitors, chosen


def monitor_channels(output: OutputDevice, channels: int) -> int:
    """The channel count to read ``output``'s monitor in, for a take of ``channels``.

    The output's own, so that micrec mixes the channels down or up itself: servers differ
    (PulseAudio downmixes stereo to mono as (L+R)/2, PipeWire as (L+R)/sqrt(2), 3 dB louder).
    """
    return output.channels or channels


def list_outputs(backend: Any) -> list[OutputDevice]:
    """The outputs of ``backend`` whose sound can be recorded; empty where it cannot record any."""
    if not isinstance(backend, MonitorBackend):
        return []
    return backend.list_outputs()
