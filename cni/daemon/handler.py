"""One request inside podwire-cnid.

Per container it is serialized (:class:`~.locks.KeyedLocks`); it has a deadline
(the client's, else the daemon's default); its verbs run through
``skel.dispatch`` -- the same single boundary that turns a CniError into the
spec's JSON in standalone mode, so answers are byte for byte the same.  An ADD
that succeeded but whose client is gone, never acknowledges the answer, or
overran its deadline is undone with a DEL before the container's lock is
released: nothing is left half-done, and a retry finds a clean slate.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from typing import Optional, Protocol

from .. import logs, skel
from ..context import Context
from ..errors import CniError, Code
from .wire import SOCKET_ENV
from .health import Health
from .locks import KeyedLocks

log = logging.getLogger("podwire-cnid")
HEALTH = "health"  # the plugin name ``podwire-cnid status`` asks for


@dataclasses.dataclass
class Request:
    plugin: str
    env: dict
    stdin: bytes
    timeout_ms: int = 0

    @property
    def command(self) -> str:
        return self.env.get("CNI_COMMAND", "")


@dataclasses.dataclass
class Answer:
    code: int
    stdout: bytes
    stderr: bytes = b""


class Client(Protocol):
    """The connection a request came in on (see server.Connection)."""

    def gone(self) -> bool: ...
    def deliver(self, answer: Answer, wait_ack: bool) -> bool: ...
    def decline(self) -> None: ...


class Observer(Protocol):
    """Told of every answered request (metrics.CnidMetrics)."""

    def observe(self, req: Request, answer: Answer, seconds: float) -> None: ...


class Handler:
    def __init__(self, health: Health, plugins: dict[str, skel.Verbs], context: Context,
                 default_timeout: float = 120.0, observer: Optional[Observer] = None) -> None:
        """``plugins``: the verbs served, by executable name; ``context``: what they run in."""
        self.health = health
        self.context = context
        self.default_timeout = default_timeout
        self.observer = observer
        self.locks = KeyedLocks()
        self.verbs = {name: self._reporting_health(verbs) for name, verbs in plugins.items()}

    def handle(self, req: Request, client: Client) -> bool:
        """Serve one request; False if declined (the client runs it in process)."""
        if req.plugin == HEALTH:
            return client.deliver(Answer(0, json.dumps(self.health.report()).encode()), wait_ack=False)
        verbs = self.verbs.get(req.plugin)
        if verbs is None:
            client.decline()
            return False
        taken = time.monotonic()
        deadline = taken + (req.timeout_ms / 1000 or self.default_timeout)
        with logs.fields(plugin=req.plugin, command=req.command, container_id=req.env.get("CNI_CONTAINERID"),
                         ifname=req.env.get("CNI_IFNAME")), \
                self.locks.hold(req.env.get("CNI_CONTAINERID", ""), deadline - time.monotonic()) as held:
            if not held:
                self._deliver(req, taken, client, self.run(req, refusing(CniError(
                    Code.TRY_AGAIN_LATER, "another request for this container is still running",
                    "the deadline passed while waiting for it"))))
            elif not client.gone():  # gone before we started: nothing to do or undo
                self._serve(req, verbs, taken, deadline, client)
        return True

    def _serve(self, req: Request, verbs: skel.Verbs, taken: float, deadline: float, client: Client) -> None:
        started = time.monotonic()
        answer = self.run(req, verbs)
        ms = (time.monotonic() - started) * 1000
        log.debug("%s %s %s/%s: exit %d in %.1f ms", req.plugin, req.command, req.env.get("CNI_CONTAINERID", ""),
                  req.env.get("CNI_IFNAME", ""), answer.code, ms, extra={"exit_code": answer.code, "ms": round(ms, 1)})
        if req.command != "ADD" or answer.code != 0:
            self._deliver(req, taken, client, answer)  # DEL/GC finished; CHECK/STATUS changed nothing
            return
        if time.monotonic() > deadline:
            self.undo(req, verbs, "its deadline passed")
            self._deliver(req, taken, client, self.run(req, refusing(CniError(
                Code.TRY_AGAIN_LATER, "ADD took longer than its deadline and was undone"))))
            return
        self._observe(req, taken, answer)  # before the client's acknowledgement, which is its own time
        if not client.deliver(answer, wait_ack=True):
            self.undo(req, verbs, "its client went away before taking the result")

    def _deliver(self, req: Request, taken: float, client: Client, answer: Answer) -> None:
        self._observe(req, taken, answer)
        client.deliver(answer, wait_ack=False)

    def _observe(self, req: Request, taken: float, answer: Answer) -> None:
        if self.observer is not None:
            self.observer.observe(req, answer, time.monotonic() - taken)

    def run(self, req: Request, verbs: skel.Verbs, env: Optional[dict] = None) -> Answer:
        env = env or req.env
        stdout, stderr = io.StringIO(), io.StringIO()
        # Plugins we exec get the caller's environment -- minus the daemon, which is busy
        # with this very container and would deadlock on its lock.
        context = self.context.for_caller({**env, SOCKET_ENV.decode(): ""})
        code = skel.dispatch(verbs, env, io.BytesIO(req.stdin), stdout, stderr, context)
        return Answer(code, stdout.getvalue().encode(), stderr.getvalue().encode())

    def undo(self, req: Request, verbs: skel.Verbs, why: str) -> None:
        log.warning("undoing ADD of %s/%s: %s", req.env.get("CNI_CONTAINERID"), req.env.get("CNI_IFNAME"), why)
        answer = self.run(req, verbs, {**req.env, "CNI_COMMAND": "DEL"})
        if answer.code != 0:
            log.error("undo (DEL) failed: %s", answer.stdout.decode(errors="replace"))

    def _reporting_health(self, verbs: skel.Verbs) -> skel.Verbs:
        """STATUS also fails (code 50) while the daemon itself is not ready."""
        def status(args: skel.CmdArgs):
            self.health.require_ready()
            return verbs.status(args) if verbs.status else None
        return dataclasses.replace(verbs, status=status)


def refusing(err: CniError) -> skel.Verbs:
    """Verbs that all fail with ``err``: the daemon's own errors leave through skel too."""
    def fail(args: skel.CmdArgs):
        raise err
    return skel.Verbs(add=fail, delete=fail, check=fail, status=fail, gc=fail)
