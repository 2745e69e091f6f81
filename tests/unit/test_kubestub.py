"""The in-test API stub speaks enough Kubernetes for the official client: list, get, watch, 410."""
from __future__ import annotations

import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubestub import KubeStub, endpoint_slice, namespace, network_policy, node, pod, service


@pytest.fixture
def api(tmp_path):
    with KubeStub() as stub:
        cfg = client.Configuration()
        config.load_kube_config(config_file=stub.kubeconfig(str(tmp_path / "kubeconfig")),
                                client_configuration=cfg)
        yield stub, client.ApiClient(cfg)


def test_lists_and_gets_every_kind_through_the_official_client(api):
    stub, c = api
    stub.put(node("n1", ["10.1.1.0/24", "fd00:1:1::/64"], ["192.168.50.1", "fd50::1"]))
    stub.put(namespace("x", {"team": "a"}))
    stub.put(pod("x", "a", {"app": "a"}, ["10.1.1.5"], node_name="n1",
                 ports=[{"name": "http", "containerPort": 80, "protocol": "TCP"}]))
    stub.put(service("x", "web", ["10.96.0.10"], [{"name": "http", "port": 80, "targetPort": 80,
                                                    "protocol": "TCP"}], {"app": "a"}))
    stub.put(endpoint_slice("x", "web", ["10.1.1.5"], [{"name": "http", "port": 80, "protocol": "TCP"}]))
    stub.put(network_policy("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    core = client.CoreV1Api(c)
    n = core.read_node("n1")
    assert n.spec.pod_cidrs == ["10.1.1.0/24", "fd00:1:1::/64"]
    assert [a.address for a in n.status.addresses if a.type == "InternalIP"] == ["192.168.50.1", "fd50::1"]
    assert [p.status.pod_ip for p in core.list_pod_for_all_namespaces().items] == ["10.1.1.5"]
    assert core.list_namespace().items[0].metadata.labels["team"] == "a"
    assert core.list_service_for_all_namespaces().items[0].spec.cluster_ip == "10.96.0.10"
    slices = client.DiscoveryV1Api(c).list_endpoint_slice_for_all_namespaces().items
    assert slices[0].endpoints[0].addresses == ["10.1.1.5"]
    assert client.NetworkingV1Api(c).list_namespaced_network_policy("x").items[0].metadata.name == "deny"
    with pytest.raises(ApiException) as missing:
        core.read_node("nope")
    assert missing.value.status == 404


def test_watch_sees_changes_in_order_from_the_lists_version(api):
    stub, c = api
    stub.put(node("n1", ["10.1.1.0/24"], ["192.168.50.1"]))
    core = client.CoreV1Api(c)
    version = core.list_node().metadata.resource_version
    seen: list[tuple[str, str, list]] = []
    w = watch.Watch()

    def follow():
        for ev in w.stream(core.list_node, resource_version=version, timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name, ev["object"].spec.pod_cidrs))
            if len(seen) == 3:
                w.stop()

    t = threading.Thread(target=follow)
    t.start()
    stub.put(node("n2", ["10.1.2.0/24"], ["192.168.50.2"]))
    stub.put(node("n1", ["10.1.1.0/24"], ["192.168.50.9"]))
    stub.delete("nodes", "", "n2")
    t.join(15)
    assert seen == [("ADDED", "n2", ["10.1.2.0/24"]), ("MODIFIED", "n1", ["10.1.1.0/24"]),
                    ("DELETED", "n2", ["10.1.2.0/24"])]


def test_a_watch_from_a_compacted_version_gets_410_gone(api):
    stub, c = api
    core = client.CoreV1Api(c)
    version = core.list_node().metadata.resource_version
    stub.put(node("n1"))
    stub.store.compact()
    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(core.list_node, resource_version=version, timeout_seconds=5):
            pass
    assert gone.value.status == 410
