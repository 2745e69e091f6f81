"""The agent core over the in-memory datapath: transactions, rollback, restart, views."""
from __future__ import annotations

import dataclasses
import time

import pytest

from netpol.compiler.entries import DIR_INGRESS
from netpol.compiler.simulate import Simulator
from netpol.datapath.events import DropEvent
from netpol.datapath.reasons import DROP_POLICY
from netpol.errors import FailedPrecondition, InvalidArgument, InvalidPolicy, NotFound, ResourceExhausted
from netpol.evaluator import Flow
from netpol.model import NamedPort, Pod
from netpoltest import CASES, KEYS, fake_agent, fake_ips, register_all

IPS = fake_ips()


def ifindex(key: str) -> int:
    return 100 + KEYS.index(key)


def test_local_pods_are_attached_and_isolated_as_policies_say():
    agent, dp = fake_agent()
    register_all(agent, IPS)
    assert dp.attached_to == {ifindex(k) for k in KEYS}
    assert not any(v.ingress_isolated for v in agent.endpoints())
    results = agent.apply(CASES["deny-all"](IPS))
    assert [(r.name, r.action) for r in results] == [("deny-all", "created")]
    assert {v.pod.key for v in agent.endpoints() if v.ingress_isolated} == {"x/a", "x/b", "x/c"}
    sim = Simulator(dp.maps)
    assert not sim.verdict(ifindex("x/a"), DIR_INGRESS, Flow(IPS["y/a"][0], IPS["x/a"][0], "TCP", 80))
    assert sim.verdict(ifindex("y/a"), DIR_INGRESS, Flow(IPS["x/a"][0], IPS["y/a"][0], "TCP", 80))


def test_apply_reports_created_configured_unchanged_and_dry_run_changes_nothing():
    agent, dp = fake_agent()
    text = CASES["end-port"](IPS)
    assert agent.apply(text, dry_run=True)[0].action == "created"
    assert agent.policy_keys() == [] and dp.syncs == 1
    assert agent.apply(text)[0].action == "created"
    assert agent.apply(text)[0].action == "unchanged"
    assert agent.apply(text.replace("endPort: 90", "endPort: 91"))[0].action == "configured"


@pytest.mark.parametrize("bad", [
    "apiVersion: v1\nkind: [",
    CASES["deny-all"](IPS).replace("podSelector: {}", "podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]"),
    CASES["deny-all"](IPS).replace("podSelector: {}", "podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.1.0.0/25]}}]}]"),
    CASES["deny-all"](IPS).replace("podSelector: {}", "podSelector: {}\n  ingress: [{ports: [{endPort: 80}]}]"),
    CASES["deny-all"](IPS).replace("podSelector: {}", "podSelector: {}\n  ingress: [{ports: [{protocol: ICMP}]}]"),
])
def test_invalid_input_is_rejected_and_the_datapath_is_unchanged(bad):
    agent, dp = fake_agent()
    register_all(agent, IPS)
    agent.apply(CASES["allow-same-namespace"](IPS))
    before, syncs = dataclasses.replace(dp.maps), dp.syncs
    with pytest.raises(InvalidPolicy):
        agent.apply(CASES["union"](IPS) + bad)  # valid documents before the bad one: all or nothing
    assert dp.maps == before and dp.syncs == syncs and agent.policy_keys() == ["x/same-ns"]


def test_a_failed_sync_restores_state_and_maps():
    agent, dp = fake_agent()
    register_all(agent, IPS)
    before = dataclasses.replace(dp.maps)
    dp.fail_next_sync = ResourceExhausted("BPF map pw_policy is full")
    with pytest.raises(ResourceExhausted):
        agent.apply(CASES["deny-all"](IPS))
    assert agent.policy_keys() == [] and dp.maps == before


def test_unknown_interface_is_a_failed_precondition_and_changes_nothing():
    agent, dp = fake_agent()
    with pytest.raises(FailedPrecondition):
        agent.upsert_endpoint(Pod("x", "a", ips=("10.1.1.1",), interface="nope"))
    assert agent.endpoints() == [] and dp.attached_to == set()


