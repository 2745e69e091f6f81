"""The BPF programs on crafted packets (BPF_PROG_TEST_RUN): every parse path and verdict.

The maps are private to this module (a unique pin dir), the endpoints are the two
ends of an unconnected veth pair; all are removed afterwards.  SCTP is exercised here on real SCTP
headers (this kernel has no SCTP sockets; the netns matrix uses raw sockets).
"""
from __future__ import annotations

import ctypes as ct
import ipaddress
import itertools
import os
import subprocess
import time
import uuid

import pytest

from conftest import needs_root
from netpol.compiler import (DIR_EGRESS, DIR_INGRESS, Attachment, Desired, EndpointEntry, IdentityAllocator,
                             IpcacheEntry, PolicyKey, compile_world)
from netpol.compiler.simulate import Simulator
from netpol.datapath import maps as m
from netpol.datapath import reasons, sync
from netpol.datapath.testrun import TC_ACT_OK, TC_ACT_SHOT, run
from netpol.evaluator import Flow
from netpolpackets import TCP_ACK, arp, fragment6, frame, icmp_frame, ip, ETH
from netpoltest import CASES, KEYS, fake_ips, world

pytestmark = needs_root

A4, B4, X4 = "10.77.0.1", "10.77.0.2", "192.0.2.50"
A6, B6 = "fd77::1", "fd77::2"
_ports = itertools.count(20000)


@pytest.fixture(scope="module")
def bpf():
    from netpol.datapath.events import DropReader
    from netpol.datapath.loader import Programs, remove_pins

    pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    links = [f"pwt{uuid.uuid4().hex[:8]}" for _ in range(2)]
    programs = None
    try:
        # Two ifindexes the test-run skbs can claim (no dummy driver here: a veth pair).
        subprocess.run(["ip", "link", "add", links[0], "type", "veth", "peer", "name", links[1]], check=True)
        idx = [int(open(f"/sys/class/net/{n}/ifindex").read()) for n in links]
        programs = Programs(pin_dir)
        events: list = []
        reader = DropReader(programs, events.append).start()
        yield Harness(programs, idx[0], idx[1], events)
        reader.stop()
    finally:
        if programs is not None:
            programs.close()
        remove_pins(pin_dir)
        subprocess.run(["ip", "link", "del", links[0]], check=False, capture_output=True)


class Harness:
    def __init__(self, programs, a: int, b: int, events: list):
        self.p, self.a, self.b, self.events = programs, a, b, events
        self.current = Desired()

    def load(self, desired: Desired) -> None:
        sync.apply(self.p, self.current, desired)
        sync.bump_generation(self.p)  # as KernelDatapath.sync does: cached verdicts are stale now

    def basic(self, a_flags=0, b_flags=0, policy=None) -> None:
        """A (ep 1, subject 1) and B (ep 2, subject 2) with v4+v6 addresses; X is outside."""
        ipc = {ipaddress.ip_network(n): e for n, e in (
            (A4 + "/32", IpcacheEntry(300, 1)), (B4 + "/32", IpcacheEntry(301, 2)),
            (A6 + "/128", IpcacheEntry(302, 1)), (B6 + "/128", IpcacheEntry(303, 2)),
            ("192.0.2.0/24", IpcacheEntry(400, 0)))}
        self.load(Desired({self.a: EndpointEntry(1, a_flags, 1), self.b: EndpointEntry(2, b_flags, 2)}, ipc,
                          dict(policy or {})))

    def to_pod(self, ifindex: int, data: bytes, ingress_ifindex: int = 999) -> int:
        return self._run("to_pod", ifindex, data, ingress_ifindex)

    def from_pod(self, ifindex: int, data: bytes) -> int:
        return self._run("from_pod", ifindex, data, ifindex)

    def last_drop(self, timeout: float = 2.0):
        """The newest drop event of the packet just sent (events arrive asynchronously,
        so older ones from earlier packets are skipped by their kernel timestamp)."""
        since = self._since
        deadline = time.time() + timeout
        while time.time() < deadline:
            fresh = [e for e in self.events if e.monotonic_ns >= since]
            if fresh:
                return fresh[-1]
            time.sleep(0.01)
        return None

    _since = 0

    def _run(self, prog: str, ifindex: int, data: bytes, ingress_ifindex: int) -> int:
        self._since = time.monotonic_ns()
        return run(self.p.fd(prog), data, ifindex, ingress_ifindex)


