"""podwire-ctl's streaming client (cri/ctl/stream/) against an in-test streaming server: the
real SPDY session in the server role behind a hand-made HTTP upgrade, so every header and
stream the client sends is seen as the server sees it."""
from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import signal
import struct
import termios
import types

import grpc
import h11
import pytest
from cri_api.v1 import api_pb2 as api

from cri.ctl import streaming
from cri.ctl.main import parser
from cri.ctl.stream import StreamClientError, fdio, portforward, remotecommand, terminal
from cri.streaming import spdy
from cri.ctl.stream.portforward import PortSpec, parse_port
from cri.ctl.stream.remotecommand import exit_status
from cri.ctl.stream.upgrade import REMOTECOMMAND, UpgradeError, request_bytes

V4 = "v4.channel.k8s.io"


def test_upgrade_request_offers_every_remotecommand_version_best_first():
    conn, data = request_bytes("http://127.0.0.1:9/exec/tok?x=1", REMOTECOMMAND)
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    req = server.next_event()
    assert (req.method, req.target) == (b"POST", b"/exec/tok?x=1")
    headers = [(k.decode(), v.decode()) for k, v in req.headers]
    assert ("upgrade", "SPDY/3.1") in headers and ("connection", "Upgrade") in headers
    assert [v for k, v in headers if k == "x-stream-protocol-version"] == [
        "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]


@pytest.mark.parametrize("raw, expected", [
    (b"", (0, "")),
    (b'{"metadata":{},"status":"Success"}', (0, "")),
    (json.dumps({"status": "Failure", "reason": "NonZeroExitCode", "details": {
        "causes": [{"reason": "ExitCode", "message": "42"}]}}).encode(), (42, "")),
    (json.dumps({"status": "Failure", "reason": "InternalError", "code": 500,
                 "message": "container is gone"}).encode(), (1, "container is gone")),
    (b"not json", (1, "error stream: not a Status object: b'not json'")),
])
def test_v4_status_decodes_to_exit_codes(raw, expected):
    assert exit_status(V4, raw) == expected


def test_v1_to_v3_errors_are_plain_text():
    assert exit_status("v3.channel.k8s.io", b"") == (0, "")
    assert exit_status("channel.k8s.io", b"command terminated\n") == (1, "command terminated")


@pytest.mark.parametrize("spec, parsed", [("8080:80", PortSpec(8080, 80)), ("80", PortSpec(80, 80)),
                                          (":80", PortSpec(0, 80)), ("0:80", PortSpec(0, 80))])
def test_port_specs_parse_like_kubectl(spec, parsed):
    assert parse_port(spec) == parsed


@pytest.mark.parametrize("spec", ["", "x", "80:", "1:0", "70000", "-1:80", "a:80"])
def test_bad_port_specs_are_refused(spec):
    with pytest.raises(StreamClientError):
        parse_port(spec)


def test_resize_message_is_kubernetes_terminal_size_json():
    assert terminal.resize_message(120, 40) == b'{"Width":120,"Height":40}\n'


def test_raw_mode_is_restored_on_error():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        with pytest.raises(RuntimeError):
            with terminal.RawMode(slave):
                assert not termios.tcgetattr(slave)[3] & termios.ECHO
                raise RuntimeError
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_fdio_reads_pipes_and_regular_files(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"file")

    async def main():
        r, w = os.pipe()
        os.write(w, b"pipe")
        os.close(w)
        fd = os.open(path, os.O_RDONLY)
        try:
            return (await fdio.read(r), await fdio.read(r), await fdio.read(fd), await fdio.read(fd))
        finally:
            os.close(r)
            os.close(fd)
    assert asyncio.run(main()) == (b"pipe", b"", b"file", b"")


# --- an in-test streaming server: h11 for the upgrade, spdy.py's frames for the session ---

class FakeServer:
    """Answers one upgrade per connection (101 with ``protocol``, or ``refuse`` = (status,
    body)), then records every SPDY frame and replies to each SYN_STREAM; ``script`` plays
    the server's part."""

    def __init__(self, script=None, protocol: str = V4, refuse=None) -> None:
        self.script, self.protocol, self.refuse = script, protocol, refuse
        self.requests: list[h11.Request] = []
        self.syns: list = []                # SynStream frames, in arrival order
        self.data: dict[int, bytearray] = {}
        self.fins: set[int] = set()
        self.changed = asyncio.Condition()
        self.done = asyncio.Event()

    async def __aenter__(self) -> "FakeServer":
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/exec/token"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _connection(self, reader, writer) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                self.requests.append(event)
        if self.refuse:
            status, body = self.refuse
            writer.write(conn.send(h11.Response(status_code=status, headers=[
                ("Content-Length", str(len(body)))])) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            writer.close()
            return
        writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=[
            ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", self.protocol)])))
        self.writer, self.frames = writer, spdy.FrameWriter()
        reading = asyncio.create_task(self._frames(reader, conn.trailing_data[0]))
        try:
            if self.script:
                await self.script(self)
        finally:
            self.done.set()
            await asyncio.sleep(0.05)
            writer.close()
            reading.cancel()

    async def _frames(self, reader, initial: bytes) -> None:
        frames, data = spdy.FrameReader(), initial
        while True:
            for frame in frames.feed(data):
                if isinstance(frame, spdy.SynStream):
                    self.syns.append(frame)
                    self.data[frame.stream_id] = bytearray()
                    self.send(spdy.SynReply(frame.stream_id))
                elif isinstance(frame, spdy.DataFrame):
                    self.data[frame.stream_id] += frame.data
                elif isinstance(frame, spdy.Ping):
                    self.send(frame)
                if getattr(frame, "fin", False):
                    self.fins.add(frame.stream_id)
                async with self.changed:
                    self.changed.notify_all()
            if not (data := await reader.read(65536)):
                return

    def send(self, frame) -> None:
        self.writer.write(self.frames.encode(frame))

    def write(self, sid: int, data: bytes, fin: bool = False) -> None:
        self.send(spdy.DataFrame(sid, data, fin))

    async def until(self, predicate, timeout: float = 5):
        async with self.changed:
            return await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    def stream(self, kind: str, **headers) -> int:
        """The id of the stream of that streamtype (and headers)."""
        want = {"streamtype": kind, **headers}
        return next(s.stream_id for s in self.syns if want.items() <= s.headers.items())


def status_exit(code: int) -> bytes:
    return json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "details": {
        "causes": [{"reason": "ExitCode", "message": str(code)}]}}).encode()


def _pipe_with(data: bytes | None):
    """(read end, write end) of a pipe; with data, the write end is filled and closed."""
    r, w = os.pipe()
    if data is not None:
        os.write(w, data)
        os.close(w)
        w = None
    return r, w


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_exec_streams_order_headers_and_exit_code():
    async def script(srv):
        await srv.until(lambda: len(srv.syns) == 4)
        await srv.until(lambda: srv.stream("stdin") in srv.fins)
        srv.write(srv.stream("stdout"), b"out:" + bytes(srv.data[srv.stream("stdin")]), fin=True)
        srv.write(srv.stream("stderr"), b"err", fin=True)
        srv.write(srv.stream("error"), status_exit(3), fin=True)
        await asyncio.sleep(1)

    async def main():
        async with FakeServer(script) as srv:
            result = await remotecommand.run(srv.url, local, stdin=True, tty=False)
            return srv, result
    stdin, _ = _pipe_with(b"typed")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    local = remotecommand.Local(stdin, out_w, err_w)
    srv, result = asyncio.run(main())
    assert result == (3, "")
    assert (_drain(out_r), _drain(err_r)) == (b"out:typed", b"err")
    assert [s.headers for s in srv.syns] == [{"streamtype": t} for t in ("error", "stdin", "stdout", "stderr")]
    ids = [s.stream_id for s in srv.syns]
    assert ids == sorted(ids) and all(i % 2 for i in ids)          # client ids: odd, increasing
    headers = {k.decode(): v.decode() for k, v in srv.requests[0].headers if k != b"x-stream-protocol-version"}
    assert headers["upgrade"] == "SPDY/3.1" and srv.requests[0].method == b"POST"
    for fd in (stdin, out_r, out_w, err_r, err_w):
        os.close(fd)


def _run_exec(script, local, protocol=V4, **kw):
    async def main():
        async with FakeServer(script, protocol) as srv:
            return srv, await remotecommand.run(srv.url, local, **kw)
    return asyncio.run(main())


def _finish(srv, status: bytes = b'{"status":"Success"}') -> None:
    for s in srv.syns:
        if s.headers["streamtype"] in ("stdout", "stderr"):
            srv.write(s.stream_id, b"", fin=True)
    srv.write(srv.stream("error"), status, fin=True)


def test_tty_session_raw_mode_resize_and_restore():
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    seen = {}

    async def script(srv):
        await srv.until(lambda: len(srv.syns) == 4)
        await srv.until(lambda: srv.data[srv.stream("resize")].endswith(b"\n"))
        seen["raw"] = not termios.tcgetattr(slave)[3] & termios.ECHO
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        os.kill(os.getpid(), signal.SIGWINCH)
        await srv.until(lambda: srv.data[srv.stream("resize")].count(b"\n") == 2)
        os.write(master, b"ls\r")
        await srv.until(lambda: srv.data[srv.stream("stdin")] == b"ls\r")
        srv.write(srv.stream("stdout"), b"listing\r\n")
        _finish(srv)
        await asyncio.sleep(1)
    try:
        srv, result = _run_exec(script, remotecommand.Local(slave, slave, slave), stdin=True, tty=True)
        assert result == (0, "")
        assert [s.headers["streamtype"] for s in srv.syns] == ["error", "stdin", "stdout", "resize"]
        assert srv.data[srv.stream("resize")] == b'{"Width":80,"Height":24}\n{"Width":132,"Height":50}\n'
        assert seen["raw"] and termios.tcgetattr(slave) == before
        assert os.read(master, 100) == b"listing\r\n"
    finally:
        os.close(master)
        os.close(slave)


def test_a_signal_ends_a_tty_session_and_restores_the_terminal():
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)

    async def script(srv):
        await srv.until(lambda: len(srv.syns) == 4)
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(5)
    try:
        _, result = _run_exec(script, remotecommand.Local(slave, slave, slave), stdin=True, tty=True)
        assert result == (128 + signal.SIGTERM, "")
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_v2_has_no_resize_stream_and_v3_errors_are_text():
    master, slave = os.openpty()

    async def script(srv):
        await srv.until(lambda: len(srv.syns) == 3)
        _finish(srv, b"command not found")
        await asyncio.sleep(1)
    try:
        srv, result = _run_exec(script, remotecommand.Local(slave, slave, slave), "v2.channel.k8s.io",
                                stdin=True, tty=True)
        assert [s.headers["streamtype"] for s in srv.syns] == ["error", "stdin", "stdout"]
        assert result == (1, "command not found")
    finally:
        os.close(master)
        os.close(slave)


