"""Hand-built Ethernet frames for BPF_PROG_TEST_RUN tests (no scapy on the node)."""
from __future__ import annotations

import ipaddress
import struct

ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
PROTO = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPv6": 58}
TCP_SYN, TCP_ACK, TCP_FIN, TCP_RST = 0x02, 0x10, 0x01, 0x04


def l4(proto: str, sport: int = 40000, dport: int = 80, flags: int = TCP_SYN) -> bytes:
    if proto == "TCP":
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
    if proto == "UDP":
        return struct.pack("!HHHH", sport, dport, 12, 0) + b"ping"
    if proto == "SCTP":  # common header + an INIT chunk
        return struct.pack("!HHII", sport, dport, 0, 0) + struct.pack("!BBHIIHHI", 1, 0, 20, 1, 65535, 1, 1, 1)
    raise ValueError(proto)


def icmp(family: int, type_: int, ident: int = 7, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHHH", type_, 0, 0, ident, 1) + payload


def ip(src: str, dst: str, proto: int, payload: bytes, frag_offset: int = 0, ext: bytes = b"",
       ext_proto: int = 0) -> bytes:
    """An IP header (+payload); IPv6 may carry one extension header ``ext`` of type ``ext_proto``."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag_offset, 64, proto, 0,
                           s.packed, d.packed) + payload
    first = ext_proto if ext else proto
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(payload), first, 64, s.packed, d.packed) \
        + ext + payload


def frame(src: str, dst: str, proto: str = "TCP", sport: int = 40000, dport: int = 80, **kw) -> bytes:
    version = ipaddress.ip_address(src).version
    ethertype = b"\x08\x00" if version == 4 else b"\x86\xdd"
    return ETH + ethertype + ip(src, dst, PROTO[proto], l4(proto, sport, dport, kw.pop("flags", TCP_SYN)), **kw)


def icmp_frame(src: str, dst: str, type_: int, ident: int = 7, inner: bytes = b"") -> bytes:
    version = ipaddress.ip_address(src).version
    ethertype = b"\x08\x00" if version == 4 else b"\x86\xdd"
    proto = PROTO["ICMP"] if version == 4 else PROTO["ICMPv6"]
    return ETH + ethertype + ip(src, dst, proto, icmp(version, type_, ident, inner))


def fragment6(src: str, dst: str, proto: str, offset: int) -> bytes:
    """IPv6 with a fragment extension header (offset in 8-byte units)."""
    ext = struct.pack("!BBHI", PROTO[proto], 0, offset << 3, 1)
    return ETH + b"\x86\xdd" + ip(src, dst, PROTO[proto], l4(proto) if offset == 0 else b"x" * 8,
                                  ext=ext, ext_proto=44)


def arp() -> bytes:
    return ETH + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20