def test_bad_endpoints_are_invalid_arguments():
    agent, _ = fake_agent()
    for pod in (Pod("", "a"), Pod("x", "a", ips=("10.1.1.300",)), Pod("x", "a", ports=(NamedPort("h", "ICMP", 1),)),
                Pod("x", "a", ports=(NamedPort("h", "TCP", 0),))):
        with pytest.raises(InvalidArgument):
            agent.upsert_endpoint(pod)
    with pytest.raises(InvalidArgument):
        agent.upsert_endpoint(Pod("x", "a"), {"colour"})


def test_update_mask_merges_cni_and_shim_views_of_a_pod():
    agent, dp = fake_agent()
    agent.apply(CASES["namespace-selector"](IPS))
    # The shim (or the Kubernetes source) knows labels before the network exists ...
    agent.upsert_endpoint(Pod("x", "a", (("pod", "a"),), ports=(NamedPort("http", "TCP", 80),)))
    # ... the CNI hook then adds interface and addresses, keeping the labels.
    view = agent.upsert_endpoint(Pod("x", "a", ips=(IPS["x/a"][0],), interface="veth-x-a"),
                                 {"ips", "interface", "container_id"})
    assert view.pod.labels == (("pod", "a"),) and view.ingress_isolated and view.ep_id == 1
    assert dp.attached_to == {ifindex("x/a")}


def test_remove_detaches_and_is_idempotent():
    agent, dp = fake_agent()
    register_all(agent, IPS)
    assert agent.remove_endpoint(interface="veth-x-a") and not agent.remove_endpoint(interface="veth-x-a")
    assert agent.remove_endpoint("y", "b") and not agent.remove_endpoint("y", "b")
    assert ifindex("x/a") not in dp.attached_to and ifindex("x/a") not in dp.maps.endpoints


def test_endpoint_ids_still_in_the_maps_are_not_reused():
    agent, dp = fake_agent()
    register_all(agent, IPS)
    first = {v.pod.key: v.ep_id for v in agent.endpoints()}
    assert sorted(first.values()) == list(range(1, 10))
    agent.remove_endpoint("x", "a")
    view = agent.upsert_endpoint(Pod("w", "new", ips=("10.1.1.1",), interface="veth-x-a"))
    assert view.ep_id == first["x/a"]  # free again once its entries are gone


def test_restart_from_store_and_pinned_maps_changes_nothing(tmp_path):
    agent, dp = fake_agent(tmp_path)
    register_all(agent, IPS)
    agent.apply(CASES["union"](IPS))
    maps = dataclasses.replace(dp.maps)
    restarted, _ = fake_agent(tmp_path, datapath=dp)
    assert dp.maps == maps
    assert restarted.policy_keys() == agent.policy_keys()
    assert {v.pod.key: v.ep_id for v in restarted.endpoints()} == {v.pod.key: v.ep_id for v in agent.endpoints()}


def test_restart_drops_pods_whose_veth_vanished(tmp_path):
    agent, dp = fake_agent(tmp_path)
    register_all(agent, IPS)
    del dp.interfaces["veth-x-a"]
    restarted, _ = fake_agent(tmp_path, datapath=dp)
    assert "x/a" not in [v.pod.key for v in restarted.endpoints()]
    dp.interfaces["veth-y-b"] = 999  # re-created under the same name: a different pod
    assert restarted.gc() == ["y/b"]


def test_delete_forms():
    agent, _ = fake_agent()
    agent.apply(CASES["union"](IPS) + CASES["ingress-and-egress"](IPS))
    with pytest.raises(NotFound, match='networkpolicies.networking.k8s.io "nope" not found'):
        agent.delete("x", ["nope"])
    assert agent.delete("x", ["nope"], ignore_not_found=True) == []
    assert [r.name for r in agent.delete("x", all_in_namespace=True)] == ["allow-yb-udp", "deny-all"]
    assert [r.name for r in agent.delete(manifest=CASES["ingress-and-egress"](IPS))] == ["both"]