def port() -> int:
    return next(_ports)


def allow(ep, direction, identity, proto=0, dport=0, bits=0, cookie=1):
    return {PolicyKey(ep, direction, identity, proto, dport, bits): cookie}


def _layout(t) -> tuple:
    """(name, [(field, offset, size)...], sizeof) of a ctypes type; bcc's own implicit-padding
    fields (__pad_*) left out."""
    fields = [(f, getattr(t, f).offset, getattr(t, f).size) for f, *_ in getattr(t, "_fields_", [])
              if not f.startswith("__pad")]
    return t.__name__, fields, ct.sizeof(t)


@pytest.fixture(scope="module")
def bcc_view():
    """bcc's own module of the sources (the agent loads a stored object without bcc)."""
    from netpol.datapath.compile import bcc_module
    from netpol.datapath.loader import remove_pins

    pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    os.makedirs(pin_dir)
    module = None
    try:
        module, _ = bcc_module(pin_dir)
        yield module
    finally:
        if module is not None:
            module.cleanup()
        remove_pins(pin_dir)


def test_ctypes_mirrors_match_the_compiled_structs(bcc_view):
    """bcc's Key/Leaf types come from clang's BPF-target view of the compiled program: each
    mirror must have their field offsets and sizes, not only their total size.  drop_event
    goes through the ring buffer, which bcc leaves untyped: the unit tier checks it with cc
    (tests/unit/test_netpol_struct_layout.py), as it does every struct."""
    seen = set()
    for table in ("pw_endpoints", "pw_ipcache", "pw_policy", "pw_ct", "pw_config", "pw_metrics", "pw_ep_stats",
                  "pw_policy_stats", "pw_event_budget", "pw_ep_ids", "pw_services", "pw_service_config"):
        t = bcc_view[table.encode()]
        for compiled in (t.Key, getattr(t.Leaf, "_type_", t.Leaf) if "PerCpu" in type(t).__name__ else t.Leaf):
            if not hasattr(compiled, "_fields_"):
                assert ct.sizeof(compiled) == ct.sizeof(ct.c_uint32), (table, compiled)  # the u32 index keys
                continue
            mirror = m.MIRRORS[compiled.__name__]
            assert _layout(mirror)[1:] == _layout(compiled)[1:], (table, compiled.__name__)
            seen.add(compiled.__name__)
    assert seen == set(m.MIRRORS) - {"drop_event"}


def test_protocols_are_never_confused(bpf):
    bpf.basic(b_flags=1, policy=allow(2, DIR_INGRESS, 300, 132, 80, 24))  # SCTP 80 from A only
    verdicts = {(proto, dport): bpf.to_pod(bpf.b, frame(A4, B4, proto, port(), dport))
                for proto in ("TCP", "UDP", "SCTP") for dport in (80, 81)}
    assert verdicts == {("TCP", 80): TC_ACT_SHOT, ("UDP", 80): TC_ACT_SHOT, ("SCTP", 80): TC_ACT_OK,
                        ("TCP", 81): TC_ACT_SHOT, ("UDP", 81): TC_ACT_SHOT, ("SCTP", 81): TC_ACT_SHOT}


def test_port_ranges_and_any_peer(bpf):
    from netpol.compiler.ports import range_prefixes
    policy = {PolicyKey(2, DIR_INGRESS, 0, 6, v, 8 + b): 3 for v, b in range_prefixes(81, 90)}
    bpf.basic(b_flags=1, policy=policy)
    got = [bpf.to_pod(bpf.b, frame(X4, B4, "TCP", port(), p)) == TC_ACT_OK for p in (80, 81, 85, 90, 91)]
    assert got == [False, True, True, True, False]
    assert bpf.p.policy_stats.sum(ct.c_uint32(3)).packets == 3


