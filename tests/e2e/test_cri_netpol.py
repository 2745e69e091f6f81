"""podwire-cri -> the netpol agent: a real Agent (gRPC API + CNI hook socket, in process, over
an in-memory datapath that resolves real host veths) registered by the shim and the podwire
CNI plugin together, through real pods."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root

DENY_WEB = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web, namespace: e2e}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
"""
KUBELET_LABELS = {"io.kubernetes.pod.name": "x", "io.kubernetes.pod.namespace": "e2e",
                  "io.kubernetes.pod.uid": "u"}


class Agent:
    """The agent's real core and servers; ``calls`` records every UpsertEndpoint/RemoveEndpoint
    (fields, and the endpoint as it was right after: labels, interface, isolation)."""

    def __init__(self, tmp_path):
        from netpol.agent.cnihook import CniHookServer
        from netpol.agent.core import Agent as Core
        from netpol.agent.server import create_server
        from netpol.agent.store import Store
        from netpol.datapath.fake import FakeDatapath
        from netpol.errors import FailedPrecondition

        class HostDatapath(FakeDatapath):
            def ifindex(self, interface: str) -> int:
                try:
                    return socket.if_nametoindex(interface)
                except OSError:
                    raise FailedPrecondition(f"interface {interface!r} does not exist") from None

        self.socket, self.cni_socket = str(tmp_path / "netpol.sock"), str(tmp_path / "netpol-cni.sock")
        self.core = Core(HostDatapath(), Store(None))
        self.core.start()
        self.calls: list[tuple] = []
        self._lock = threading.Lock()
        upsert, remove = self.core.upsert_endpoint, self.core.remove_endpoint

        def recording_upsert(pod, fields=None):
            view = upsert(pod, fields)
            with self._lock:
                self.calls.append(("upsert", pod.key, frozenset(fields or ()), view))
            return view

        def recording_remove(namespace="", name="", interface=""):
            removed = remove(namespace, name, interface)
            with self._lock:
                self.calls.append(("remove", f"{namespace}/{name}" if name else interface, removed))
            return removed

        self.core.upsert_endpoint, self.core.remove_endpoint = recording_upsert, recording_remove
        self.server, _ = create_server(self.core, f"unix:{self.socket}")
        self.server.start()
        self.hook = CniHookServer(self.core, self.cni_socket).start()

    def close(self):
        self.hook.stop()
        self.server.stop(0).wait()


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path)
    yield a
    a.close()


@pytest.fixture
def netpol_shim(shim_factory, cri_net, agent):
    conflist = h.conflist(cri_net.network)
    conflist["plugins"][0]["netpolSocket"] = agent.cni_socket
    cri_net.write(conflist)
    return shim_factory(netpol_socket=agent.socket, netpol_timeout=2.0)


def _run(shim, cfg) -> str:
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id


def _host_veth(shim, pod_id) -> str:
    resp = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True))
    netns = os.path.basename(json.loads(resp.info["info"])["netns"])
    peer = subprocess.run(["ip", "netns", "exec", netns, "cat", "/sys/class/net/eth0/iflink"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return socket.if_indextoname(int(peer))


def test_pod_is_registered_before_its_network_and_removed_on_stop(netpol_shim, agent, test_images):
    agent.core.apply(DENY_WEB)
    cfg = h.pod_config(labels={"app": "web", **KUBELET_LABELS})
    cfg.labels["io.kubernetes.pod.name"] = cfg.metadata.name
    pod_id = _run(netpol_shim, cfg)
    key = f"e2e/{cfg.metadata.name}"

    # The shim's labels first, then the CNI hook's interface: the endpoint was isolated the
    # moment its programs were attached (inside CNI ADD, before the sandbox existed).
    (_, k1, f1, v1), (_, k2, f2, v2) = agent.calls
    assert (k1, f1, k2, f2) == (key, {"labels"}, key, {"ips", "interface", "container_id"})
    assert dict(v1.pod.labels) == {"app": "web"} and not v1.pod.interface
    assert v2.ep_id and v2.ingress_isolated and dict(v2.pod.labels) == {"app": "web"}
    ep = agent.core.endpoint(key)
    st = netpol_shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert ep.pod.interface == _host_veth(netpol_shim, pod_id) and ep.pod.container_id == pod_id
    assert ep.pod.ips == (st.network.ip,) and ep.ingress_isolated

    # Named ports from the kubelet's annotation, merged over the pod's containers.
    image = netpol_shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)),
                                      timeout=120).image_ref
    for name, ports in (("a", [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                               {"containerPort": 9000, "protocol": "TCP"}]),
                        ("b", [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]),
                        ("c", None)):
        ctr = api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                                  command=["sleep", "60"])
        if ports is not None:
            ctr.annotations["io.kubernetes.container.ports"] = json.dumps(ports)
        netpol_shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr,
                                                                  sandbox_config=cfg), timeout=60)
    ep = agent.core.endpoint(key)
    assert {(p.name, p.protocol, p.port) for p in ep.pod.ports} == {("http", "TCP", 80), ("dns", "UDP", 53)}
    assert ep.pod.interface and dict(ep.pod.labels) == {"app": "web"}
    assert len(agent.calls) == 4                       # container c has no named ports: no call

    netpol_shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert agent.core.endpoints() == []
    netpol_shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    netpol_shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert agent.core.endpoints() == []


