"""Delegation to the IPAM plugin named by ``ipam.type``.

podwire-ipam runs in-process (same code, no exec, no second interpreter);
any other IPAM plugin (e.g. the reference host-local) is exec'd from CNI_PATH
exactly as the spec describes.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from .. import invoke, version
from ..skel import CmdArgs

IN_PROCESS = "podwire-ipam"


def run(command: str, args: CmdArgs) -> Optional[dict]:
    """Run one IPAM verb for this attachment; results come back in the internal shape."""
    ipam_type = (args.config.get("ipam") or {}).get("type", "")
    call = dataclasses.replace(args, command=command)
    if ipam_type == IN_PROCESS:
        from ..ipam.main import VERBS  # imported lazily: only when used
        verb = VERBS.get(command)
        return verb(call) if verb else None
    env = {**call.env(), "CNI_COMMAND": command}
    result = invoke.exec_plugin(invoke.find_plugin(ipam_type, args.path), env, args.stdin_data,
                                caller_environ=args.context.caller_environ)
    return version.to_current(result) if (command == "ADD" and result) else None
