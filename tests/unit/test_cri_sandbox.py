"""Pod sandbox helpers without root: sysctl placement, resolv.conf, CNI arguments, names, log paths."""
from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.rpc.container_create import container_name, log_path
from cri.rpc.sandbox_run import sandbox_name
from cri.sandbox import files, network, sysctl
from cri.store.records import PodRecord


def test_sysctls_are_split_by_namespace():
    net, other = sysctl.split({"net.ipv4.ip_forward": "1", "net/ipv4/conf/eth0.100/forwarding": "1",
                               "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20",
                               "kernel.domainname": "x"}, False, False, False)
    assert net == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.eth0/100.forwarding": "1"}
    assert other == {"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20", "kernel.domainname": "x"}


@pytest.mark.parametrize("key, value, host", [
    ("kernel.panic", "1", (False, False, False)),            # not namespaced
    ("vm.swappiness", "1", (False, False, False)),
    ("net.ipv4.ip_forward", "1", (True, False, True)),       # host network
    ("kernel.shmmax", "1", (False, True, False)),            # host IPC
    ("net.ipv4.ip_forward", "1\nkernel.panic=1", (False, False, False)),
    ("net.ipv4../../x", "1", (False, False, False)),
])
def test_sysctls_that_would_touch_the_node_are_refused(key, value, host):
    with pytest.raises(CriError) as err:
        sysctl.split({key: value}, *host)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_resolv_conf_from_dns_config(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.1\n")
    assert files.resolv_conf(api.DNSConfig(), str(host)) == b"nameserver 192.0.2.1\n"
    dns = api.DNSConfig(servers=["10.96.0.10", "fd00::a"], searches=["ns.svc.cluster.local"], options=["ndots:5"])
    assert files.resolv_conf(dns, str(host)) == (b"search ns.svc.cluster.local\nnameserver 10.96.0.10\n"
                                                 b"nameserver fd00::a\noptions ndots:5\n")
    with pytest.raises(CriError):
        files.resolv_conf(api.DNSConfig(servers=["1.1.1.1\nnameserver 6.6.6.6"]), str(host))


def test_pod_files_are_written(tmp_path):
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="web"), hostname="web-0")
    out = files.write_pod_files(str(tmp_path), cfg, False, "/nonexistent")
    assert sorted(out) == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    assert (tmp_path / "hostname").read_text() == "web-0\n"
    assert "127.0.0.1\tlocalhost" in (tmp_path / "hosts").read_text()
    assert files.pod_files(str(tmp_path)) == out


def test_port_mappings_capability_like_containerd():
    cfg = api.PodSandboxConfig(port_mappings=[
        api.PortMapping(protocol=api.TCP, container_port=80, host_port=8080),
        api.PortMapping(protocol=api.UDP, container_port=53, host_port=5353, host_ip="127.0.0.1"),
        api.PortMapping(protocol=api.TCP, container_port=9090)])          # no host port: informational
    assert network.port_mappings(cfg) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]
    with pytest.raises(CriError):
        network.port_mappings(api.PodSandboxConfig(port_mappings=[
            api.PortMapping(container_port=70000, host_port=1)]))


def test_pod_ips_come_from_eth0_ipv4_first():
    result = {"interfaces": [{"name": "pw0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
              "ips": [{"address": "fd85::5/64", "interface": 1}, {"address": "10.85.0.5/16", "interface": 1},
                      {"address": "10.99.0.1/24", "interface": 0}]}
    assert network.pod_ips(result) == ["10.85.0.5", "fd85::5"]


def test_names_like_containerd():
    md = api.PodSandboxMetadata(name="web", namespace="default", uid="u1", attempt=2)
    assert sandbox_name(md) == "web_default_u1_2"
    assert container_name(api.ContainerMetadata(name="app", attempt=1), md) == "app_web_default_u1_1"


def test_log_paths_stay_in_the_pod_log_directory():
    pod = PodRecord(id="p", name="n", config=api.PodSandboxConfig(log_directory="/var/log/pods/x"))
    assert log_path(pod, api.ContainerConfig(log_path="app/0.log")) == "/var/log/pods/x/app/0.log"
    assert log_path(pod, api.ContainerConfig()) == ""
    # Absolute paths are joined under the directory, as containerd's filepath.Join does.
    assert log_path(pod, api.ContainerConfig(log_path="/app/0.log")) == "/var/log/pods/x/app/0.log"
    for bad in ("../y/0.log", "/../../etc/passwd", "app/../../0.log", "."):
        with pytest.raises(CriError) as err:
            log_path(pod, api.ContainerConfig(log_path=bad))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_empty_dns_entries_are_dropped_and_line_breaks_refused(tmp_path):
    dns = api.DNSConfig(servers=["", "10.96.0.10"], searches=[" ", "svc.local"], options=[""])
    assert files.resolv_conf(dns, "/nonexistent") == b"search svc.local\nnameserver 10.96.0.10\n"
    with pytest.raises(CriError) as err:
        files.resolv_conf(api.DNSConfig(options=["ndots:5\rsearch evil"]), "/nonexistent")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "one line" in err.value.message


@pytest.mark.parametrize("code, status", [
    (11, grpc.StatusCode.UNAVAILABLE),          # try again later
    (7, grpc.StatusCode.INVALID_ARGUMENT),      # invalid network config
    (1, grpc.StatusCode.INVALID_ARGUMENT),      # incompatible version
    (5, grpc.StatusCode.INTERNAL),              # I/O failure
    (999, grpc.StatusCode.INTERNAL),
    (120, grpc.StatusCode.INTERNAL),            # plugin-specific
])
def test_cni_error_codes_in_the_cris_words(code, status):
    from cni.errors import CniError
    from cri.sandbox.network import cri_error
    err = cri_error(CniError(code, "plugin says no", "because"), "CNI ADD on network 'n' failed")
    assert err.code == status
    assert "plugin says no" in err.message and f"CNI error code {code}" in err.message
