"""Stop signals: the CRI's Signal enum, the image's STOPSIGNAL ("SIGTERM", "TERM", "15")."""
from __future__ import annotations

import logging
import re
import signal as _signal
from typing import Mapping

from cri.errors import CriError, invalid
from cri.oci.imageconfig import settings

log = logging.getLogger(__name__)
_REALTIME = re.compile(r"^SIGRT(MIN|MAX)(?:([+-])(\d+))?$")


def parse_signal(value: str | int) -> int:
    """"SIGTERM", "TERM", "15", and real-time signals as "SIGRTMIN+3" or "RTMAX-2" (systemd
    images stop on SIGRTMIN+3), as the signal parser containerd and CRI-O share reads them."""
    if isinstance(value, int):
        return value
    text = value.strip().upper()
    name = text if text.startswith("SIG") else "SIG" + text
    realtime = _REALTIME.match(name)
    number = int(text) if text.isdigit() else _realtime(realtime) if realtime else None
    if number is None:
        number = int(_signal.Signals[name]) if name in _signal.Signals.__members__ else 0
    # Kept: containerd's and CRI-O's parser refuse unknown names and numbers outside 1..SIGRTMAX
    # too; guessing one would stop the container with a signal nobody asked for.
    if not 0 < number <= _signal.SIGRTMAX:
        raise invalid(f"unknown signal {value!r}")
    return number


def _realtime(match: re.Match[str]) -> int:
    """SIGRTMIN+n / SIGRTMAX-n (``_REALTIME``'s match); 0 (unknown) when the offset leaves
    the real-time range."""
    base, sign, offset = match.groups()
    number = int(_signal.SIGRTMIN if base == "MIN" else _signal.SIGRTMAX)
    number += int(offset or 0) * (-1 if sign == "-" else 1)
    return number if _signal.SIGRTMIN <= number <= _signal.SIGRTMAX else 0


def stop_signal(config, image_config: Mapping) -> int:
    """ContainerConfig.stop_signal (when not RUNTIME_DEFAULT), else the image's STOPSIGNAL,
    else SIGTERM."""
    if config.stop_signal:
        name = config.DESCRIPTOR.fields_by_name["stop_signal"].enum_type.values_by_number[
            config.stop_signal].name
        return parse_signal(name)
    image_signal = settings(image_config).get("StopSignal") or ""
    if not image_signal:
        return int(_signal.SIGTERM)
    try:
        return parse_signal(image_signal)
    except CriError:
        # The image's setting, not the request's: CRI-O stops such a container with SIGTERM
        # (containerd fails only when stopping it); refusing to create it would punish the
        # user for the image author's typo.
        log.warning("image STOPSIGNAL %r is not a signal; SIGTERM will stop this container",
                    image_signal)
        return int(_signal.SIGTERM)