def test_replies_of_allowed_flows_pass_and_nothing_else(bpf):
    bpf.basic(a_flags=3)  # A isolated both ways, no rules ...
    bpf.load(Desired(dict(bpf.current.endpoints), dict(bpf.current.ipcache), allow(1, DIR_EGRESS, 400)))
    sport = port()  # ... except egress to X
    assert bpf.from_pod(bpf.a, frame(A4, X4, "TCP", sport, 443)) == TC_ACT_OK
    assert bpf.to_pod(bpf.a, frame(X4, A4, "TCP", 443, sport, flags=TCP_ACK | 0x02)) == TC_ACT_OK
    assert bpf.to_pod(bpf.a, frame(X4, A4, "TCP", 443, sport + 1, flags=TCP_ACK)) == TC_ACT_SHOT
    assert bpf.to_pod(bpf.a, frame(X4, A4, "TCP", port(), 443)) == TC_ACT_SHOT
    # UDP, and an ICMP port-unreachable about that UDP flow, count as replies
    sport = port()
    assert bpf.from_pod(bpf.a, frame(A4, X4, "UDP", sport, 53)) == TC_ACT_OK
    inner = ip(A4, X4, 17, frame(A4, X4, "UDP", sport, 53)[34:])
    assert bpf.to_pod(bpf.a, icmp_frame(X4, A4, 3, 0, inner)) == TC_ACT_OK
    unrelated = ip(A4, X4, 17, frame(A4, X4, "UDP", sport + 7, 53)[34:])
    assert bpf.to_pod(bpf.a, icmp_frame(X4, A4, 3, 0, unrelated)) == TC_ACT_SHOT
    assert bpf.last_drop().reason == reasons.DROP_NO_CONNECTION
    # ping: the echo reply is a reply; an unsolicited one is not
    assert bpf.from_pod(bpf.a, icmp_frame(A4, X4, 8, ident=77)) == TC_ACT_OK
    assert bpf.to_pod(bpf.a, icmp_frame(X4, A4, 0, ident=77)) == TC_ACT_OK
    assert bpf.to_pod(bpf.a, icmp_frame(X4, A4, 0, ident=78)) == TC_ACT_SHOT


def test_revoking_a_rule_stops_the_established_direction_but_not_replies(bpf):
    rule = allow(2, DIR_INGRESS, 300, 6, 80, 24)
    bpf.basic(b_flags=1, policy=rule)
    sport = port()
    assert bpf.to_pod(bpf.b, frame(A4, B4, "TCP", sport, 80)) == TC_ACT_OK
    assert bpf.from_pod(bpf.b, frame(B4, A4, "TCP", 80, sport, flags=TCP_ACK)) == TC_ACT_OK
    bpf.basic(b_flags=1)  # the rule is gone
    assert bpf.to_pod(bpf.b, frame(A4, B4, "TCP", sport, 80, flags=TCP_ACK)) == TC_ACT_SHOT
    assert bpf.from_pod(bpf.b, frame(B4, A4, "TCP", 80, sport, flags=TCP_ACK)) == TC_ACT_OK


def test_spoofed_sources_are_dropped_and_reported(bpf):
    bpf.basic()
    assert bpf.from_pod(bpf.a, frame(A4, X4, "TCP", port(), 80)) == TC_ACT_OK
    assert bpf.from_pod(bpf.a, frame(B4, X4, "UDP", 5000, 53)) == TC_ACT_SHOT
    drop = bpf.last_drop()
    assert (drop.reason, drop.src, drop.dst, drop.sport, drop.dport, drop.proto, drop.direction, drop.ep_id) == \
        (reasons.DROP_SPOOFED_SOURCE, B4, X4, 5000, 53, 17, DIR_EGRESS, 1)


def test_node_traffic_and_self_hairpin_are_exempt(bpf):
    bpf.basic(b_flags=1)
    assert bpf.to_pod(bpf.b, frame("10.77.0.254", B4, "TCP", port(), 80), ingress_ifindex=0) == TC_ACT_OK
    assert bpf.to_pod(bpf.b, frame("10.77.0.254", B4, "TCP", port(), 80), ingress_ifindex=bpf.a) == TC_ACT_SHOT
    assert bpf.to_pod(bpf.b, frame(B4, B4, "TCP", port(), 80), ingress_ifindex=bpf.b) == TC_ACT_OK
    assert bpf.to_pod(bpf.b, frame(B4, B4, "TCP", port(), 80), ingress_ifindex=bpf.a) == TC_ACT_SHOT  # spoofed self


