"""The streaming server's HTTP side, WebSocket framing and the remotecommand protocol, with a
fake exec back end: no containers, no root.  Clients are independent of the server code:
raw sockets, websocket-client, and podwire-ctl's SPDY upgrade + the SPDY session (client role)."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import urllib.parse

import pytest
import websocket

from cri.streaming import exec as exec_backend
from cri.streaming.remotecommand import Streams
from cri.streaming.requests import ExecRequest, PortForwardRequest
from cri.streaming.server import StreamingServer
from cri.streaming.tokens import TokenCache


def _exec_request(cmd=("sh", "-c", "exit 7"), **flags) -> tuple[ExecRequest, Streams]:
    opts = {"stdin": False, "stdout": True, "stderr": True, "tty": False, **flags}
    req = ExecRequest(container_id="c1", cmd=tuple(cmd), process={}, runc="runc", runc_root="/x",
                      scratch_dir="/tmp", **opts)
    return req, Streams(**opts)


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def server(clock):
    srv = StreamingServer("127.0.0.1", 0, tokens=TokenCache(clock=clock), creation_timeout=5)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def backend(monkeypatch):
    """A fake exec: echoes stdin to stdout (when it has one), writes "out"/"err", exits with the
    code in its command's last word."""
    calls = []

    async def run_exec(req, io):
        calls.append((req, io))
        if io.stdout:
            await io.stdout.write(b"out")
        if io.stderr:
            await io.stderr.write(b"err")
        if io.stdin:
            while data := await io.stdin.read():
                await io.stdout.write(data)
        return int(req.cmd[-1].split()[-1])
    monkeypatch.setattr(exec_backend, "run_exec", run_exec)
    return calls


