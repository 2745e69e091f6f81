"""Register the pod with the podwire NetworkPolicy agent, when one runs on this node.

Standard library only: this runs on the executables' start-up path.  It speaks
the agent's one-line JSON CNI-hook protocol (netpol/agent/cnihook.py; the two
must be kept in sync) on the socket named by the config key `netpolSocket`
(default /run/podwire/netpol-cni.sock).

- No socket: no agent on this node; nothing to do.
- ADD fails closed: if the socket exists but the agent does not answer or
  refuses, ADD fails with code 11 (try again later) and unwinds, so a pod that
  a policy selects never starts without its programs attached.  The agent
  attaches them before it answers, i.e. before the pod's containers exist.
- DEL is best effort and never fails: the pod must be deletable without the
  agent, which forgets pods whose host veth vanished on its own.
- Only Kubernetes pods (K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS) are
  registered: policies can only name those.
"""
from __future__ import annotations

import json
import os
import socket

from ..errors import CniError, Code

DEFAULT_SOCKET = "/run/podwire/netpol-cni.sock"
TIMEOUT = 10.0


def register(args, host_name: str, ips: list[dict], undo) -> None:
    path = args.config.get("netpolSocket") or DEFAULT_SOCKET
    namespace, name = args.args.get("K8S_POD_NAMESPACE", ""), args.args.get("K8S_POD_NAME", "")
    if not (namespace and name) or not os.path.exists(path):
        return
    request = {"op": "add", "namespace": namespace, "name": name, "containerID": args.container_id,
               "interface": host_name, "ips": [ip["address"] for ip in ips]}
    try:
        reply = _call(path, request)
    except (OSError, ValueError) as exc:
        raise CniError(Code.TRY_AGAIN_LATER, "netpol agent unavailable", f"{path}: {exc}") from None
    if not reply.get("ok"):
        raise CniError(Code.TRY_AGAIN_LATER, "netpol agent refused the pod",
                       f"{reply.get('code', '')}: {reply.get('error', '')}")
    undo.callback(unregister, args, host_name)


def unregister(args, host_name: str) -> None:
    path = args.config.get("netpolSocket") or DEFAULT_SOCKET
    if os.path.exists(path):
        try:
            _call(path, {"op": "del", "interface": host_name})
        except (OSError, ValueError):
            pass  # best effort: see the module docstring


def _call(path: str, request: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("rb") as reply:
            return json.loads(reply.readline())
