"""ctypes mirrors of the BPF map keys and values, and compiler entries <-> bytes.

Every structure here must be in sync with its C struct in
netpol/bpf/lib/maps.h (field order, sizes, byte order).  Two tests hold them to it
by layout, field by field: tests/unit/test_netpol_struct_layout.py compiles maps.h
and compares every field's offset and size and each struct's size and alignment;
the root test tests/netns/test_netpol_bpf.py compares them with bcc's types of the
loaded program.
"""
from __future__ import annotations

import ctypes as ct
import ipaddress
import socket

from ..compiler.entries import L4_BITS, EndpointEntry, IpcacheEntry, PolicyKey
from ..model import IPNetwork
from ..services import Frontend

U8, U16, U32, U64 = ct.c_uint8, ct.c_uint16, ct.c_uint32, ct.c_uint64


class EndpointInfo(ct.Structure):  # must be in sync with struct endpoint_info
    _fields_ = [("ep_id", U32), ("flags", U32), ("subject", U32)]


class IpcacheKey(ct.Structure):  # must be in sync with struct ipcache_key
    _fields_ = [("prefixlen", U32), ("addr", U8 * 16)]


class IpcacheValue(ct.Structure):  # must be in sync with struct ipcache_value
    _fields_ = [("identity", U32), ("ep_id", U32)]


class PolicyKeyC(ct.Structure):  # must be in sync with struct policy_key (big-endian data)
    _fields_ = [("prefixlen", U32), ("subject", U32), ("dir", U8), ("pad1", U8 * 3),
                ("identity", U32), ("proto", U8), ("pad2", U8), ("dport", U16)]


class PolicyValue(ct.Structure):  # must be in sync with struct policy_value
    _fields_ = [("cookie", U32)]


class CtKey(ct.Structure):  # must be in sync with struct ct_key
    _fields_ = [("saddr", U8 * 16), ("daddr", U8 * 16), ("sport", U16), ("dport", U16),
                ("ep_id", U32), ("proto", U8), ("dir", U8), ("pad", U16)]


class CtValue(ct.Structure):  # must be in sync with struct ct_value
    _fields_ = [("last_seen", U64), ("flags", U32), ("generation", U32), ("cookie", U32), ("pad", U32)]


class Config(ct.Structure):  # must be in sync with struct config
    _fields_ = [("generation", U64)]


class Counter(ct.Structure):  # must be in sync with struct counter
    _fields_ = [("packets", U64), ("bytes", U64)]


class EpCounters(ct.Structure):  # must be in sync with struct ep_counters
    _fields_ = [("allowed_packets", U64), ("allowed_bytes", U64),
                ("denied_packets", U64), ("denied_bytes", U64)]


class EventBudget(ct.Structure):  # must be in sync with struct event_budget
    _fields_ = [("window_start", U64), ("sent", U64), ("suppressed", U64)]


class DropEventC(ct.Structure):  # must be in sync with struct drop_event
    _fields_ = [("ts_ns", U64), ("saddr", U8 * 16), ("daddr", U8 * 16), ("ep_id", U32),
                ("ifindex", U32), ("identity", U32), ("sport", U16), ("dport", U16),
                ("proto", U8), ("dir", U8), ("reason", U8), ("family", U8), ("pad", U32)]


class EpRef(ct.Structure):  # must be in sync with struct ep_ref
    _fields_ = [("ifindex", U32), ("flags", U32), ("subject", U32)]


class ServiceKey(ct.Structure):  # must be in sync with struct service_key
    _fields_ = [("addr", U8 * 16), ("port", U16), ("proto", U8), ("pad", U8)]


class ServiceValue(ct.Structure):  # must be in sync with struct service_value
    _fields_ = [("flags", U32)]


class ServiceConfig(ct.Structure):  # must be in sync with struct service_config
    _fields_ = [("mark", U32), ("deferred", U32)]


MIRRORS = {  # C struct name -> mirror, for the layout checks
    "endpoint_info": EndpointInfo, "ipcache_key": IpcacheKey, "ipcache_value": IpcacheValue,
    "policy_key": PolicyKeyC, "policy_value": PolicyValue, "ct_key": CtKey, "ct_value": CtValue, "config": Config,
    "counter": Counter, "ep_counters": EpCounters, "event_budget": EventBudget, "drop_event": DropEventC,
    "ep_ref": EpRef, "service_key": ServiceKey, "service_value": ServiceValue, "service_config": ServiceConfig,
}

_POLICY_EXACT_BITS = 96  # subject, dir + pad1, identity


def mapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The 16 bytes the datapath uses for an address (IPv4 as ::ffff:a.b.c.d)."""
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def unmapped(raw: bytes, family: int = 0) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip6 = ipaddress.IPv6Address(bytes(raw))
    if family == 4 or (family == 0 and ip6.ipv4_mapped is not None):
        return ip6.ipv4_mapped or ipaddress.IPv4Address(bytes(raw)[12:])
    return ip6


def ipcache_key(net: IPNetwork) -> IpcacheKey:
    key = IpcacheKey(prefixlen=net.prefixlen + (96 if net.version == 4 else 0))
    key.addr[:] = mapped(net.network_address)
    return key


def ipcache_net(key: IpcacheKey) -> IPNetwork:
    raw = bytes(key.addr)
    if raw[:12] == b"\0" * 10 + b"\xff\xff" and key.prefixlen >= 96:
        return ipaddress.ip_network((ipaddress.IPv4Address(raw[12:]), key.prefixlen - 96))
    return ipaddress.ip_network((ipaddress.IPv6Address(raw), key.prefixlen))


def ipcache_value(entry: IpcacheEntry) -> IpcacheValue:
    return IpcacheValue(identity=entry.identity, ep_id=entry.ep_id)


def _trie_prefixlen(l4_bits: int) -> int:
    """protocol is byte 13 of the data, then a zero pad byte, then the port."""
    if l4_bits == 0:
        return _POLICY_EXACT_BITS
    if l4_bits <= 8:
        return _POLICY_EXACT_BITS + l4_bits
    return _POLICY_EXACT_BITS + 16 + (l4_bits - 8)


def _l4_bits(prefixlen: int) -> int:
    extra = prefixlen - _POLICY_EXACT_BITS
    return extra if extra <= 8 else 8 + (extra - 16)


def policy_key(key: PolicyKey) -> PolicyKeyC:
    assert 0 <= key.l4_bits <= L4_BITS
    return PolicyKeyC(prefixlen=_trie_prefixlen(key.l4_bits), subject=socket.htonl(key.subject), dir=key.direction,
                      identity=socket.htonl(key.identity), proto=key.proto, dport=socket.htons(key.port))


def policy_key_of(c: PolicyKeyC) -> PolicyKey:
    return PolicyKey(socket.ntohl(c.subject), c.dir, socket.ntohl(c.identity), c.proto,
                     socket.ntohs(c.dport), _l4_bits(c.prefixlen))


def service_key(frontend: Frontend) -> ServiceKey:
    key = ServiceKey(port=frontend.port, proto=frontend.proto)
    if frontend.addr is not None:  # else all-zero: a NodePort, any address
        key.addr[:] = mapped(frontend.addr)
    return key


def frontend_of(key: ServiceKey) -> Frontend:
    raw = bytes(key.addr)
    return Frontend(None if raw == bytes(16) else unmapped(raw), key.port, key.proto)


def endpoint_info(entry: EndpointEntry) -> EndpointInfo:
    return EndpointInfo(ep_id=entry.ep_id, flags=entry.flags, subject=entry.subject)
