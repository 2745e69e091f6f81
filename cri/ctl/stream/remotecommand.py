"""The Kubernetes remotecommand protocol over SPDY, client side (exec and attach).

One SPDY stream per standard stream, each named by its ``streamtype`` header and opened in
client-go's order: error, stdin (-i), stdout, stderr (not with a tty), resize (a tty, v3+).
The session is over when stdout and stderr have ended; the error stream then says how the
process ended (v4: a Status object; v1-v3: text, empty on success)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass

from cri.streaming.spdy_session import SpdySession

from . import StreamClientError, fdio, terminal
from .upgrade import REMOTECOMMAND, upgrade

V4 = "v4.channel.k8s.io"
WITH_RESIZE = {"v4.channel.k8s.io", "v3.channel.k8s.io"}


@dataclass
class Local:
    """The local end: file descriptors, injectable for tests."""
    stdin: int = 0
    stdout: int = 1
    stderr: int = 2


def exit_status(protocol: str, raw: bytes) -> tuple[int, str]:
    """(exit code, message for the user) from the error stream's content."""
    if not raw.strip():
        return 0, ""
    if protocol != V4:
        return 1, raw.decode(errors="replace").strip()
    try:
        status = json.loads(raw)
    except ValueError:
        return 1, f"error stream: not a Status object: {raw[:200]!r}"
    if status.get("status") == "Success":
        return 0, ""
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", "")), ""
                except ValueError:
                    return 1, f"error stream: invalid exit code {cause.get('message')!r}"
    return 1, status.get("message") or f"remote command failed: {raw.decode(errors='replace')}"


async def run(url: str, local: Local, *, stdin: bool, tty: bool) -> tuple[int, str]:
    """Upgrade ``url``, run the session to its end; (exit code, message for the user)."""
    up = await upgrade(url, REMOTECOMMAND)
    session = SpdySession(up.reader, up.writer, server=False, initial=up.initial)
    reading = asyncio.create_task(session.run())
    signals = fdio.Signals(fdio.this_task())
    try:
        with signals:
            return await _session(session, up.protocol, local, stdin, tty)
    except asyncio.CancelledError:
        if signals.received:
            return 128 + signals.received, ""
        raise
    except (ConnectionError, TimeoutError) as err:
        raise StreamClientError(f"streaming session failed: {err or type(err).__name__}") from None
    finally:
        await session.close()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


async def _session(session, protocol: str, local: Local, stdin: bool, tty: bool) -> tuple[int, str]:
    async def open_(kind: str):
        return await session.open_stream({"streamtype": kind})
    error = await open_("error")
    sin = await open_("stdin") if stdin else None
    sout = await open_("stdout")
    serr = None if tty else await open_("stderr")
    resize = await open_("resize") if tty and protocol in WITH_RESIZE else None
    with contextlib.ExitStack() as stack:
        if tty and os.isatty(local.stdin):
            stack.enter_context(terminal.RawMode(local.stdin))
        outputs = [asyncio.create_task(_copy_out(sout, local.stdout))]
        if serr is not None:
            outputs.append(asyncio.create_task(_copy_out(serr, local.stderr)))
        errors = asyncio.create_task(_read_all(error))
        helpers = []
        if sin is not None:
            helpers.append(asyncio.create_task(_copy_in(local.stdin, sin)))
        if resize is not None:
            fd = local.stdout if os.isatty(local.stdout) else local.stdin
            helpers.append(asyncio.create_task(_send_sizes(resize, fd)))
        tasks = [*outputs, errors, *helpers]
        try:
            await asyncio.gather(*outputs)
            raw = await errors
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return exit_status(protocol, raw)


async def _read_all(stream) -> bytes:
    chunks = []
    while data := await stream.read():
        chunks.append(data)
    return b"".join(chunks)


async def _copy_out(stream, fd: int) -> None:
    while data := await stream.read():
        await fdio.write(fd, data)


async def _copy_in(fd: int, stream) -> None:
    """Local input to the stdin stream; EOF half-closes it (the process sees EOF)."""
    try:
        while data := await fdio.read(fd):
            await stream.write(data)
        await stream.close()
    except (ConnectionError, OSError):
        pass                            # the session is ending; the outputs say how


async def _send_sizes(stream, fd: int) -> None:
    """The terminal's size now and after every SIGWINCH, each new size once."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    loop.add_signal_handler(signal.SIGWINCH, changed.set)
    try:
        last = None
        while True:
            now = terminal.size(fd)
            if now and now != last:
                await stream.write(terminal.resize_message(*now))
                last = now
            await changed.wait()
            changed.clear()
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