def test_unknown_endpoints_fail_closed_and_control_traffic_passes(bpf):
    bpf.basic(a_flags=3, b_flags=0)
    bpf.load(Desired({bpf.a: EndpointEntry(1, 3, 1)}, dict(bpf.current.ipcache), {}))
    assert bpf.to_pod(bpf.b, frame(A4, B4, "TCP", port(), 80)) == TC_ACT_SHOT
    assert bpf.last_drop().reason == reasons.DROP_UNKNOWN_ENDPOINT
    assert bpf.to_pod(bpf.a, arp()) == TC_ACT_OK
    nd = icmp_frame("fe80::1", "ff02::1:ff00:1", 135)
    assert bpf.to_pod(bpf.a, nd) == TC_ACT_OK and bpf.from_pod(bpf.a, nd) == TC_ACT_OK
    lldp = ETH + b"\x88\xcc" + b"\0" * 40
    assert bpf.to_pod(bpf.a, lldp) == TC_ACT_SHOT
    assert bpf.last_drop().reason == reasons.DROP_UNSUPPORTED_L3
    bad_ihl = bytearray(frame(X4, A4, "TCP"))
    bad_ihl[14] = 0x44  # header length 16 bytes: not IPv4
    no_ports = frame(X4, A4, "TCP")[:34]  # the IP header says TCP, but the packet ends there
    for packet in (bytes(bad_ihl), no_ports):
        assert bpf.to_pod(bpf.a, packet) == TC_ACT_SHOT and bpf.last_drop().reason == reasons.DROP_MALFORMED
    bpf.basic()  # not isolated: such packets are not ours to judge
    assert bpf.to_pod(bpf.a, lldp) == TC_ACT_OK and bpf.to_pod(bpf.a, no_ports) == TC_ACT_OK


def test_ipv6_extension_headers_and_fragments(bpf):
    bpf.basic(a_flags=1, policy={**allow(1, DIR_INGRESS, 303, 17, 53, 24), **allow(1, DIR_INGRESS, 303, 6, 0, 8)})
    hop = bytes([17, 0]) + b"\0" * 6  # hop-by-hop options, then UDP
    udp = frame(B6, A6, "UDP", 4000, 53)[54:]
    with_ext = ETH + b"\x86\xdd" + ip(B6, A6, 17, udp, ext=hop, ext_proto=0)
    assert bpf.to_pod(bpf.a, with_ext) == TC_ACT_OK
    assert bpf.to_pod(bpf.a, with_ext.replace(udp[:4], bytes([15, 160, 0, 54]))) == TC_ACT_SHOT  # port 54
    # A non-first fragment has no ports: only a port-less rule (TCP, any port) can match it.
    assert bpf.to_pod(bpf.a, fragment6(B6, A6, "TCP", 100)) == TC_ACT_OK
    assert bpf.to_pod(bpf.a, fragment6(B6, A6, "UDP", 100)) == TC_ACT_SHOT
    assert bpf.to_pod(bpf.a, fragment6(B6, A6, "UDP", 0)) == TC_ACT_SHOT  # first fragment: port 40000
    v4_frag = ETH + b"\x08\x00" + ip(B4, A4, 17, b"x" * 8, frag_offset=10)
    bpf.basic(a_flags=1, policy=allow(1, DIR_INGRESS, 301, 17, 0, 8))
    assert bpf.to_pod(bpf.a, v4_frag) == TC_ACT_OK


def test_counters(bpf):
    bpf.basic(b_flags=1)
    before = bpf.p.ep_stats.sum(ct.c_uint32(2 * 2 + DIR_INGRESS))
    bpf.to_pod(bpf.b, frame(A4, B4, "TCP", port(), 80))
    after = bpf.p.ep_stats.sum(ct.c_uint32(2 * 2 + DIR_INGRESS))
    assert after.denied_packets == before.denied_packets + 1
    metric = bpf.p.metrics.sum(ct.c_uint32(reasons.DROP_POLICY * 2 + DIR_INGRESS))
    assert metric.packets >= 1


