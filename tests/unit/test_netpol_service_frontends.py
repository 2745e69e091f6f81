"""Services -> the frontends whose egress check waits for DNAT (pw_services), from manifests,
the store and the Kubernetes source; and that they never change what policy allows."""
from __future__ import annotations

import ipaddress

import pytest
import yaml

from netpol.datapath import maps as m
from netpol.errors import InvalidPolicy
from netpol.manifest import parse_manifest
from netpol.services import Frontend, Service, ServicePort, frontends, service_from_object
from netpol.sources.kube import KubeSource
from netpoltest import CASES, fake_agent, fake_ips, register_all
from test_netpol_sources import FakeApi, FakeWatch, wait_for

IPS = fake_ips()
TCP, UDP, SCTP = 6, 17, 132


def k8s_service(ns="kube-system", name="kube-dns", ips=("10.96.0.10", "fd00:96::a"), ports=None, **spec):
    ports = ports if ports is not None else [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
                                             {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ips[0] if ips else None, "clusterIPs": list(ips), "ports": ports, **spec}}


def addr(text: str):
    return ipaddress.ip_address(text)


def test_cluster_ips_of_both_families_with_every_port():
    svc = service_from_object(k8s_service())
    assert svc.key == "kube-system/kube-dns"
    assert svc.frontends() == {Frontend(addr("10.96.0.10"), 53, UDP), Frontend(addr("10.96.0.10"), 53, TCP),
                               Frontend(addr("fd00:96::a"), 53, UDP), Frontend(addr("fd00:96::a"), 53, TCP)}


def test_node_ports_match_any_address_and_external_ips_are_frontends():
    svc = service_from_object(k8s_service("x", "web", ("10.96.7.1",), type="NodePort", externalIPs=["192.0.2.7"],
                                          ports=[{"protocol": "TCP", "port": 80, "nodePort": 30080},
                                                 {"protocol": "SCTP", "port": 90, "nodePort": 30090}]))
    assert svc.frontends() == {
        Frontend(addr("10.96.7.1"), 80, TCP), Frontend(addr("192.0.2.7"), 80, TCP), Frontend(None, 30080, TCP),
        Frontend(addr("10.96.7.1"), 90, SCTP), Frontend(addr("192.0.2.7"), 90, SCTP), Frontend(None, 30090, SCTP)}


def test_headless_and_portless_services_have_no_frontends():
    assert service_from_object(k8s_service(ips=("None",))).frontends() == set()
    assert service_from_object({"metadata": {"name": "bare"}, "spec": {}}).frontends() == set()
    assert service_from_object(k8s_service("x", "ext", (), type="ExternalName")).frontends() == set()


def test_protocol_defaults_to_tcp_and_invalid_input_is_rejected():
    svc = service_from_object(k8s_service(ports=[{"port": 8080}]))
    assert {f.proto for f in svc.frontends()} == {TCP}
    with pytest.raises(InvalidPolicy, match="protocol"):
        service_from_object(k8s_service(ports=[{"port": 1, "protocol": "ICMP"}]))
    with pytest.raises(InvalidPolicy, match="valid IP"):
        service_from_object(k8s_service(ips=("10.96.0.300",)))
    with pytest.raises(InvalidPolicy, match="port"):
        service_from_object(k8s_service(ports=[{"port": 70000}]))


def test_frontends_of_several_services_are_their_union():
    a = Service("x", "a", ("10.96.0.1",), ports=(ServicePort("TCP", 80),))
    b = Service("x", "b", ("10.96.0.1",), ports=(ServicePort("TCP", 80), ServicePort("UDP", 80, 30001)))
    assert frontends([a, b]) == {Frontend(addr("10.96.0.1"), 80, TCP), Frontend(addr("10.96.0.1"), 80, UDP),
                                 Frontend(None, 30001, UDP)}


def test_map_keys_round_trip_with_ipv4_mapped_and_any_address():
    for f in (Frontend(addr("10.96.0.10"), 53, UDP), Frontend(addr("fd00::a"), 443, TCP), Frontend(None, 30080, TCP)):
        key = m.service_key(f)
        assert m.frontend_of(key) == f
    assert bytes(m.service_key(Frontend(addr("10.96.0.10"), 53, UDP)).addr) == \
        b"\0" * 10 + b"\xff\xff" + bytes([10, 96, 0, 10])
    assert bytes(m.service_key(Frontend(None, 30080, TCP)).addr) == bytes(16)


