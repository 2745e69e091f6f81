"""podwire-cnid's framing: what the thin client and the daemon exchange."""
from __future__ import annotations

import socket

import pytest

from cni.daemon import wire


def pair():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def test_request_round_trip_keeps_every_byte_of_env_and_stdin():
    env = {b"CNI_COMMAND": b"ADD", b"PATH": b"/usr/bin", b"ODD": b"\xff\xfe=x", b"EMPTY": b""}
    stdin = b'{"cniVersion": "1.1.0"}' * 1000
    a, b = pair()
    with a, b:
        a.sendall(wire.encode_request(b"podwire", wire.encode_env(env), stdin, 2500))
        plugin, got_env, got_stdin, timeout = wire.recv_request(b)
    assert (plugin, got_stdin, timeout) == ("podwire", stdin, 2500)
    assert {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape")
            for k, v in got_env.items()} == env


def test_answer_round_trip():
    a, b = pair()
    with a, b:
        a.sendall(wire.encode_answer(wire.ANSWERED, 1, b'{"code": 7}', b"trace"))
        assert wire.recv_answer(b) == (wire.ANSWERED, 1, b'{"code": 7}', b"trace")


def test_a_peer_closing_mid_frame_is_eof():
    a, b = pair()
    with b:
        a.sendall(wire.encode_request(b"podwire", b"", b"x" * 100, 0)[:30])
        a.close()
        with pytest.raises(EOFError):
            wire.recv_request(b)


@pytest.mark.parametrize("data", [b"HTTP/1.1 GET /", wire.REQUEST + (wire.MAX_FIELD + 1).to_bytes(4, "big")])
def test_garbage_and_oversized_fields_are_rejected(data):
    a, b = pair()
    with a, b:
        a.sendall(data)
        with pytest.raises(ValueError):
            wire.recv_request(b)


def test_the_wire_module_imports_nothing():
    """It is on every CNI invocation's start-up path."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(wire))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
