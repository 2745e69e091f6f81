"""The streaming server inside podwire-cri: an asyncio loop on its own daemon thread.

The gRPC handlers run on worker threads; they only issue tokens (thread-safe) and build URLs.
Everything that touches a session runs on this loop, so one slow client never holds a gRPC
worker, and idle sessions cost a few objects rather than a thread each.

    server = StreamingServer.from_config(cfg); server.start()
    url = server.issue(request, streams)     # from any thread; TooManyInFlight when full
    server.stop()
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import threading
from typing import Any, Optional

from .http import Settings, serve_connection
from .tokens import TokenCache

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class StreamingServer:
    def __init__(self, address: str = "127.0.0.1", port: int = 0, *,
                 idle_timeout: float = 4 * 3600.0, creation_timeout: float = 30.0,
                 tokens: Optional[TokenCache] = None) -> None:
        self.address = address
        self.port = port                    # the bound one once started (port 0 = any free)
        self.tokens = tokens if tokens is not None else TokenCache()
        self.settings = Settings(self.tokens, idle_timeout, creation_timeout)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._sessions: set[asyncio.Task] = set()

    @classmethod
    def from_config(cls, cfg) -> "StreamingServer":
        return cls(cfg.stream_address, cfg.stream_port, idle_timeout=cfg.stream_idle_timeout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and listen; returns once connections are accepted (OSError if the bind failed)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cri-streaming", daemon=True)
        self._thread.start()
        try:
            self._call(self._listen(), START_TIMEOUT)
        except BaseException:
            self._shutdown_loop()
            raise
        log.info("streaming server on %s", self.base_url)

    def stop(self) -> None:
        """Close the listener and end every session (their back ends clean up)."""
        if self._loop is None:
            return
        try:
            self._call(self._close(), STOP_TIMEOUT)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("streaming server: sessions did not end in %ss", STOP_TIMEOUT)
        self._shutdown_loop()

    def _call(self, coro, timeout: float):
        assert self._loop is not None, "the streaming server is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _shutdown_loop(self) -> None:
        loop, thread, self._loop = self._loop, self._thread, None
        assert loop is not None and thread is not None, "start() made both"
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._session, self.address, self.port,
                                                  limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        # stop() runs this only on a started server, and start() returns only once listening.
        assert self._server is not None
        self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None, "start_server runs each connection callback in a task"
        self._sessions.add(task)
        try:
            await serve_connection(reader, writer, self.settings)
        finally:
            self._sessions.discard(task)

    # -- URLs --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = self.address
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return f"http://{host}:{self.port}"        # a host name
        if ip.is_unspecified:
            # Listening everywhere: the kubelet on this node (which always proxies) reaches
            # us on loopback.
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        return f"http://[{ip}]:{self.port}" if ip.version == 6 else f"http://{ip}:{self.port}"

    def url(self, kind: str, token: str) -> str:
        return f"{self.base_url}/{kind}/{token}"

    def open_sessions(self) -> dict[str, int]:
        """Sessions open now by kind (exec, attach, portforward); from any thread (a dict copy
        is atomic under the GIL, the loop's thread is the only writer)."""
        return dict(self.settings.sessions)

    def issue(self, request: Any, streams: Any = None) -> str:
        """Store request (with the client's streams, for exec/attach) under a new token; its
        URL.  Thread-safe; tokens.TooManyInFlight when too many wait."""
        return self.url(request.kind, self.tokens.insert((request, streams)))
