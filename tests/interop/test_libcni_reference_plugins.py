"""The runtime library driving containernetworking's reference plugins:
bridge (+ host-local) -> portmap -> tuning, cniVersion 1.0.0, in real namespaces.

Everything a test makes is removed at teardown, also when it fails: the
attachment is DELeted, the server killed, and portmap's shared chains removed
again if this test created them.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import random
import shlex
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from conftest import REFERENCE_PLUGIN_DIR, needs_root
from cni.libcni import CNIConfig, RuntimeConf, conflist_from_bytes

pytestmark = [
    needs_root, pytest.mark.root, pytest.mark.interop,
    pytest.mark.skipif(not os.path.exists(os.path.join(REFERENCE_PLUGIN_DIR, "portmap")),
                       reason="reference CNI plugins not installed"),
]
CONTAINER_PORT = 8080
PORTMAP_BASE_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


# --- host helpers -------------------------------------------------------------

def run(*args: str, check: bool = True) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=check).stdout


def nat_rules() -> list[str]:
    return run("iptables-save", "-t", "nat").splitlines()


def nat_chains(prefix: str) -> set[str]:
    return {line[1:].split()[0] for line in nat_rules() if line.startswith(f":{prefix}")}


def free_subnet() -> str:
    """A /24 in 10/8 that no route on the host touches."""
    routes = run("ip", "-4", "route", "show", "table", "all")
    while True:
        subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"
        if subnet.rsplit(".", 2)[0] + "." not in routes:
            return subnet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remove_unused_portmap_chains() -> None:
    """portmap keeps its shared chains for the next pod; take them away once no
    per-pod chain (CNI-DN-*) uses them any more."""
    if nat_chains("CNI-DN-"):
        return
    for line in nat_rules():
        words = shlex.split(line)
        if words[:1] == ["-A"] and words[-1] in PORTMAP_BASE_CHAINS and words[1] not in PORTMAP_BASE_CHAINS:
            run("iptables", "-t", "nat", "-D", *words[1:], check=False)
    for chain in PORTMAP_BASE_CHAINS:
        run("iptables", "-t", "nat", "-F", chain, check=False)
    for chain in PORTMAP_BASE_CHAINS:
        run("iptables", "-t", "nat", "-X", chain, check=False)


# --- fixtures -----------------------------------------------------------------

@pytest.fixture
def portmap_chains():
    """Per-pod chains present before the test; shared chains removed after it
    when the test was the one that created them."""
    had_base = bool(nat_chains("CNI-HOSTPORT-"))
    yield nat_chains("CNI-DN-")
    if not had_base:
        remove_unused_portmap_chains()


@pytest.fixture
def make_netlist(tmp_path, bridge_name):
    def make(*extra_plugins: dict):
        bridge = {"type": "bridge", "bridge": bridge_name, "isGateway": True,
                  "ipam": {"type": "host-local", "ranges": [[{"subnet": free_subnet()}]],
                           "dataDir": str(tmp_path / "ipam")}}
        data = {"cniVersion": "1.0.0", "name": f"pwnet-{uuid.uuid4().hex[:8]}",
                "plugins": [bridge, *extra_plugins]}
        return conflist_from_bytes(json.dumps(data).encode())
    return make


@pytest.fixture
def cnicfg(cni_bin, tmp_path) -> CNIConfig:
    return CNIConfig([cni_bin], cache_dir=str(tmp_path / "results"), timeout=60)


@pytest.fixture
def attachments(cnicfg, portmap_chains):
    """Register (netlist, rt) after ADD; each is DELeted at teardown (a second DEL is
    harmless).  Depends on portmap_chains so that the chains go after the DELs."""
    made: list = []
    yield made
    for netlist, rt in made:
        try:
            cnicfg.del_network_list(netlist, rt)
        except Exception as exc:  # keep cleaning the rest
            print(f"cleanup DEL failed: {exc}", file=sys.stderr)


@pytest.fixture
def servers():
    """Start processes inside a netns; all killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(netns_path: str, *argv: str) -> subprocess.Popen:
        name = os.path.basename(netns_path)
        proc = subprocess.Popen(["ip", "netns", "exec", name, *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def http_get(url: str, deadline: float = 15.0) -> int:
    """Status of GET url, retrying while the server starts."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def addresses_in(netns_path: str, ifname: str = "eth0") -> str:
    return run("ip", "-n", os.path.basename(netns_path), "-o", "addr", "show", "dev", ifname)


def lease_file(tmp_path, netlist, ip: str) -> str:
    return str(tmp_path / "ipam" / netlist.name / ip)


# --- tests ----------------------------------------------------------------------

def test_bridge_portmap_tuning_add_reach_del(cnicfg, make_netlist, netns, attachments, servers,
                                             portmap_chains, tmp_path, bridge_name):
    netlist = make_netlist({"type": "portmap", "capabilities": {"portMappings": True}},
                           {"type": "tuning"})
    host_port = free_port()
    mappings = [{"hostPort": host_port, "containerPort": CONTAINER_PORT, "protocol": "tcp"}]
    rt = RuntimeConf(f"pw{uuid.uuid4().hex}", netns, "eth0", args=[("IgnoreUnknown", "1")],
                     capability_args={"portMappings": mappings})

    result = cnicfg.add_network_list(netlist, rt)
    attachments.append((netlist, rt))

    # The IP is in the subnet and configured in the netns.
    address = ipaddress.ip_interface(result["ips"][0]["address"])
    subnet = netlist.plugins[0]["ipam"]["ranges"][0][0]["subnet"]
    assert result["cniVersion"] == "1.0.0" and address.network == ipaddress.ip_network(subnet)
    assert f"inet {address.with_prefixlen}" in addresses_in(netns)
    assert os.path.exists(lease_file(tmp_path, netlist, str(address.ip)))

    # The cache entry is libcni's.
    cache_file = os.path.join(cnicfg.cache_dir, f"{netlist.name}-{rt.container_id}-eth0")
    assert stat.S_IMODE(os.stat(cache_file).st_mode) == 0o600
    with open(cache_file) as f:
        entry = json.load(f)
    assert (entry["kind"], entry["containerId"], entry["ifName"], entry["networkName"], entry["netns"]) == (
        "cniCacheV1", rt.container_id, "eth0", netlist.name, netns)
    assert base64.b64decode(entry["config"]) == netlist.raw
    assert entry["capabilityArgs"] == {"portMappings": mappings}
    assert entry["cniArgs"] == [["IgnoreUnknown", "1"]] and entry["result"] == result

    # portmap's DNAT rule is there, and the hostPort on localhost reaches the pod.
    assert any(f'id: \\"{rt.container_id}\\"' in line for line in nat_rules())
    servers(netns, sys.executable, "-m", "http.server", str(CONTAINER_PORT), "--bind", str(address.ip))
    assert http_get(f"http://127.0.0.1:{host_port}/") == 200

    cnicfg.del_network_list(netlist, rt)

    assert not any(rt.container_id in line for line in nat_rules())
    assert nat_chains("CNI-DN-") == portmap_chains        # the pod's chain is gone
    assert not os.path.exists(cache_file)
    assert not os.path.exists(lease_file(tmp_path, netlist, str(address.ip)))
    assert run("ip", "-o", "link", "show", "master", bridge_name) == ""    # host veth gone
    cnicfg.del_network_list(netlist, rt)                     # DEL again succeeds


def test_check_then_del_after_netns_is_gone(cnicfg, make_netlist, netns, attachments, tmp_path):
    # portmap 1.1.1's CHECK looks for an IPv6 chain it never made for v4-only pods,
    # so CHECK is exercised on bridge -> tuning.
    netlist = make_netlist({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}})
    rt = RuntimeConf(f"pw{uuid.uuid4().hex}", netns, "eth0")
    result = cnicfg.add_network_list(netlist, rt)
    attachments.append((netlist, rt))
    ip = str(ipaddress.ip_interface(result["ips"][0]["address"]).ip)

    cnicfg.check_network_list(netlist, rt)

    run("ip", "netns", "del", os.path.basename(netns))
    cnicfg.del_network_list(netlist, rt)       # every plugin copes with the missing netns
    assert not os.path.exists(lease_file(tmp_path, netlist, ip))
    assert cnicfg.get_cached_result(netlist, rt) is None


def test_gc_deletes_stale_attachment(cnicfg, make_netlist, netns_factory, attachments, tmp_path):
    netlist = make_netlist()
    keep = RuntimeConf(f"pw{uuid.uuid4().hex}", netns_factory(), "eth0")
    stale = RuntimeConf(f"pw{uuid.uuid4().hex}", netns_factory(), "eth0")
    ips = {}
    for rt in (keep, stale):
        result = cnicfg.add_network_list(netlist, rt)
        attachments.append((netlist, rt))
        ips[rt.container_id] = str(ipaddress.ip_interface(result["ips"][0]["address"]).ip)

    cnicfg.gc_network_list(netlist, [(keep.container_id, "eth0")])

    assert not os.path.exists(lease_file(tmp_path, netlist, ips[stale.container_id]))
    assert cnicfg.get_cached_result(netlist, stale) is None
    assert run("ip", "-n", os.path.basename(stale.netns), "-o", "link", "show", "eth0", check=False) == ""
    assert os.path.exists(lease_file(tmp_path, netlist, ips[keep.container_id]))
    assert cnicfg.get_cached_result(netlist, keep) is not None


def test_podwire_portmap_bandwidth_tuning_chain(cnicfg, netns, attachments, servers, portmap_chains,
                                                tmp_path, bridge_name):
    """podwire first, then the reference plugins: hostPort reachable, shaping on the host
    veth, sysctl set in the pod; after DEL the rules, the veth and the lease are gone."""
    subnet = free_subnet()
    podwire = {"type": "podwire", "bridge": bridge_name, "isGateway": True, "ipMasq": True,
               "ipam": {"type": "podwire-ipam", "ranges": [[{"subnet": subnet}]],
                        "dataDir": str(tmp_path / "ipam")}}
    data = {"cniVersion": "1.0.0", "name": f"pwnet-{uuid.uuid4().hex[:8]}", "plugins": [
        podwire,
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}},
    ]}
    netlist = conflist_from_bytes(json.dumps(data).encode())
    host_port = free_port()
    rt = RuntimeConf(f"pw{uuid.uuid4().hex}", netns, "eth0", capability_args={
        "portMappings": [{"hostPort": host_port, "containerPort": CONTAINER_PORT, "protocol": "tcp"}],
        "bandwidth": {"egressRate": 100_000_000, "egressBurst": 10_000_000,
                      "ingressRate": 100_000_000, "ingressBurst": 10_000_000}})

    result = cnicfg.add_network_list(netlist, rt)
    attachments.append((netlist, rt))
    address = ipaddress.ip_interface(result["ips"][0]["address"])
    host_veth = result["interfaces"][1]["name"]
    assert address.network == ipaddress.ip_network(subnet)
    assert "tbf" in run("tc", "qdisc", "show", "dev", host_veth)
    ns_name = os.path.basename(netns)
    assert run("ip", "netns", "exec", ns_name, "sysctl", "-n", "net.ipv4.conf.eth0.accept_redirects").strip() == "0"
    servers(netns, sys.executable, "-m", "http.server", str(CONTAINER_PORT), "--bind", str(address.ip))
    assert http_get(f"http://127.0.0.1:{host_port}/") == 200

    cnicfg.del_network_list(netlist, rt)
    assert not any(rt.container_id in line for line in nat_rules())
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=2)
    assert run("ip", "link", "show", host_veth, check=False) == ""
    assert not os.path.exists(lease_file(tmp_path, netlist, str(address.ip)))
    assert cnicfg.get_cached_result(netlist, rt) is None
