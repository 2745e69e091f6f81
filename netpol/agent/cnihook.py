"""The CNI hook socket: pod registration for the `podwire` CNI plugin, standard library only.

The plugin's executable must start with the standard library alone (no grpc, no protobuf:
importing them would add tens of milliseconds to every CNI call), so it cannot speak gRPC.
It talks this one-line JSON protocol instead, on a second unix socket next to the gRPC one;
both go through the same Agent methods.  The client is cni/plugin/netpol.py, which must be
kept in sync with this module.

    -> {"op": "add", "namespace": "x", "name": "a", "containerID": "...",
        "interface": "pw0123456789ab", "ips": ["10.85.0.5/24", ...]}
    -> {"op": "del", "interface": "pw0123456789ab"}
    <- {"ok": true, "endpointID": 7}  |  {"ok": false, "code": "FAILED_PRECONDITION", "error": "..."}

`add` sets the pod's interface, addresses and container ID (labels and named
ports come from the CRI shim or the Kubernetes source, keyed by namespace and
name); programs are attached before the reply, so the pod is isolated before
CNI ADD returns.
"""
from __future__ import annotations

import json
import logging
import os
import socketserver
import threading

from ..errors import InvalidArgument, NetpolError
from ..model import Pod
from .core import Agent
from .server import status_of
from .sockets import bind_private

log = logging.getLogger("podwire.netpol")
MAX_REQUEST = 64 * 1024
# A connection is one request and one reply; a client that stalls past this is dropped so that
# it cannot hold a thread.  Each plugin call waits on the agent for at most a few ms.
REQUEST_TIMEOUT = 10.0
# Concurrent connections served; more are answered UNAVAILABLE at once (the plugin then fails
# the ADD, and the runtime retries) rather than each taking a thread.
MAX_CONNECTIONS = 64


def handle(agent: Agent, request: dict) -> dict:
    op = request.get("op")
    if op == "add":
        pod = Pod(namespace=request.get("namespace", ""), name=request.get("name", ""),
                  ips=tuple(ip.split("/")[0] for ip in request.get("ips", [])),
                  interface=request.get("interface", ""), container_id=request.get("containerID", ""))
        view = agent.upsert_endpoint(pod, {"ips", "interface", "container_id"})
        return {"ok": True, "endpointID": view.ep_id}
    if op == "del":
        return {"ok": True, "removed": agent.remove_endpoint(interface=request.get("interface", ""))}
    raise InvalidArgument(f"unknown op {op!r}")


class _Handler(socketserver.StreamRequestHandler):
    timeout = REQUEST_TIMEOUT

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST)
            assert isinstance(self.server, _Server)
            reply = handle(self.server.agent, json.loads(line))
        except (ValueError, AttributeError) as exc:  # not JSON, or not an object
            reply = {"ok": False, "code": "INVALID_ARGUMENT", "error": f"bad request: {exc}"}
        except TimeoutError:
            log.info("CNI hook: a client sent no request within %ss; dropped", REQUEST_TIMEOUT)
            return
        except Exception as exc:  # noqa: BLE001 - the boundary of this protocol
            if not isinstance(exc, NetpolError):
                log.exception("CNI hook request failed")
            reply = {"ok": False, "code": status_of(exc).name, "error": str(exc)}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    agent: Agent

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(json.dumps({"ok": False, "code": "UNAVAILABLE",
                                            "error": "the agent is serving too many CNI calls"}).encode() + b"\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class CniHookServer:
    def __init__(self, agent: Agent, path: str):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)  # only one agent per node; serve.py checked the gRPC socket first
        self._server = bind_private(path, lambda staged: _Server(staged, _Handler))
        self._server.agent = agent
        self._thread = threading.Thread(target=self._server.serve_forever, name="netpol-cni-hook", daemon=True)

    def start(self) -> "CniHookServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
