"""Build what one plugin of a list reads on stdin (libcni's buildOneConfig/InjectConf).

The runtime owns ``name`` and ``cniVersion`` (every plugin sees the list's),
``prevResult`` and ``runtimeConfig``; whatever the plugin's own config says
for those keys is overwritten.
"""
from __future__ import annotations

import copy
import json
from typing import Optional


def plugin_stdin(plugin: dict, name: str, cni_version: str, *, prev_result: Optional[dict] = None,
                 capability_args: Optional[dict] = None, extra: Optional[dict] = None) -> bytes:
    conf = copy.deepcopy(plugin)
    conf["name"] = name
    conf["cniVersion"] = cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    runtime_config = runtime_config_for(plugin, capability_args or {})
    if runtime_config:
        # Replaces any static runtimeConfig wholesale, as libcni does.
        conf["runtimeConfig"] = runtime_config
    conf.update(extra or {})
    return json.dumps(conf, separators=(",", ":")).encode()


def runtime_config_for(plugin: dict, capability_args: dict) -> dict:
    """Only the capabilities this plugin declares ``true`` and the runtime passed:
    a plugin must never see runtime data it did not ask for (CONVENTIONS.md)."""
    declared = plugin.get("capabilities") or {}
    return {cap: capability_args[cap] for cap, on in declared.items()
            if on is True and cap in capability_args}
