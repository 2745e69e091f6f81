"""cni/rtnl.py's hand-written rtnetlink: attribute padding, link decoding, error answers."""
from __future__ import annotations

import errno
import struct

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from cni import rtnl


class FakeSocket:
    """Answers every send with the canned datagrams, rewritten to the request's seq."""

    def __init__(self, *answers: tuple[int, bytes]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []
        self._out: list[bytes] = []

    def fileno(self) -> int:
        return 0  # only registered with the poller, which the tests replace

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        seq = struct.unpack_from("=I", data, 8)[0]
        stale = rtnl._HDR.pack(rtnl._HDR.size + 4, rtnl._NLMSG_ERROR, 0, seq + 1000, 0) + struct.pack("=i", 0)
        msgs = [rtnl._HDR.pack(rtnl._HDR.size + len(body), kind, 0, seq, 0) + body for kind, body in self.answers]
        self._out = [stale + b"".join(msgs)]
        return len(data)

    def recv(self, size: int) -> bytes:
        return self._out.pop(0)

    def close(self) -> None:
        pass


def _ack(code: int = 0) -> tuple[int, bytes]:
    return rtnl._NLMSG_ERROR, struct.pack("=i", -code) + b"\0" * 16


def _link_body() -> bytes:
    info = rtnl._attr(rtnl._IFLA_INFO_KIND, b"veth\0")
    return (rtnl._IFINFO.pack(0, 1, 7, 0x1003, 0) + rtnl._attr(rtnl._IFLA_IFNAME, b"pw0123456789ab\0")
            + rtnl._attr(rtnl._IFLA_ADDRESS, bytes([2, 0, 0, 0, 0, 0x1f]))
            + rtnl._attr(rtnl._IFLA_LINK, struct.pack("=I", 3)) + rtnl._attr(rtnl._IFLA_LINKINFO, info)
            + rtnl._attr(rtnl._IFLA_IFALIAS, b"podwire:n/c/eth0"))


@pytest.fixture(autouse=True)
def _no_poll(monkeypatch):
    class Poll:
        def register(self, *args): pass
        def poll(self, *args): return [(0, 1)]
    monkeypatch.setattr(rtnl.select, "poll", Poll)


def test_attributes_are_padded_to_four_bytes():
    assert rtnl._attr(3, b"abcde") == struct.pack("=HH", 9, 3) + b"abcde" + b"\0\0\0"
    assert list(rtnl._attrs(rtnl._attr(3, b"abcde") + rtnl._attr(4, b"xy"))) == [(3, b"abcde"), (4, b"xy")]


def test_a_link_reads_like_pyroute2s_message():
    link = rtnl.Rtnl(FakeSocket((rtnl._RTM_NEWLINK, _link_body()), _ack())).get_link(name="pw0123456789ab")
    assert link["index"] == 7 and link["flags"] == 0x1003
    assert link.get("IFLA_IFNAME") == "pw0123456789ab" and link.get("IFLA_ADDRESS") == "02:00:00:00:00:1f"
    assert link.get("IFLA_LINK") == 3 and link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) == "veth"
    assert link.get("IFLA_IFALIAS") == "podwire:n/c/eth0" and link.get("IFLA_MASTER") is None


def test_a_refusal_is_pyroute2s_netlink_error_with_the_errno():
    with pytest.raises(NetlinkError) as caught:
        rtnl.Rtnl(FakeSocket(_ack(errno.ENODEV))).get_link(name="nope")
    assert caught.value.code == errno.ENODEV


def test_set_link_sends_one_request_with_what_changes():
    sock = FakeSocket(_ack())
    rtnl.Rtnl(sock).set_link(9, up=False, ifname="pwx0123456789ab", master=0)
    (request,) = sock.sent
    _, kind, flags, _, _ = rtnl._HDR.unpack_from(request)
    assert kind == rtnl._RTM_SETLINK and flags & rtnl._F_ACK
    _, _, index, ifi_flags, change = rtnl._IFINFO.unpack_from(request, rtnl._HDR.size)
    assert (index, ifi_flags, change) == (9, 0, 1)  # down
    attrs = dict(rtnl._attrs(request[rtnl._HDR.size + rtnl._IFINFO.size:]))
    assert attrs == {rtnl._IFLA_IFNAME: b"pwx0123456789ab\0", rtnl._IFLA_MASTER: struct.pack("=I", 0)}
