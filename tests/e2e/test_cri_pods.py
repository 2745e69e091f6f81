"""podwire-cri pods end to end: real netns, real CNI (podwire + portmap), over the socket."""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import threading
import time

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root


def _netns_list() -> set[str]:
    """The shims' namespaces (other tests on this machine may make theirs meanwhile)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("podwire-")}


def _in_netns(name: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True, text=True,
                          check=True).stdout


def _run(shim, cfg) -> str:
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id


def _info(shim, pod_id) -> dict:
    resp = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True))
    return json.loads(resp.info["info"])


def test_pod_lifecycle(shim, cri_net):
    cfg = h.pod_config(labels={"app": "web", "weird key/x": "a=b c"},
                       annotations={"io.kubernetes.pod/hash": "x\ny", "empty": ""})
    cfg.dns_config.servers.append("10.96.0.10")
    cfg.dns_config.searches.extend(["e2e.svc.cluster.local", "svc.cluster.local"])
    cfg.dns_config.options.append("ndots:5")
    cfg.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "0"
    cfg.linux.sysctls["net/ipv4/ping_group_range"] = "0 2147483647"
    pod_id = _run(shim, cfg)

    st = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert st.state == api.SANDBOX_READY
    assert dict(st.labels) == dict(cfg.labels) and dict(st.annotations) == dict(cfg.annotations)
    assert ipaddress.ip_address(st.network.ip) in ipaddress.ip_network(cri_net.network.subnet4)
    info = _info(shim, pod_id)
    netns = os.path.basename(info["netns"])
    assert netns in _netns_list()
    assert st.network.ip + "/" in _in_netns(netns, "ip", "-o", "addr", "show", "dev", "eth0")
    assert _in_netns(netns, "sysctl", "-n", "net.ipv4.ip_unprivileged_port_start").strip() == "0"
    assert _in_netns(netns, "sysctl", "-n", "net.ipv4.ping_group_range").split() == ["0", "2147483647"]
    uts = subprocess.run(["nsenter", f"--uts={info['uts']}", "hostname"], capture_output=True, text=True)
    assert uts.stdout.strip() == cfg.hostname
    with open(os.path.join(info["podDir"], "resolv.conf")) as f:
        assert f.read() == ("search e2e.svc.cluster.local svc.cluster.local\n"
                            "nameserver 10.96.0.10\noptions ndots:5\n")
    assert list(cri_net.network.leases().values()) == [f"{pod_id}\r\neth0"]
    listed = shim.rt.ListPodSandbox(api.ListPodSandboxRequest(
        filter=api.PodSandboxFilter(label_selector={"app": "web"}))).items
    assert [p.id for p in listed] == [pod_id]

    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    st = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert st.state == api.SANDBOX_NOTREADY and not st.network.ip
    assert netns not in _netns_list()
    assert cri_net.network.leases() == {}
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))      # idempotent
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))  # idempotent
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))      # unknown: success
    assert not os.path.exists(info["uts"]) and not os.path.exists(info["podDir"])
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_two_pods_reach_each_other(shim):
    a, b = _run(shim, h.pod_config()), _run(shim, h.pod_config())
    ip_b = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=b)).status.network.ip
    ns_a = os.path.basename(_info(shim, a)["netns"])
    subprocess.run(["ip", "netns", "exec", ns_a, "ping", "-c", "1", "-W", "2", ip_b], check=True,
                   capture_output=True)


def _host_ip() -> str:
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout
    return out.split(" src ")[1].split()[0]


def test_port_mapping_reaches_the_pod(shim):
    host_port = 30000 + os.getpid() % 20000
    cfg = h.pod_config(port_mappings=[api.PortMapping(protocol=api.TCP, container_port=8080,
                                                      host_port=host_port)])
    pod_id = _run(shim, cfg)
    ns = os.path.basename(_info(shim, pod_id)["netns"])
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns, "python3", "-c",
         "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
         "s.bind(('0.0.0.0', 8080)); s.listen(); print('up', flush=True); c,_=s.accept(); c.sendall(b'hello-pod')"],
        stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"up\n"
        with socket.create_connection((_host_ip(), host_port), timeout=5) as conn:
            assert conn.recv(100) == b"hello-pod"
    finally:
        server.kill()
        server.wait()


def test_failing_cni_leaves_nothing_behind(shim, cri_net):
    cri_net.add_plugin("failer", h.FAILING_PLUGIN)
    cri_net.write(h.conflist(cri_net.network, extra_plugins=[{"type": "failer"}]))
    before = _netns_list()
    cfg = h.pod_config()
    with pytest.raises(grpc.RpcError) as err:
        _run(shim, cfg)
    assert err.value.code() == grpc.StatusCode.INTERNAL and "injected failure" in err.value.details()
    assert _netns_list() == before
    assert cri_net.network.leases() == {}
    assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    assert os.listdir(shim.cfg.pods_dir) == []
    assert not os.listdir(shim.cfg.ns_dir) if os.path.isdir(shim.cfg.ns_dir) else True
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"master {cri_net.network.bridge}" not in links
    # The name was released: fixed network, same pod runs.
    cri_net.write(h.conflist(cri_net.network))
    assert _run(shim, cfg)


def test_stop_releases_ips_when_the_netns_is_gone(shim, cri_net):
    pod_id = _run(shim, h.pod_config())
    ns = os.path.basename(_info(shim, pod_id)["netns"])
    subprocess.run(["ip", "netns", "del", ns], check=True)
    assert cri_net.network.leases() != {}
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert cri_net.network.leases() == {}


def test_host_network_pod_skips_cni(shim, cri_net):
    cfg = h.pod_config()
    cfg.linux.security_context.namespace_options.network = api.NODE
    pod_id = _run(shim, cfg)
    st = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert st.state == api.SANDBOX_READY and st.network.ip == ""
    info = _info(shim, pod_id)
    assert info["netns"] == "" and info["uts"] == "" and info["ipc"]
    assert cri_net.network.leases() == {}


def test_list_and_status_do_not_wait_for_a_slow_cni(shim, cri_net):
    cri_net.add_plugin("slow", h.SLOW_PLUGIN)
    fast = 1.0 * h.TIME_SCALE     # well below the slow plugin's ADD
    cri_net.write(h.conflist(cri_net.network, extra_plugins=[{"type": "slow", "sleep": 3 * h.TIME_SCALE}]))
    ready = _run(shim, h.pod_config())
    slow = threading.Thread(target=_run, args=(shim, h.pod_config()))
    slow.start()
    try:
        time.sleep(0.5 * h.TIME_SCALE)
        t0 = time.monotonic()
        shim.rt.ListPodSandbox(api.ListPodSandboxRequest(), timeout=fast)
        shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=ready), timeout=fast)
        assert time.monotonic() - t0 < fast
        # Stopping another pod (its own CNI DEL included) is not held up by the slow ADD either:
        # it is done while that ADD still sleeps.
        shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=ready), timeout=5 * h.TIME_SCALE)
        assert slow.is_alive()
    finally:
        slow.join()


def test_second_pod_with_the_same_name_is_refused(shim):
    cfg = h.pod_config()
    cfg.linux.security_context.namespace_options.network = api.NODE
    first = _run(shim, cfg)
    with pytest.raises(grpc.RpcError) as err:
        _run(shim, cfg)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"is reserved for '{first}'" in err.value.details()
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=first))
    assert _run(shim, cfg) != first


@pytest.mark.parametrize("mutate, code", [
    # An empty uid is accepted, as containerd does (test_cri_request_shapes.py); a name is required.
    (lambda c: c.metadata.ClearField("name"), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: setattr(c, "log_directory", "relative/dir"), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: c.linux.sysctls.__setitem__("kernel.panic", "1"), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: c.linux.sysctls.__setitem__("net.ipv4.../x", "1"), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: c.dns_config.servers.append("1.1.1.1\nnameserver 6.6.6.6"), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: setattr(c, "hostname", "h" * 65), grpc.StatusCode.INVALID_ARGUMENT),   # > sethostname(2)'s 64
])
def test_bad_pod_requests_are_rejected(shim, mutate, code):
    cfg = h.pod_config()
    mutate(cfg)
    with pytest.raises(grpc.RpcError) as err:
        _run(shim, cfg)
    assert err.value.code() == code, err.value.details()
    assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []


def test_runtime_info(shim):
    v = shim.rt.Version(api.VersionRequest())
    assert (v.runtime_name, v.runtime_api_version) == ("podwire", "v1")
    conds = {c.type: c for c in shim.rt.Status(api.StatusRequest()).status.conditions}
    assert conds["RuntimeReady"].status and conds["NetworkReady"].status, conds
    cgroup = shim.rt.RuntimeConfig(api.RuntimeConfigRequest()).linux.cgroup_driver
    assert cgroup == (api.SYSTEMD if h.e2e_cgroup_driver() == "systemd" else api.CGROUPFS)
    req = api.UpdateRuntimeConfigRequest()
    req.runtime_config.network_config.pod_cidr = "10.244.0.0/24"
    shim.rt.UpdateRuntimeConfig(req)
    assert shim.rt.Status(api.StatusRequest(verbose=True)).info["podCIDR"] == "10.244.0.0/24"
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.CheckpointContainer(api.CheckpointContainerRequest(container_id="x"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_network_not_ready_without_a_config(shim, cri_net):
    os.unlink(os.path.join(cri_net.conf_dir, "10-test.conflist"))
    time.sleep(2.1)   # Status caches the plugins' STATUS for 2 s
    conds = {c.type: c for c in shim.rt.Status(api.StatusRequest()).status.conditions}
    assert not conds["NetworkReady"].status and conds["NetworkReady"].reason == "NetworkPluginNotReady"