def test_manifests_carry_services_next_to_policies():
    text = yaml.safe_dump_all([k8s_service(), {"apiVersion": "v1", "kind": "ServiceList",
                                               "items": [k8s_service("x", "web", ("10.96.7.1",))]}])
    manifest = parse_manifest(text + "---\n" + CASES["deny-all"](IPS))
    assert sorted(manifest.services) == ["kube-system/kube-dns", "x/web"]
    assert [p.key for p in manifest.policies] == ["x/deny-all"]
    with pytest.raises(InvalidPolicy, match="appears twice"):
        parse_manifest(yaml.safe_dump_all([k8s_service(), k8s_service()]))


def test_agent_syncs_frontends_and_prunes_them_with_their_source(tmp_path):
    agent, dp = fake_agent(tmp_path)
    results = agent.apply(yaml.safe_dump(k8s_service()), source="file:/a.yaml", prune=True)
    assert [(r.kind, r.name, r.action) for r in results] == [("service", "kube-dns", "created")]
    assert Frontend(addr("10.96.0.10"), 53, UDP) in dp.maps.services and len(dp.maps.services) == 4
    again = agent.apply(yaml.safe_dump(k8s_service()), source="file:/a.yaml", prune=True)
    assert [r.action for r in again] == ["unchanged"]
    # the store brings them back after a restart
    restarted, dp2 = fake_agent(tmp_path)
    assert restarted.service_keys() == ["kube-system/kube-dns"] and len(dp2.maps.services) == 4
    pruned = agent.apply(CASES["deny-all"](IPS), source="file:/a.yaml", prune=True)
    assert ("service", "kube-dns", "deleted") in [(r.kind, r.name, r.action) for r in pruned]
    assert dp.maps.services == frozenset()
    agent.apply(yaml.safe_dump(k8s_service()), source="file:/b.yaml")
    agent.delete_source("file:/b.yaml")
    assert agent.service_keys() == [] and dp.maps.services == frozenset()


def test_delete_by_manifest_removes_its_services():
    agent, dp = fake_agent()
    text = yaml.safe_dump(k8s_service())
    agent.apply(text)
    results = agent.delete(manifest=text)
    assert [(r.kind, r.action) for r in results] == [("service", "deleted")] and not dp.maps.services


def test_services_never_change_what_policy_allows():
    """Only where the egress check happens moves; the compiled policy is the same."""
    agent, dp = fake_agent()
    register_all(agent, IPS)
    agent.apply(CASES["ingress-and-egress"](IPS))
    before = (dict(dp.maps.policy), dict(dp.maps.ipcache), dict(dp.maps.endpoints))
    agent.apply(yaml.safe_dump(k8s_service("z", "svc", ("10.96.1.1",))))
    assert (dp.maps.policy, dp.maps.ipcache, dp.maps.endpoints) == before and dp.maps.services
    assert agent.stats().service_frontends == len(dp.maps.services)


def test_kubernetes_source_lists_watches_and_forgets_services():
    agent, dp = fake_agent()
    agent.upsert_service(service_from_object(k8s_service("x", "gone", ("10.96.9.9",))), source="kubernetes")
    agent.upsert_service(service_from_object(k8s_service("x", "mine", ("10.96.9.8",))), source="cli")
    api = FakeApi([], [], [], services=[k8s_service()])
    source = KubeSource(agent, api, api, lambda: FakeWatch(api.events), relist_backoff=0.05).start()
    events = api.events["list_service_for_all_namespaces"]
    try:
        # listed; one of ours deleted in the API meanwhile goes, someone else's stays
        assert wait_for(lambda: agent.service_keys() == ["kube-system/kube-dns", "x/mine"])
        events.put({"type": "ADDED", "object": k8s_service("x", "web", ("10.96.7.1",), type="NodePort",
                                                           ports=[{"port": 80, "nodePort": 30080}])})
        assert wait_for(lambda: Frontend(None, 30080, TCP) in dp.maps.services)
        events.put({"type": "MODIFIED", "object": k8s_service("x", "web", ("10.96.7.1",), ports=[{"port": 81}])})
        assert wait_for(lambda: Frontend(addr("10.96.7.1"), 81, TCP) in dp.maps.services
                        and Frontend(None, 30080, TCP) not in dp.maps.services)
        events.put({"type": "DELETED", "object": k8s_service()})
        events.put({"type": "ADDED", "object": k8s_service("x", "bad", ports=[{"port": 1, "protocol": "GRE"}])})
        assert wait_for(lambda: agent.service_keys() == ["x/mine", "x/web"])
    finally:
        source.stop()