def test_failed_cni_add_unregisters_the_pod(netpol_shim, agent, cri_net):
    cri_net.add_plugin("failer", h.FAILING_PLUGIN)
    conflist = h.conflist(cri_net.network, extra_plugins=[{"type": "failer"}])
    conflist["plugins"][0]["netpolSocket"] = agent.cni_socket
    cri_net.write(conflist)
    with pytest.raises(grpc.RpcError) as err:
        _run(netpol_shim, h.pod_config(labels={"app": "web"}))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert agent.core.endpoints() == []
    assert [c[0] for c in agent.calls][:2] == ["upsert", "upsert"] and agent.calls[-1][0] == "remove"
    assert netpol_shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []


def test_unreachable_agent_fails_run_with_unavailable_and_leaves_nothing(shim_factory, cri_net, tmp_path):
    dead = str(tmp_path / "dead.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(dead)                      # the file exists, nobody accepts: a hung or crashed agent
    try:
        shim = shim_factory(netpol_socket=dead, netpol_timeout=1.0)
        with pytest.raises(grpc.RpcError) as err:
            _run(shim, h.pod_config())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "netpol agent" in err.value.details()
        assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
        assert os.listdir(shim.cfg.pods_dir) == []
        assert cri_net.network.leases() == {}
        # No socket at all: no agent on this node, pods run as before.
        os.unlink(dead)
        pod_id = _run(shim, h.pod_config())
        shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    finally:
        sock.close()


def test_named_ports_follow_container_create_failures_and_removals(netpol_shim, agent, test_images,
                                                                     monkeypatch):
    """A CreateContainer that fails after registering its named ports takes them back; a removed
    container's ports stop resolving."""
    from cri.rpc import container_sync
    cfg = h.pod_config(labels={"app": "web", **KUBELET_LABELS})
    pod_id = _run(netpol_shim, cfg)
    key = f"e2e/{cfg.metadata.name}"
    image = netpol_shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)),
                                      timeout=120).image_ref

    def create(name: str, port_name: str, port: int) -> str:
        ctr = api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                                  command=["sleep", "60"])
        ctr.annotations["io.kubernetes.container.ports"] = json.dumps(
            [{"name": port_name, "containerPort": port, "protocol": "TCP"}])
        return netpol_shim.rt.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=ctr, sandbox_config=cfg), timeout=60).container_id

    def ports() -> set:
        return {(p.name, p.port) for p in agent.core.endpoint(key).pod.ports}

    create("a", "http", 80)
    b = create("b", "dns", 53)
    assert ports() == {("http", 80), ("dns", 53)}

    def fail(*args, **kw):
        raise RuntimeError("injected after the ports were registered")
    with monkeypatch.context() as m:
        m.setattr(container_sync, "with_state", fail)
        with pytest.raises(grpc.RpcError):
            create("c", "metrics", 9090)
    assert ports() == {("http", 80), ("dns", 53)}

    netpol_shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=b), timeout=60)
    assert ports() == {("http", 80)}
    netpol_shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    netpol_shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert agent.core.endpoints() == []