def test_sources_own_their_policies_and_prune():
    agent, _ = fake_agent()
    agent.apply(CASES["deny-all"](IPS), source="file:/a.yaml")
    agent.apply(CASES["end-port"](IPS), source="cli")
    results = agent.apply(CASES["sctp-only"](IPS), source="file:/a.yaml", prune=True)
    assert sorted((r.name, r.action) for r in results) == [("deny-all", "deleted"), ("sctp-only", "created")]
    agent.delete_source("file:/a.yaml")
    assert agent.policy_keys() == ["x/end-port"]


def test_drops_are_named_after_pods_and_fan_out_to_followers():
    agent, dp = fake_agent()
    register_all(agent, IPS)
    recent, q = agent.drops.follow(10, subscribe=True)
    assert recent == []
    dp.emit_drop(DropEvent(time.time(), 1, IPS["y/a"][0], IPS["x/a"][0], 40000, 80, 6, DIR_INGRESS, DROP_POLICY,
                           1, ifindex("x/a"), 300))
    view = q.get(timeout=1)
    assert (view.src_pod, view.dst_pod, view.isolated_pod, view.protocol, view.direction, view.reason) == \
        ("y/a", "x/a", "x/a", "TCP", "ingress", "Policy denied")
    assert agent.drops.recent(5) == [view]


def test_stats_name_endpoints_and_policies():
    agent, _ = fake_agent()
    register_all(agent, IPS)
    agent.apply(CASES["allow-same-namespace"](IPS))
    stats = agent.stats()
    assert [e[0] for e in stats.endpoints] == sorted(KEYS)
    assert stats.policies[0][0] == "x/same-ns" and stats.policies[0][2] == stats.policy_entries > 0


def test_sockets_are_roots_only_whatever_the_umask(tmp_path):
    """Bound in a private directory and renamed into place: 0600 even with umask 0, and the
    process umask is never changed (other threads create files meanwhile)."""
    import os
    import socket

    from netpol.agent.cnihook import CniHookServer
    from netpol.agent.core import Agent as Core
    from netpol.agent.store import Store
    from netpol.datapath.fake import FakeDatapath

    old = os.umask(0)
    try:
        hook = CniHookServer(Core(FakeDatapath(), Store(None)), str(tmp_path / "run" / "hook.sock")).start()
        assert os.umask(0) == 0                          # untouched by the bind
    finally:
        os.umask(old)
    try:
        path = tmp_path / "run" / "hook.sock"
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert [p.name for p in (tmp_path / "run").iterdir()] == ["hook.sock"]   # no staging left
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(path))
            c.sendall(b'{"op": "nope"}\n')
            assert b"INVALID_ARGUMENT" in c.makefile("rb").readline()
    finally:
        hook.stop()


def test_cni_hook_drops_stalled_clients_and_caps_connections(tmp_path, monkeypatch):
    """A client that never sends is dropped after the timeout; past the cap a connection is
    answered UNAVAILABLE at once instead of taking a thread."""
    import socket
    import time

    from netpol.agent import cnihook
    from netpol.agent.core import Agent as Core
    from netpol.agent.store import Store
    from netpol.datapath.fake import FakeDatapath

    monkeypatch.setattr(cnihook, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(cnihook._Handler, "timeout", 0.5)
    path = str(tmp_path / "hook.sock")
    hook = cnihook.CniHookServer(Core(FakeDatapath(), Store(None)), path).start()
    stalled = [socket.socket(socket.AF_UNIX) for _ in range(2)]
    try:
        for s in stalled:
            s.connect(path)
        time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as extra:
            extra.connect(path)
            extra.settimeout(2)
            assert b"UNAVAILABLE" in extra.makefile("rb").readline()
        for s in stalled:                   # dropped by the server after its timeout
            s.settimeout(3)
            assert s.recv(100) == b""
        with socket.socket(socket.AF_UNIX) as again:       # slots free again
            again.connect(path)
            again.sendall(b'{"op": "nope"}\n')
            again.settimeout(2)
            assert b"INVALID_ARGUMENT" in again.makefile("rb").readline()
    finally:
        for s in stalled:
            s.close()
        hook.stop()
