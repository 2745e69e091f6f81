"""Exec and Attach sessions on either transport (the kubelet's remotecommand server).

The client opens its streams (SPDY: one stream each, named by the ``streamtype`` header;
WebSocket: fixed channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); we give the back
end a StreamIO over them, run it, and say how it ended on the error stream: a metav1 Status
(v4 and v5; the JSON shape the kubelet writes, which client-go's v4 decoder and the Python
client read) or, for v1-v3, the failure message as plain text.  Then every stream ends and
the connection closes.  A client that goes away cancels the back end, which cleans up.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Optional, Union

from . import StreamError, StreamIO
from .requests import AttachRequest, ExecRequest
from .websocket import V4, V4_BASE64, V5, ChannelConnection

log = logging.getLogger(__name__)

SPDY_PROTOCOLS = (V4, "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
WEBSOCKET_PROTOCOLS = (V5, V4, V4_BASE64, "base64.channel.k8s.io", "channel.k8s.io")
STATUS_OBJECT = {V4, V4_BASE64, V5}                      # the rest write plain text
RESIZING = {V5, V4, V4_BASE64, "v3.channel.k8s.io"}      # SPDY v1/v2 have no resize stream
STREAM_CREATION_TIMEOUT = 30.0
LINGER = 2.0        # after the status: time for the client to hang up first (see _linger)

STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)         # WebSocket channels

Request = Union[ExecRequest, AttachRequest]


@dataclass(frozen=True)
class Streams:
    """The streams the client opens: its CRI request's flags.  For Attach they can differ
    from what the back end does (it follows the container's own tty)."""
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


# -- the Status object ---------------------------------------------------------------------------

def success() -> dict:
    return {"metadata": {}, "status": "Success"}


def exit_failure(req: ExecRequest, code: int) -> dict:
    # The message as the kubelet builds it around containerd's CodeExitError ("[sh -c exit 7]"
    # is Go's %v of the command).
    cause = f"error executing command [{' '.join(req.cmd)}], exit code {code}"
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {cause}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error(text: str) -> dict:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {text}",
            "reason": "InternalError", "details": {"causes": [{"message": text}]}, "code": 500}


def encode_status(status: dict, protocol: str) -> bytes:
    if protocol in STATUS_OBJECT:
        return json.dumps(status, separators=(",", ":")).encode()
    return b"" if status["status"] == "Success" else status["message"].encode()


# -- running the back end ------------------------------------------------------------------------

