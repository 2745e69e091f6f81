"""podwire-cnid with the real plugin: fallback to in-process, identical answers,
a SIGKILL in the middle of a burst, a client that dies mid-ADD, pod CIDRs, health."""
from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import random
import socket
import subprocess
import time

import pytest

from cni.daemon import wire
from cni.plugin.naming import host_veth_name
from cnitest import Daemon, Network, host_snapshot, leases, run_plugin, unique
from conftest import needs_root

pytestmark = needs_root


@pytest.fixture(scope="module")
def bin_dir(podwire_bin_dir) -> str:
    return podwire_bin_dir


@pytest.fixture
def daemon(tmp_path):
    made: list[Daemon] = []

    def start(*args: str) -> Daemon:
        workdir = tmp_path / f"cnid{len(made)}"
        workdir.mkdir()
        made.append(Daemon(str(workdir), *args).start())
        return made[-1]

    yield start
    for d in made:
        assert d.stop() in (0, None) or d.proc.returncode == -9, d.log()


@pytest.fixture
def net(bin_dir, bridge_name, tmp_path):
    octet = random.randint(0, 255)  # test runs in parallel on one host must not share subnets
    n = Network(name=unique("pwd-", 20), bridge=bridge_name, subnet4=f"10.{random.randint(100, 250)}.{octet}.0/24",
                subnet6=f"fd{random.randint(16, 255):02x}:{octet:x}::/64", data_dir=str(tmp_path / "ipam"),
                bin_dir=bin_dir)
    yield n
    from cni.context import STANDALONE
    from cni.plugin.gc import remove_stale_links
    remove_stale_links(STANDALONE, n.name, set())


def via(sock_path: str) -> dict:
    return {"extra_env": {"PODWIRE_CNID_SOCKET": sock_path}}


@pytest.mark.parametrize("where", ["missing", "dead", "not-a-socket", "disabled"])
def test_executables_fall_back_to_in_process(net, netns, tmp_path, where):
    path = str(tmp_path / "cni.sock")
    if where == "dead":  # a daemon killed with SIGKILL leaves its socket file behind
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    elif where == "not-a-socket":
        open(path, "w").close()
    elif where == "disabled":
        path = ""
    code, result = net.run("ADD", net.conf(), "c1", netns, **via(path))
    assert code == 0, result
    assert net.leases() == {result["ips"][0]["address"].split("/")[0]: "c1\r\neth0"}
    assert net.run("DEL", net.conf(), "c1", netns, **via(path)) == (0, None)
    assert net.leases() == {}


def test_both_modes_answer_alike(daemon, bin_dir, tmp_path):
    """Byte for byte, for results (IPAM's are deterministic) and errors alike."""
    d = daemon()
    cases = [("VERSION", {}, {}), ("ADD", {}, {}), ("ADD", {"cniVersion": "9.9.9"}, {}),
             ("ADD", {}, {"CNI_IFNAME": ""}), ("ADD", {"ipam": {"ranges": "x"}}, {}),
             ("CHECK", {"cniVersion": "1.1.0"}, {}), ("STATUS", {"cniVersion": "1.1.0"}, {}),
             ("DEL", {}, {}), ("GC", {"cniVersion": "1.1.0"}, {}), ("NOPE", {}, {})]
    answers = {}
    for mode, sock_path in (("daemon", d.socket), ("standalone", "")):
        conf = {"cniVersion": "1.0.0", "name": "same",
                "ipam": {"type": "podwire-ipam", "dataDir": str(tmp_path / mode), "subnet": "10.232.0.0/24"}}
        out = []
        for command, extra, env in cases:
            full = {**conf, **extra, "ipam": {**conf["ipam"], **extra.get("ipam", {})}}
            out.append(run_plugin(bin_dir, "podwire-ipam", command, full, container_id="c1",
                                  netns="/var/run/netns/none", ifname=env.get("CNI_IFNAME", "eth0"),
                                  extra_env={"PODWIRE_CNID_SOCKET": sock_path, "CNI_NETNS_OVERRIDE": "1"}))
        answers[mode] = out
    assert answers["daemon"] == answers["standalone"]
    assert d.health()["served"] >= len(cases)