@pytest.mark.parametrize("case", ["ip-block-except", "named-ports", "ingress-and-egress", "pod-and-namespace"])
def test_programs_agree_with_the_simulator(bpf, case):
    """Compiled catalogue case, two of its pods on the veth ends: the kernel decides
    each first packet exactly as the Python model of the programs does."""
    ips = fake_ips()
    w = world(ips, CASES[case](ips))
    local = {"x/a": bpf.a, "z/b": bpf.b}
    attachments = {k: Attachment(i + 1, idx) for i, (k, idx) in enumerate(local.items())}
    desired = compile_world(w, attachments, {p.key: 1 for p in w.policies}, IdentityAllocator())
    bpf.load(desired)
    sim = Simulator(desired)
    for key, ifindex in local.items():
        for other in KEYS + ["outside"]:
            peer = ips[other][0] if other != "outside" else X4
            for proto, dport in (("TCP", 80), ("TCP", 81), ("UDP", 80), ("UDP", 81), ("SCTP", 80), ("SCTP", 81)):
                out = Flow(ips[key][0], peer, proto, dport)
                got = bpf.from_pod(ifindex, frame(out.src, out.dst, proto, port(), dport)) == TC_ACT_OK
                assert got == sim.verdict(ifindex, DIR_EGRESS, out), ("egress", key, out)
                if other == key:
                    continue
                inn = Flow(peer, ips[key][0], proto, dport)
                got = bpf.to_pod(ifindex, frame(inn.src, inn.dst, proto, port(), dport)) == TC_ACT_OK
                assert got == sim.verdict(ifindex, DIR_INGRESS, inn), ("ingress", key, inn)


def test_attach_replace_and_teardown(tmp_path):
    """tc attach is idempotent (replace, no second filter); teardown detaches and unpins."""
    from netpol.datapath import tc
    from netpol.datapath.loader import PROGRAMS, Programs
    from netpol.datapath.teardown import teardown

    pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    link = f"pwt{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"], check=True)
    programs = Programs(pin_dir)
    try:
        index = int(open(f"/sys/class/net/{link}/ifindex").read())
        fds = {hook: (programs.fd(fn), fn) for fn, hook in PROGRAMS.items()}
        tc.attach(index, fds)
        tc.attach(index, fds)
        assert tc.attached(index) == {"ingress": "from_pod", "egress": "to_pod"}
        shown = subprocess.run(["tc", "filter", "show", "dev", link, "ingress"], capture_output=True, text=True).stdout
        assert shown.count(" handle 0x1 ") == 1  # replaced, not added
        assert teardown(pin_dir, only={link}) == [f"detached from {link}", f"removed {pin_dir}"]
        assert tc.attached(index) == {} and not os.path.exists(pin_dir)
    finally:
        programs.close()
        remove_pins_quietly(pin_dir)
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)


def remove_pins_quietly(pin_dir: str) -> None:
    from netpol.datapath.loader import remove_pins
    remove_pins(pin_dir)


# -- identities: the ipcache (pod address -> shared class identity) and the LPM over ipBlock prefixes --

def test_pods_sharing_an_identity_share_one_allow_entry_and_a_new_one_costs_a_cache_entry(bpf):
    """B admits identity 300 on TCP 80.  A and a third address C get 300 (pods alike to every
    policy); D has its own.  Adding C to the ipcache is all it takes: pw_policy is untouched."""
    c4, d4 = "10.77.0.3", "10.77.0.4"
    bpf.basic(b_flags=1, policy=allow(2, DIR_INGRESS, 300, 6, 80, 24))
    policy_before = dict(bpf.current.policy)
    assert bpf.to_pod(bpf.b, frame(c4, B4, "TCP", port(), 80)) == TC_ACT_SHOT  # unknown: world
    ipc = dict(bpf.current.ipcache)
    ipc[ipaddress.ip_network(c4 + "/32")] = IpcacheEntry(300, 0)
    ipc[ipaddress.ip_network(d4 + "/32")] = IpcacheEntry(310, 0)
    bpf.load(Desired(dict(bpf.current.endpoints), ipc, policy_before))
    assert bpf.current.policy == policy_before
    got = {src: bpf.to_pod(bpf.b, frame(src, B4, "TCP", port(), 80)) for src in (A4, c4, d4)}
    assert got == {A4: TC_ACT_OK, c4: TC_ACT_OK, d4: TC_ACT_SHOT}
    assert bpf.last_drop().identity == 310