def _http(url: str, head: bytes) -> bytes:
    """Send raw bytes to the server; everything it answers until it closes."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(head)
        s.shutdown(socket.SHUT_WR)          # an upgraded session then ends at once
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _spdy_request(url: str, *versions: str) -> bytes:
    path = urllib.parse.urlsplit(url).path
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Connection: Upgrade", "Upgrade: SPDY/3.1",
             *(f"X-Stream-Protocol-Version: {v}" for v in versions), "", ""]
    return "\r\n".join(lines).encode()


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _header_values(response: bytes, name: str) -> list[str]:
    head = response.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return [line.split(":", 1)[1].strip() for line in head if line.split(":", 1)[0].lower() == name.lower()]


# -- HTTP: routes, tokens, negotiation ------------------------------------------------------------

def test_urls_name_the_bound_port_and_bracket_ipv6():
    srv = StreamingServer("::", 1234)
    assert srv.url("exec", "tok") == "http://[::1]:1234/exec/tok"
    srv = StreamingServer("fd00::5", 1)
    assert srv.url("attach", "t") == "http://[fd00::5]:1/attach/t"
    assert StreamingServer("0.0.0.0", 9).url("portforward", "t") == "http://127.0.0.1:9/portforward/t"


def test_unknown_path_and_token_are_404(server):
    base = server.base_url
    assert _status(_http(base + "/nothing", _spdy_request(base + "/nothing", "v4.channel.k8s.io"))) == 404
    url = base + "/exec/never-issued"
    assert _status(_http(url, _spdy_request(url, "v4.channel.k8s.io"))) == 404


def test_a_used_token_is_404(server, backend):
    url = server.issue(*_exec_request())
    first = _http(url, _spdy_request(url, "v4.channel.k8s.io"))
    assert _status(first) == 101
    assert _status(_http(url, _spdy_request(url, "v4.channel.k8s.io"))) == 404


def test_an_expired_token_is_404(server, clock):
    url = server.issue(*_exec_request())
    clock.now += 61
    assert _status(_http(url, _spdy_request(url, "v4.channel.k8s.io"))) == 404


def test_a_token_for_another_kind_is_404(server):
    url = server.issue(*_exec_request()).replace("/exec/", "/attach/")
    assert _status(_http(url, _spdy_request(url, "v4.channel.k8s.io"))) == 404


def test_malformed_request_is_400_and_the_server_keeps_serving(server):
    reply = _http(server.base_url, b"GARBAGE\x00\x01 nonsense\r\n\r\n")
    assert _status(reply) == 400
    reply = _http(server.base_url, b"GET /exec/x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
    assert _status(reply) == 400
    url = server.issue(*_exec_request())
    assert _status(_http(url, _spdy_request(url, "v4.channel.k8s.io"))) == 101


def test_no_upgrade_is_400(server):
    url = server.issue(*_exec_request())
    assert _status(_http(url, f"GET {urllib.parse.urlsplit(url).path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())) == 400


def test_spdy_without_a_version_is_400(server):
    url = server.issue(*_exec_request())
    assert _status(_http(url, _spdy_request(url))) == 400


def test_spdy_without_a_common_version_is_403_listing_ours(server):
    url = server.issue(*_exec_request())
    reply = _http(url, _spdy_request(url, "v5.channel.k8s.io", "v9.channel.k8s.io"))
    assert _status(reply) == 403
    assert _header_values(reply, "X-Accepted-Stream-Protocol-Versions") == [
        "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
    pf = server.issue(PortForwardRequest("pod", "", (80,)))
    reply = _http(pf, _spdy_request(pf, "v4.channel.k8s.io"))
    assert _status(reply) == 403
    assert _header_values(reply, "X-Accepted-Stream-Protocol-Versions") == ["portforward.k8s.io"]


def test_spdy_101_names_the_first_version_the_client_offers_that_we_support(server):
    url = server.issue(*_exec_request())
    reply = _http(url, _spdy_request(url, "v5.channel.k8s.io", "v3.channel.k8s.io", "v4.channel.k8s.io"))
    assert _status(reply) == 101
    assert _header_values(reply, "X-Stream-Protocol-Version") == ["v3.channel.k8s.io"]
    assert _header_values(reply, "Upgrade") == ["SPDY/3.1"]


def test_websocket_without_a_common_protocol_is_403(server):
    url = server.issue(*_exec_request())
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(_ws(url), subprotocols=["v9.channel.k8s.io"], timeout=10)
    assert err.value.status_code == 403


def _ws(url: str) -> str:
    return "ws" + url[len("http"):]


# -- WebSocket remotecommand with a fake back end --------------------------------------------------

def _ws_session(url: str, protocol: str, send=(), timeout: float = 10):
    """Run a session: send the given (channel, payload) messages, collect until the server
    closes.  (negotiated protocol, [(channel, payload)] in order)."""
    ws = websocket.create_connection(_ws(url), subprotocols=[protocol], timeout=timeout)
    try:
        for message in send:
            ws.send_binary(bytes(message)) if isinstance(message, (bytes, bytearray)) else ws.send(message)
        got = []
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return ws.subprotocol, got
            if opcode in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT):
                got.append(data)
    finally:
        ws.close()


def _by_channel(messages) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for m in messages:
        if m[0] != 255:
            out[m[0]] = out.get(m[0], b"") + m[1:]
    return out


def test_v4_exec_success_writes_the_status_object(server, backend):
    req, streams = _exec_request(cmd=("true", "0"))
    protocol, got = _ws_session(server.issue(req, streams), "v4.channel.k8s.io")
    assert protocol == "v4.channel.k8s.io"
    assert got[0] == b"\x01"                      # "connection established": empty, lowest channel
    chans = _by_channel(got)
    assert chans[1] == b"out" and chans[2] == b"err"
    assert chans[3] == b'{"metadata":{},"status":"Success"}'


def test_v4_exec_non_zero_exit_is_a_failure_status_with_the_code(server, backend):
    req, streams = _exec_request(cmd=("sh", "-c", "exit 7"))
    _, got = _ws_session(server.issue(req, streams), "v4.channel.k8s.io")
    status = json.loads(_by_channel(got)[3])
    assert status == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c exit 7], exit code 7",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}
    assert list(json.loads(_by_channel(got)[3])) == ["metadata", "status", "message", "reason", "details"]


def test_back_end_errors_are_internal_error_status(server, monkeypatch):
    from cri.streaming import StreamError

    async def failing(req, io):
        raise StreamError("runc said no")
    monkeypatch.setattr(exec_backend, "run_exec", failing)
    _, got = _ws_session(server.issue(*_exec_request()), "v4.channel.k8s.io")
    status = json.loads(_by_channel(got)[3])
    assert (status["reason"], status["code"]) == ("InternalError", 500)
    assert status["message"] == "Internal error occurred: error executing command in container: runc said no"


def test_v5_close_signal_ends_stdin_and_outputs(server, backend):
    req, streams = _exec_request(cmd=("cat", "0"), stdin=True)
    protocol, got = _ws_session(server.issue(req, streams), "v5.channel.k8s.io",
                                send=[b"\x00hello ", b"\x00world", bytes([255, 0])])
    assert protocol == "v5.channel.k8s.io"
    chans = _by_channel(got)
    assert chans[1] == b"outhello world"
    assert json.loads(chans[3])["status"] == "Success"
    closes = [m[1] for m in got if m[0] == 255]
    assert sorted(closes) == [1, 2, 3]            # stdout, stderr, error half-closed


def test_base64_framing_both_ways(server, backend):
    req, streams = _exec_request(cmd=("cat", "3"), stdin=True, stderr=False)
    payload = bytes(range(256)) * 3
    text = "0" + base64.b64encode(payload).decode()
    ws = websocket.create_connection(_ws(server.issue(req, streams)),
                                     subprotocols=["v4.base64.channel.k8s.io"], timeout=10)
    try:
        ws.send(text)
        got = b""
        while len(got) < 3 + len(payload):
            message = ws.recv()
            assert isinstance(message, str) and message[0] == "1"
            got += base64.b64decode(message[1:])
        assert got == b"out" + payload
    finally:
        ws.close()


def test_v1_websocket_writes_plain_text_failures(server, backend):
    req, streams = _exec_request(cmd=("x", "3"))
    _, got = _ws_session(server.issue(req, streams), "channel.k8s.io")
    assert _by_channel(got)[3].startswith(b"command terminated with non-zero exit code")


def test_resize_events_reach_the_back_end(server, monkeypatch):
    sizes = []

    async def run_exec(req, io):
        sizes.append(await io.resize.get())
        sizes.append(await io.resize.get())
        return 0
    monkeypatch.setattr(exec_backend, "run_exec", run_exec)
    req, streams = _exec_request(cmd=("sh", "0"), tty=True, stderr=False)
    _ws_session(server.issue(req, streams), "v4.channel.k8s.io",
                send=[b'\x04{"Width":80,"Height":24}\n{"Width":1', b'\x0400,"Height":50}\n'])
    assert sizes == [(80, 24), (100, 50)]


# -- SPDY remotecommand, client role of the SPDY session ------------------------------------------

def test_spdy_exec_session(server, backend):
    from cri.ctl.stream.upgrade import REMOTECOMMAND, upgrade
    from cri.streaming.spdy_session import SpdySession

    async def client(url):
        up = await upgrade(url, REMOTECOMMAND)
        session = SpdySession(up.reader, up.writer, server=False, initial=up.initial)
        running = asyncio.create_task(session.run())
        streams = {}
        for kind in ("error", "stdin", "stdout", "stderr"):
            streams[kind] = await session.open_stream({"streamtype": kind})
        await streams["error"].close()
        await streams["stdin"].write(b"typed")
        await streams["stdin"].close()

        async def read_all(stream):
            data = b""
            while chunk := await stream.read():
                data += chunk
            return data
        out, err, status = await asyncio.gather(*(read_all(streams[k]) for k in ("stdout", "stderr", "error")))
        await session.close()
        await running
        return up.protocol, out, err, status
    req, streams = _exec_request(cmd=("cat", "5"), stdin=True)
    protocol, out, err, status = asyncio.run(asyncio.wait_for(client(server.issue(req, streams)), 20))
    assert (protocol, out, err) == ("v4.channel.k8s.io", b"outtyped", b"err")
    assert json.loads(status)["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


def test_a_client_that_leaves_cancels_the_back_end(server, monkeypatch):
    import threading
    cancelled = threading.Event()

    async def run_exec(req, io):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
    monkeypatch.setattr(exec_backend, "run_exec", run_exec)
    url = server.issue(*_exec_request())
    ws = websocket.create_connection(_ws(url), subprotocols=["v4.channel.k8s.io"], timeout=10)
    ws.recv()
    ws.sock.close()                                 # no close frame: the connection just ends
    assert cancelled.wait(10)


def test_stop_ends_open_sessions(clock, monkeypatch):
    import threading
    cancelled = threading.Event()

    async def run_exec(req, io):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
    monkeypatch.setattr(exec_backend, "run_exec", run_exec)
    srv = StreamingServer("127.0.0.1", 0)
    srv.start()
    ws = websocket.create_connection(_ws(srv.issue(*_exec_request())), subprotocols=["v4.channel.k8s.io"],
                                     timeout=10)
    ws.recv()
    srv.stop()
    assert cancelled.wait(5)
    ws.close()


def test_idle_sessions_are_closed(monkeypatch):
    import threading
    cancelled = threading.Event()

    async def run_exec(req, io):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
    monkeypatch.setattr(exec_backend, "run_exec", run_exec)
    srv = StreamingServer("127.0.0.1", 0, idle_timeout=0.5)
    srv.start()
    try:
        ws = websocket.create_connection(_ws(srv.issue(*_exec_request())), subprotocols=["v4.channel.k8s.io"],
                                         timeout=10)
        ws.recv()
        assert cancelled.wait(5)
        ws.close()
    finally:
        srv.stop()
