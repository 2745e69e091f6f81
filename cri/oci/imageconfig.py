"""The parts of an OCI image config the runtime uses (User, Env, Entrypoint, Cmd, WorkingDir,
StopSignal).  Accepts the whole image config JSON or just its "config" object."""
from __future__ import annotations

from typing import Any, Mapping


def settings(image_config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not image_config:
        return {}
    inner = image_config.get("config")
    return (inner or {}) if isinstance(inner, Mapping) or "rootfs" in image_config else image_config