def test_the_longest_prefix_decides_and_a_pod_address_inside_a_prefix_keeps_its_class(bpf):
    """ipBlock 10.88.0.0/16 except 10.88.1.0/24 -> identities 500 (/16) and 501 (/24), with
    10.88.1.128/25 (502, another policy's cidr) inside the except; pod address 10.88.0.9/32 has
    its class identity 503 (its region, /16, is part of its class).  B admits 500, 502 and 503."""
    nets = {"10.88.0.0/16": IpcacheEntry(500, 0), "10.88.1.0/24": IpcacheEntry(501, 0),
            "10.88.1.128/25": IpcacheEntry(502, 0), "10.88.0.9/32": IpcacheEntry(503, 0)}
    bpf.basic(b_flags=1, policy={**allow(2, DIR_INGRESS, 500, 6, 80, 24), **allow(2, DIR_INGRESS, 502, 6, 80, 24),
                                 **allow(2, DIR_INGRESS, 503, 6, 80, 24)})
    ipc = dict(bpf.current.ipcache)
    ipc.update({ipaddress.ip_network(n): e for n, e in nets.items()})
    bpf.load(Desired(dict(bpf.current.endpoints), ipc, dict(bpf.current.policy)))
    cases = {"10.88.0.1": (TC_ACT_OK, 500), "10.88.200.1": (TC_ACT_OK, 500), "10.88.1.1": (TC_ACT_SHOT, 501),
             "10.88.1.200": (TC_ACT_OK, 502), "10.88.0.9": (TC_ACT_OK, 503), "10.89.0.1": (TC_ACT_SHOT, 1)}
    for src, (verdict, identity) in cases.items():
        assert bpf.to_pod(bpf.b, frame(src, B4, "TCP", port(), 80)) == verdict, src
        if verdict == TC_ACT_SHOT:
            assert bpf.last_drop().identity == identity, src


def test_endpoints_with_the_same_subject_share_allow_entries(bpf):
    """Two endpoints (ep 1 and 2) with subject 7: one set of entries admits for both,
    and the post-DNAT map pw_ep_ids carries the subject too."""
    bpf.basic()
    endpoints = {bpf.a: EndpointEntry(1, 1, 7), bpf.b: EndpointEntry(2, 1, 7)}
    bpf.load(Desired(endpoints, dict(bpf.current.ipcache), allow(7, DIR_INGRESS, 400, 6, 80, 24)))  # X: 192.0.2.0/24
    assert bpf.to_pod(bpf.a, frame(X4, A4, "TCP", port(), 80)) == TC_ACT_OK
    assert bpf.to_pod(bpf.b, frame(X4, B4, "TCP", port(), 80)) == TC_ACT_OK
    assert bpf.to_pod(bpf.b, frame(X4, B4, "TCP", port(), 81)) == TC_ACT_SHOT
    assert bpf.p.ep_ids.lookup(ct.c_uint32(2)).subject == 7


def test_maps_pinned_by_an_older_layout_are_named_with_the_way_out(tmp_path):
    """A pw_endpoints pinned with the old 8-byte value (before subjects): loading says teardown,
    instead of the verifier's bare EACCES."""
    from netpol.datapath.loader import Programs, pinned_sizes, remove_pins
    from netpol.errors import DatapathError

    pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    libc = ct.CDLL(None, use_errno=True)
    create = (ct.c_uint32 * 5)(1, 4, 8, 16, 0)  # BPF_MAP_TYPE_HASH, key 4, value 8, 16 entries
    fd = libc.syscall(321, 0, create, ct.sizeof(create))
    assert fd >= 0, os.strerror(ct.get_errno())
    try:
        os.makedirs(pin_dir)
        path = ct.create_string_buffer(f"{pin_dir}/endpoints".encode())
        attr = (ct.c_uint64 * 2)(ct.addressof(path), fd)
        assert libc.syscall(321, 6, attr, ct.sizeof(attr)) == 0, os.strerror(ct.get_errno())  # BPF_OBJ_PIN
        assert pinned_sizes(f"{pin_dir}/endpoints") == (4, 8)
        with pytest.raises(DatapathError, match="teardown"):
            Programs(pin_dir)
    finally:
        os.close(fd)
        remove_pins(pin_dir)
