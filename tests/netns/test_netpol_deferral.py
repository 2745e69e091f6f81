"""Service deferral in the BPF programs, on crafted packets (BPF_PROG_TEST_RUN).

from_pod tags (and lets go) exactly the packets of egress-isolated pods to Service
frontends; to_pod drops a tagged packet that reached a pod without being DNATed
to it; the netfilter program leaves untagged packets alone.  Its judging of
tagged packets needs conntrack and real DNAT: test_netpol_services.py.
"""
from __future__ import annotations

import ctypes as ct
import ipaddress
import time

import pytest

from conftest import needs_root
from netpol.compiler import ISOLATE_EGRESS
from netpol.datapath import maps as m
from netpol.datapath import reasons
from netpol.datapath.testrun import TC_ACT_OK, TC_ACT_SHOT, run_marked, run_netfilter
from netpol.services import Frontend
from netpolpackets import frame
from test_netpol_bpf import A4, B4, X4, bpf  # noqa: F401  (the module's maps and harness)

pytestmark = needs_root
MARK = 0x02000000
CLUSTER_IP = "10.96.0.10"


@pytest.fixture
def services(bpf):  # noqa: F811
    def configure(deferred: int = 1, a_flags: int = ISOLATE_EGRESS, b_flags: int = 0) -> None:
        bpf.basic(a_flags=a_flags, b_flags=b_flags)
        desired = bpf.current.__class__(dict(bpf.current.endpoints), dict(bpf.current.ipcache), {},
                                        services=frozenset({Frontend(ipaddress.ip_address(CLUSTER_IP), 53, 17),
                                                            Frontend(None, 30080, 6)}))
        bpf.load(desired)
        bpf.p.service_config.update(ct.c_uint32(0), m.ServiceConfig(mark=MARK, deferred=deferred))

    yield configure
    bpf.p.service_config.update(ct.c_uint32(0), m.ServiceConfig(mark=0, deferred=0))
    bpf.load(bpf.current.__class__())


def marked(bpf, prog: str, data: bytes, ifindex: int, ingress_ifindex: int, mark: int = 0):  # noqa: F811
    bpf._since = time.monotonic_ns()  # last_drop() reports only drops of this packet
    return run_marked(bpf.p.fd(prog), data, ifindex, ingress_ifindex, mark)


def from_pod(bpf, data: bytes) -> tuple[int, int]:  # noqa: F811
    return marked(bpf, "from_pod", data, bpf.a, bpf.a)


def test_from_pod_defers_packets_to_frontends_only(bpf, services):  # noqa: F811
    services()
    assert from_pod(bpf, frame(A4, CLUSTER_IP, "UDP", 4000, 53)) == (TC_ACT_OK, MARK)
    assert from_pod(bpf, frame(A4, X4, "TCP", 4000, 30080)) == (TC_ACT_OK, MARK)  # a NodePort, any address
    # not a frontend: judged here (A may send nothing)
    assert from_pod(bpf, frame(A4, CLUSTER_IP, "UDP", 4000, 54)) == (TC_ACT_SHOT, 0)
    assert from_pod(bpf, frame(A4, CLUSTER_IP, "TCP", 4000, 53)) == (TC_ACT_SHOT, 0)
    # a NodePort port on a pod of this node: a bridge may switch it past PREROUTING, so judged here
    assert from_pod(bpf, frame(A4, B4, "TCP", 4000, 30080)) == (TC_ACT_SHOT, 0)
    assert bpf.last_drop().reason == reasons.DROP_POLICY


def test_nothing_is_deferred_without_the_hook_or_isolation(bpf, services):  # noqa: F811
    services(deferred=0)
    assert from_pod(bpf, frame(A4, CLUSTER_IP, "UDP", 4000, 53)) == (TC_ACT_SHOT, 0)  # today's: by ClusterIP
    services(a_flags=0)
    assert from_pod(bpf, frame(A4, CLUSTER_IP, "UDP", 4000, 53)) == (TC_ACT_OK, 0)  # unisolated: same verdict


def test_to_pod_drops_tagged_packets_that_were_not_dnated_to_it(bpf, services):  # noqa: F811
    services()
    assert marked(bpf, "to_pod", frame(A4, CLUSTER_IP, "UDP", 4000, 53), bpf.b, bpf.a, MARK)[0] == TC_ACT_SHOT
    drop = bpf.last_drop()
    assert drop.reason == reasons.DROP_SERVICE_BYPASS and drop.direction == 0 and drop.dst == CLUSTER_IP
    assert marked(bpf, "to_pod", frame(A4, B4, "UDP", 4000, 80), bpf.b, bpf.a, MARK)[0] == TC_ACT_OK  # DNATed to B
    assert marked(bpf, "to_pod", frame(A4, CLUSTER_IP, "UDP", 4000, 53), bpf.b, bpf.a)[0] == TC_ACT_OK  # untagged


def test_netfilter_program_passes_untagged_packets_unjudged(bpf, services):  # noqa: F811
    services()
    assert run_netfilter(bpf.p.nf_fd, frame(A4, CLUSTER_IP, "UDP", 4000, 53)) == 1  # NF_ACCEPT
    assert run_netfilter(bpf.p.nf_fd, frame(A4, X4, "TCP", 4000, 9)) == 1
