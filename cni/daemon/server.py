"""podwire-cnid's unix socket: accept, check the peer, hand each connection to a worker.

The socket is root's alone (mode 0600, and peers must be the daemon's own
user): whoever can talk to it can wire interfaces into any namespace.  A peer
in another network or mount namespace is declined rather than served, because
"the host" and the paths in its request mean something else there; it runs the
request in process instead.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import select
import socket
import struct
import threading
from typing import Optional

from .. import unixsock
from . import wire
from .handler import Answer, Handler, Request

log = logging.getLogger("podwire-cnid")
READ_TIMEOUT = 10.0  # a client sends its whole request at once
ACK_TIMEOUT = 10.0   # ... and acknowledges right after writing the answer out
# Connections queued or being served at once (the listen backlog); beyond it a client is declined
# and runs the plugin itself, so a burst never waits behind an unbounded queue.
MAX_PENDING = 256
_GONE = select.POLLHUP | select.POLLRDHUP | select.POLLERR


class Connection:
    """One client, as the handler sees it (handler.Client)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def gone(self) -> bool:
        poller = select.poll()
        poller.register(self.sock, select.POLLRDHUP)
        return any(events & _GONE for _, events in poller.poll(0))

    def deliver(self, answer: Answer, wait_ack: bool) -> bool:
        try:
            self.sock.sendall(wire.encode_answer(wire.ANSWERED, answer.code, answer.stdout, answer.stderr))
            if not wait_ack:
                return True
            self.sock.settimeout(ACK_TIMEOUT)
            return self.sock.recv(1) == wire.ACK
        except OSError:
            return False

    def decline(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(wire.encode_answer(wire.DECLINED, 0, b"", b""))


class Server:
    def __init__(self, path: str, handler: Handler, workers: int = 32) -> None:
        self.path = path
        self.handler = handler
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="cnid")
        self.listener: Optional[socket.socket] = None
        self._ident: Optional[tuple[int, int]] = None
        self._accepting: Optional[threading.Thread] = None
        self._own_ns = [_ns_id("self", ns) for ns in ("net", "mnt")]
        self._pending = 0                      # connections taken and not yet finished
        self._count_lock = threading.Lock()

    def start(self) -> None:
        self.listener = _listen(self.path)
        st = os.stat(self.path)
        self._ident = (st.st_dev, st.st_ino)
        self._accepting = threading.Thread(target=self._accept_loop, name="cnid-accept", daemon=True)
        self._accepting.start()
        log.info("listening on %s", self.path)

    def stop(self) -> None:
        """Stop taking connections, then finish every one already taken."""
        self.handler.health.draining = True
        if self.listener is not None:
            self._unlink_if_ours()  # new clients fall back to in-process right away
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self.listener.close()
        if self._accepting is not None:
            self._accepting.join()
        self.pool.shutdown(wait=True)
        log.info("stopped")

    def _accept_loop(self) -> None:
        listener = self.listener
        assert listener is not None, "start() binds before the loop runs"
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            with self._count_lock:
                full = self._pending >= MAX_PENDING
                self._pending += 0 if full else 1
            if full:
                # The pool's queue is unbounded; each waiting connection holds an fd and a
                # client.  Declined, the client runs the plugin in its own process at once.
                Connection(conn).decline()
                conn.close()
                continue
            self.pool.submit(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._serve_one(conn)
        finally:
            with self._count_lock:
                self._pending -= 1

    def _serve_one(self, conn: socket.socket) -> None:
        self.handler.health.begin()
        served = False
        try:
            with conn:
                conn.settimeout(READ_TIMEOUT)
                plugin, env, stdin, timeout_ms = wire.recv_request(conn)
                conn.settimeout(None)
                client = Connection(conn)
                if not self._same_namespaces(conn):
                    client.decline()
                    return
                served = self.handler.handle(Request(plugin, env, stdin, timeout_ms), client)
        except (OSError, EOFError, ValueError) as exc:
            log.debug("dropped a connection: %s", exc)  # before any work started (e.g. a probe)
        except Exception:  # noqa: BLE001 - a worker must survive any one request
            log.exception("request failed")
        finally:
            self.handler.health.end(served)

    def _same_namespaces(self, conn: socket.socket) -> bool:
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        try:
            return uid == os.geteuid() and [_ns_id(str(pid), ns) for ns in ("net", "mnt")] == self._own_ns
        except OSError:
            return False  # the peer is gone already

    def _unlink_if_ours(self) -> None:
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._ident:
                os.unlink(self.path)


def _ns_id(pid: str, ns: str) -> tuple[int, int]:
    st = os.stat(f"/proc/{pid}/ns/{ns}")
    return st.st_dev, st.st_ino


def _listen(path: str) -> socket.socket:
    """Bind ``path`` mode 0600; a stale socket (nobody answering) is replaced,
    a live one means another daemon serves it and is an error."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    try:
        unixsock.clear_stale(path)
    except unixsock.SocketInUse:
        raise RuntimeError(f"another podwire-cnid is listening on {path}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    os.chmod(path, 0o600)  # before listen(): until then every connect() is refused
    sock.listen(256)  # bursts of pods arrive at once
    return sock