def test_without_stdin_there_is_no_stdin_stream():
    async def script(srv):
        await srv.until(lambda: len(srv.syns) == 3)
        srv.write(srv.stream("stdout"), b"hello")
        _finish(srv)
        await asyncio.sleep(1)
    out_r, out_w = os.pipe()
    try:
        srv, result = _run_exec(script, remotecommand.Local(0, out_w, 2), stdin=False, tty=False)
        assert [s.headers["streamtype"] for s in srv.syns] == ["error", "stdout", "stderr"]
        assert result == (0, "") and _drain(out_r) == b"hello"
    finally:
        os.close(out_r)
        os.close(out_w)


def test_a_refused_upgrade_shows_the_servers_reason():
    async def main():
        async with FakeServer(refuse=(404, b"token not found or expired\n")) as srv:
            with pytest.raises(UpgradeError) as err:
                await remotecommand.run(srv.url, remotecommand.Local(), stdin=False, tty=False)
            return err.value
    err = asyncio.run(main())
    assert err.status == 404 and str(err) == "upgrade refused: 404 Not Found: token not found or expired"


def test_port_forward_pairs_streams_by_request_id():
    out, err = io.StringIO(), io.StringIO()

    async def script(srv):
        for n, rid in ((2, "0"), (4, "1")):
            await srv.until(lambda: len(srv.syns) == n)
            error, data = srv.stream("error", requestid=rid), srv.stream("data", requestid=rid)
            await srv.until(lambda: error in srv.fins)         # the client closed its side at once
            await srv.until(lambda: srv.data[data].endswith(b"\n"))
            srv.write(data, b"echo:" + bytes(srv.data[data]), fin=True)
            srv.write(error, b"dial failed" if rid == "1" else b"", fin=True)
        await asyncio.sleep(30)

    async def client(port: int, line: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(line)
        answer = await reader.read()
        writer.close()
        return answer

    async def main():
        async with FakeServer(script, "portforward.k8s.io") as srv:
            srv.url = srv.url.replace("/exec/", "/portforward/")
            forwarding = asyncio.create_task(portforward.run(srv.url, [PortSpec(0, 80)], out, err))
            while "Forwarding from 127.0.0.1:" not in out.getvalue():
                await asyncio.sleep(0.05)
            port = int(out.getvalue().split("127.0.0.1:")[1].split()[0])
            first = await client(port, b"one\n")
            second = await client(port, b"two\n")
            os.kill(os.getpid(), signal.SIGTERM)
            return srv, first, second, await forwarding
    srv, first, second, result = asyncio.run(main())
    assert (first, second, result) == (b"echo:one\n", b"echo:two\n", (0, ""))
    assert [s.headers for s in srv.syns] == [
        {"streamtype": t, "port": "80", "requestid": r} for r in ("0", "1") for t in ("error", "data")]
    assert [v.decode() for k, v in srv.requests[0].headers if k == b"x-stream-protocol-version"] == [
        "portforward.k8s.io"]
    assert "Handling connection for" in out.getvalue()
    assert "an error occurred forwarding" in err.getvalue() and "dial failed" in err.getvalue()


# --- the verbs ---

def test_streaming_verbs_parse_like_crictl():
    p = parser()
    o = p.parse_args(["exec", "-it", "cid", "sh", "-c", "echo hi"])
    assert (o.interactive, o.tty, o.sync, o.id, o.cmd) == (True, True, False, "cid", ["sh", "-c", "echo hi"])
    o = p.parse_args(["attach", "-it", "cid"])
    assert (o.stdin, o.tty, o.id) == (True, True, "cid")
    o = p.parse_args(["port-forward", "pod", "8080:80", ":81"])
    assert (o.pod_id, o.ports) == ("pod", ["8080:80", ":81"])


class _Unimplemented(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNIMPLEMENTED


class _NoStreamingRuntime:
    """A client whose runtime answers ExecSync but not Exec."""

    def __init__(self) -> None:
        self.runtime = types.SimpleNamespace(Exec="Exec", ExecSync="ExecSync")
        self.calls = []

    def call(self, method, request, timeout=None):
        self.calls.append(method)
        if method == "Exec":
            raise _Unimplemented()
        return api.ExecSyncResponse(stdout=b"sync out", exit_code=4)


def test_plain_exec_falls_back_to_exec_sync_without_streaming(capfdbinary):
    c = _NoStreamingRuntime()
    assert streaming.exec_(c, parser().parse_args(["exec", "cid", "true"])) == 4
    assert c.calls == ["Exec", "ExecSync"] and capfdbinary.readouterr().out == b"sync out"
    c = _NoStreamingRuntime()
    with pytest.raises(grpc.RpcError):                 # -i cannot be done synchronously
        streaming.exec_(c, parser().parse_args(["exec", "-i", "cid", "cat"]))


def test_tty_needs_stdin_and_a_terminal(capsys):
    c = _NoStreamingRuntime()
    assert streaming.exec_(c, parser().parse_args(["exec", "-t", "cid", "sh"])) == 1
    assert streaming.attach(c, parser().parse_args(["attach", "-t", "cid"])) == 1
    assert c.calls == []                               # refused before any RPC
    assert "-t needs -i" in capsys.readouterr().err