def test_sigkill_in_the_middle_of_a_burst_loses_and_duplicates_no_lease(daemon, net, netns_factory):
    conf = net.conf()
    pods = [(f"kill{i}", netns_factory()) for i in range(30)]
    d = daemon()
    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        futures = [pool.submit(net.run, "ADD", conf, cid, ns, **via(d.socket)) for cid, ns in pods]
        while sum(f.done() for f in futures) < 5:  # some answered, most still in flight
            time.sleep(0.002)
        d.kill()  # in-flight ADDs get "went away" (11); later ones fall back to in-process
        adds = [f.result() for f in futures]
    acked = {cid: out for (cid, _), (code, out) in zip(pods, adds) if code == 0}
    assert all(out["code"] == 11 for code, out in adds if code != 0), adds
    assert len(acked) >= 5
    d = daemon()  # restarted: rebuilds from disk
    on_disk = net.leases()
    for cid, out in acked.items():  # nothing acknowledged was lost
        assert on_disk[out["ips"][0]["address"].split("/")[0]] == f"{cid}\r\neth0"
    for (cid, ns), (code, _) in zip(pods, adds):  # the runtime cleans up failed ADDs and retries
        if code != 0:
            assert net.run("DEL", conf, cid, ns, **via(d.socket)) == (0, None)
            code, acked[cid] = net.run("ADD", conf, cid, ns, **via(d.socket))
            assert code == 0, acked[cid]
    addresses = [out["ips"][0]["address"] for out in acked.values()]
    assert len(set(addresses)) == len(pods)  # nothing handed out twice
    assert sorted(net.leases().values()) == sorted(f"{cid}\r\neth0" for cid, _ in pods)
    for cid, ns in pods:
        assert net.run("DEL", conf, cid, ns, **via(d.socket)) == (0, None)
    assert net.leases() == {}
    assert {host_veth_name(cid, "eth0") for cid, _ in pods} & set(host_snapshot()["links"]) == set()


def test_an_add_whose_client_dies_leaves_nothing(daemon, net, netns):
    d = daemon()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "gone1", "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": net.bin_dir}
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(d.socket)
    sock.sendall(wire.encode_request(b"podwire", wire.encode_env({k.encode(): v.encode() for k, v in env.items()}),
                                     json.dumps(net.conf()).encode(), 0))
    sock.close()  # killed by the runtime right after asking
    deadline = time.monotonic() + 20
    while d.health()["in_flight"] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert net.leases() == {}
    assert host_veth_name("gone1", "eth0") not in host_snapshot()["links"]
    assert subprocess.run(["ip", "-n", os.path.basename(netns), "link", "show", "eth0"],
                          capture_output=True).returncode != 0


def test_use_pod_cidr_resolves_alike_in_both_modes(daemon, net, netns_factory):
    d = daemon("--pod-cidr", net.subnet4, "--pod-cidr", net.subnet6)
    conf = net.conf(dual=True, ipam={"ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]]})
    standalone = {"extra_env": {"PODWIRE_CNID_SOCKET": "", "PODWIRE_POD_CIDRS_FILE": d.pod_cidrs_file}}
    a, b = netns_factory(), netns_factory()
    code, ra = net.run("ADD", conf, "pa", a, **via(d.socket))
    assert code == 0, ra
    code, rb = net.run("ADD", conf, "pb", b, **standalone)
    assert code == 0, rb
    for result in (ra, rb):
        v4, v6 = (ipaddress.ip_interface(ip["address"]) for ip in result["ips"])
        assert (v4.network, v6.network) == (ipaddress.ip_network(net.subnet4), ipaddress.ip_network(net.subnet6))
    assert net.run("DEL", conf, "pa", a, **standalone) == (0, None)
    assert net.run("DEL", conf, "pb", b, **via(d.socket)) == (0, None)
    assert leases(net.data_dir, net.name) == {}


def test_status_reports_the_daemons_health(daemon, net, tmp_path):
    d = daemon("--node-name", "no-such-node", "--kubeconfig", str(tmp_path / "missing"))
    conf = net.conf(cni_version="1.1.0")
    code, out = net.run("STATUS", conf, **via(d.socket))
    assert code != 0 and out["code"] == 50 and "no-such-node" in out["msg"], out
    assert net.run("STATUS", conf, **via("")) == (0, None)  # in process, the plugin itself is fine