async def run_backend(req: Request, io: StreamIO, gone: asyncio.Event) -> Optional[dict]:
    """Run exec/attach until it ends (its Status) or the client is gone (None, the back end
    cancelled and cleaned up)."""
    task = asyncio.create_task(_backend(req, io))
    waiter = asyncio.create_task(gone.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return None
    what = "executing command in" if req.kind == "exec" else "attaching to"
    try:
        code = task.result()
    except StreamError as err:
        return internal_error(f"error {what} container: {err}")
    except Exception as err:  # noqa: BLE001 - a bug below must still end the session cleanly
        log.exception("%s %s failed", req.kind, req.container_id)
        return internal_error(f"error {what} container: {type(err).__name__}: {err}")
    if isinstance(req, ExecRequest) and code:
        return exit_failure(req, code)
    return success()


async def _backend(req: Request, io: StreamIO) -> Optional[int]:
    # Imported here: the back ends pull in the monitor and runc helpers, which the HTTP layer's
    # unit tests do not need.
    if isinstance(req, ExecRequest):
        from .exec import run_exec
        return await run_exec(req, io)
    from .attach import run_attach
    await run_attach(req, io)
    return None


async def pump_resize(source, queue: "asyncio.Queue[tuple[int, int]]") -> None:
    """{"Width":W,"Height":H} objects (newline-separated by client-go's encoder; any
    whitespace will do, as for the kubelet's json.Decoder) -> (width, height)."""
    decoder = json.JSONDecoder()
    buf = ""
    while data := await source.read():
        buf += data.decode(errors="replace")
        while True:
            buf = buf.lstrip()
            try:
                size, end = decoder.raw_decode(buf)
            except json.JSONDecodeError:
                if len(buf) > 4096:         # never a terminal size: garbage
                    log.info("dropping unparsable resize data: %r", buf[:100])
                    buf = ""
                break
            buf = buf[end:]
            try:
                queue.put_nowait((int(size["Width"]), int(size["Height"])))
            except (KeyError, TypeError, ValueError):
                log.info("ignoring malformed resize event %r", size)


def backend_io(req: Request, streams: Streams, stdin, stdout, stderr) -> StreamIO:
    """The back end's view: what it asked for (req) of what the client opened (streams)."""
    return StreamIO(stdin=stdin if req.stdin and streams.stdin else None,
                    stdout=stdout if req.stdout and streams.stdout else None,
                    stderr=stderr if req.stderr and streams.stderr and not req.tty else None,
                    tty=req.tty)


async def _write_status(sink, payload: bytes) -> None:
    if payload:             # v1-v3 success: nothing at all
        with contextlib.suppress(ConnectionError):
            await sink.write(payload)


async def _ended(*sinks) -> None:
    for sink in sinks:
        if sink is not None:
            with contextlib.suppress(ConnectionError):
                await sink.close()


# -- SPDY ----------------------------------------------------------------------------------------

async def serve_spdy(session, protocol: str, req: Request, streams: Streams,
                     creation_timeout: float = STREAM_CREATION_TIMEOUT) -> None:
    wanted = {"error"} | {kind for kind, on in (("stdin", streams.stdin), ("stdout", streams.stdout),
                                                ("stderr", streams.stderr)) if on}
    if streams.tty and protocol in RESIZING:
        wanted.add("resize")
    got = await _accept_streams(session, wanted, creation_timeout)
    if got is None:
        return
    io = backend_io(req, streams, got.get("stdin"), got.get("stdout"), got.get("stderr"))
    resizing = asyncio.create_task(pump_resize(got["resize"], io.resize)) if "resize" in got else None
    try:
        status = await run_backend(req, io, session.closed)
        if status is None:
            return
        await _ended(got.get("stdout"), got.get("stderr"))
        await _write_status(got["error"], encode_status(status, protocol))
        await _ended(got["error"])
        await _linger(session.closed)
    finally:
        if resizing is not None:
            resizing.cancel()


async def _accept_streams(session, wanted: set[str], timeout: float) -> Optional[dict]:
    """The client's streams by type, once it opened all of them; None if it did not within
    the timeout (the kubelet's "timed out waiting for client to create streams") or left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: dict = {}
    while not wanted <= got.keys():
        left = deadline - loop.time()
        stream = await session.accept_stream(left) if left > 0 else None
        if stream is None:
            if not session.closed.is_set():
                log.info("remotecommand: timed out waiting for streams %s", sorted(wanted - got.keys()))
            return None
        kind = stream.headers.get("streamtype", "")
        if kind in wanted and kind not in got:
            got[kind] = stream
        else:
            log.info("remotecommand: unexpected stream type %r; resetting it", kind)
            stream.reset()
    return got


async def _linger(gone: asyncio.Event) -> None:
    """Let the client hang up first: it does so once it read the status, and closing our end
    while its stdin is still arriving would make the kernel answer with RST, which can destroy
    the status on its way."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(gone.wait(), LINGER)


# -- WebSocket -----------------------------------------------------------------------------------

async def serve_websocket(conn: ChannelConnection, req: Request, streams: Streams) -> None:
    stdin = conn.source(STDIN) if streams.stdin else None
    resize = conn.source(RESIZE) if streams.tty else None
    conn.start()
    stdout, stderr, error = conn.sink(STDOUT), conn.sink(STDERR), conn.sink(ERROR)
    # wsstream's "connection established": an empty message on the lowest channel we write.
    first = stdout if streams.stdout else stderr if streams.stderr else error
    with contextlib.suppress(ConnectionError):
        await first.write(b"")
    io = backend_io(req, streams, stdin, stdout, stderr)
    resizing = asyncio.create_task(pump_resize(resize, io.resize)) if resize is not None else None
    try:
        status = await run_backend(req, io, conn.closed)
        if status is None:
            return
        await _ended(stdout if streams.stdout else None, stderr if streams.stderr else None)
        await _write_status(error, encode_status(status, conn.protocol))
        await _ended(error)
    finally:
        if resizing is not None:
            resizing.cancel()
