"""Stop signals: the CRI's Signal enum, the image's STOPSIGNAL ("SIGTERM", "TERM", "15")."""
from __future__ import annotations

import signal as _signal
from typing import Mapping

from cri.errors import invalid
from cri.oci.imageconfig import settings


def parse_signal(value: str | int) -> int:
    if isinstance(value, int):
        return value
    text = value.strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(_signal.Signals[name])
    # Kept: containerd's ParseSignal refuses unknown names too; guessing one would stop the
    # container with a signal nobody asked for.
    except KeyError:
        raise invalid(f"unknown signal {value!r}")


def stop_signal(config, image_config: Mapping) -> int:
    """ContainerConfig.stop_signal (when not RUNTIME_DEFAULT), else the image's STOPSIGNAL,
    else SIGTERM."""
    if config.stop_signal:
        name = config.DESCRIPTOR.fields_by_name["stop_signal"].enum_type.values_by_number[
            config.stop_signal].name
        return parse_signal(name)
    image_signal = settings(image_config).get("StopSignal") or ""
    return parse_signal(image_signal) if image_signal else int(_signal.SIGTERM)
