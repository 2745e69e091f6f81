"""NetworkPolicy across nodes: each node's podwire-netpol learns the cluster's pods from the
API (the stub), so selectors match pods on other nodes, and a remote pod's label change is
enforced as fast as a local one.

Two nodes on an L2 underlay in host-gw mode, each with podwire-cnid and podwire-netpol in
its namespace; pods are Pod objects in the API with the addresses their CNI ADD gave them.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from kubestub import namespace, network_policy
from nodebed import Bed, wait_for

# In a pod: report each change of "can I connect to dst:port" with the monotonic time of the
# attempt that saw it (the clock is the machine's, shared by every namespace).  Attempts
# repeat every few milliseconds; a dropped SYN costs the 30 ms timeout.
_PROBER = """
import socket, sys, time
dst, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ':' in dst else socket.AF_INET
last = None
while True:
    start = time.monotonic()
    s = socket.socket(family)
    s.settimeout(0.03)
    try:
        s.connect((dst, port)); ok = True
    except OSError:
        ok = False
    finally:
        s.close()
    if ok != last:
        print(f"{int(ok)} {start:.6f}", flush=True)
        last = ok
    time.sleep(0.002)
"""

_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(256); print('ready', flush=True)
while True:
    c, _ = s.accept(); c.close()
"""


@pytest.fixture(scope="module")
def bin_dir(podwire_bin_dir) -> str:
    return podwire_bin_dir


@pytest.fixture(scope="module")
def bed(bin_dir, tmp_path_factory):
    bed = Bed(tmp_path_factory.mktemp("mnp"), "host-gw", "l2", bin_dir)
    servers: list[subprocess.Popen] = []
    try:
        bed.build(2)
        bed.stub.put(namespace("x"))
        for node in bed.nodes.values():
            bed.put_node(node)
        for node in bed.nodes.values():
            node.start()
            node.start_agent()
        n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
        bed.web = n1.add_pod("x/web", {"app": "web"})
        bed.local = n1.add_pod("x/local", {"role": "client"})
        bed.remote = n2.add_pod("x/remote", {"role": "client"})
        bed.other = n2.add_pod("x/other", {"role": "other"})
        for family in (4, 6):
            server = subprocess.Popen(["ip", "netns", "exec", bed.web.ns, sys.executable, "-S", "-c", _SERVER,
                                       bed.web.ip(family), "80"], stdout=subprocess.PIPE, text=True)
            servers.append(server)
            assert server.stdout.readline().strip() == "ready"
        yield bed
    finally:
        for server in servers:
            server.kill()
            server.wait()
        bed.close()


def connects(pod, address: str, port: int = 80) -> bool:
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET); s.settimeout(0.5)\n"
            "s.connect((sys.argv[1], int(sys.argv[2])))")
    return subprocess.run(["ip", "netns", "exec", pod.ns, sys.executable, "-S", "-c", code, address, str(port)],
                          capture_output=True).returncode == 0


def matrix(bed) -> dict[tuple[str, int], bool]:
    return {(client, family): connects(getattr(bed, client), bed.web.ip(family))
            for client in ("local", "remote", "other") for family in (4, 6)}


def expect(bed, allowed: set[str], timeout: float = 15) -> None:
    want = {(client, family): client in allowed for client in ("local", "remote", "other") for family in (4, 6)}
    last: dict = {}

    def settled() -> bool:
        last.update(matrix(bed))
        return last == want
    try:
        wait_for(settled, timeout=timeout, what=f"matrix {want}")
    except AssertionError:
        raise AssertionError(f"got {last}, want {want}\nn1 agent:\n{bed.nodes['n1'].agent.log()}") from None


WEB_INGRESS = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                            "ports": [{"protocol": "TCP", "port": 80}]}]}
CLIENT_EGRESS = {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "nothing"}}}]}]}


def test_ingress_selectors_match_pods_on_other_nodes(bed):
    expect(bed, {"local", "remote", "other"})  # no policy: everyone
    bed.stub.put(network_policy("x", "web-ingress", WEB_INGRESS))
    try:
        expect(bed, {"local", "remote"})  # role=client on either node; role=other (on n2) refused
    finally:
        bed.stub.delete("networkpolicies", "x", "web-ingress")
    expect(bed, {"local", "remote", "other"})


def test_egress_to_a_remote_pod_is_judged_by_its_labels(bed):
    bed.stub.put(network_policy("x", "client-egress", CLIENT_EGRESS))
    try:
        expect(bed, {"other"})  # the clients may reach only app=nothing; web (remote for n2) is not
        rule = {**CLIENT_EGRESS, "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}
        bed.stub.put(network_policy("x", "client-egress", rule))
        expect(bed, {"local", "remote", "other"})
    finally:
        bed.stub.delete("networkpolicies", "x", "client-egress")


def _flip_latency(bed, pod, other_labels: dict) -> float:
    """Seconds from the label change in the API to the prober's first refused attempt."""
    prober = subprocess.Popen(["ip", "netns", "exec", pod.ns, sys.executable, "-S", "-c", _PROBER,
                               bed.web.ip(4), "80"], stdout=subprocess.PIPE, text=True)
    try:
        assert prober.stdout.readline().split()[0] == "1"  # allowed now
        before = dict(pod.labels)
        changed = time.monotonic()
        pod.publish(other_labels)
        state, at = prober.stdout.readline().split()
        assert state == "0"
        latency = float(at) - changed
        pod.publish(before)
        state, _ = prober.stdout.readline().split()
        assert state == "1"  # and back when the labels are restored
        return max(latency, 0.0)
    finally:
        prober.kill()
        prober.wait()


def test_a_remote_pods_label_change_is_enforced_as_fast_as_a_local_ones(bed):
    """The latency is that of a local change (the issue's goal); printed, and bounded
    loosely here because a loaded CI machine is not a benchmark."""
    bed.stub.put(network_policy("x", "web-ingress", WEB_INGRESS))
    try:
        expect(bed, {"local", "remote"})
        flips = 8
        remote = [_flip_latency(bed, bed.remote, {"role": "other"}) for _ in range(flips)]
        local = [_flip_latency(bed, bed.local, {"role": "other"}) for _ in range(flips)]
    finally:
        bed.stub.delete("networkpolicies", "x", "web-ingress")
    summary = {name: (statistics.median(v) * 1e3, max(v) * 1e3) for name, v in (("remote", remote), ("local", local))}
    print("label change -> first refused connection, ms (median, max):",
          {k: f"{m:.1f}, {x:.1f}" for k, (m, x) in summary.items()})
    assert max(remote) < 2.0 and max(local) < 2.0, summary


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_egress_through_a_service_is_judged_at_the_remote_backend(bed, proxy):
    """A client on n2 dials a ClusterIP whose backend is web on n1: kube-proxy-shaped DNAT on
    n2 picks it, and the client's egress policy is judged against web's labels (learned from
    the API), not against the ClusterIP."""
    from netpolsvc import Svc, SvcPort, iptables_rules, nft_rules
    n2 = bed.nodes["n2"]
    svc = Svc("x", "websvc", "10.96.0.50", [SvcPort("TCP", 80, 80)], ["x/web"])
    rules = (iptables_rules if proxy == "iptables" else nft_rules)([svc], {"x/web": bed.web.ip(4)}, n2.pod_cidrs[0])
    load = "iptables-restore --noflush" if proxy == "iptables" else "nft -f -"
    subprocess.run(["ip", "netns", "exec", n2.ns, "sh", "-c", load], input=rules, text=True, check=True)
    bed.stub.put(svc.manifest())
    try:
        assert connects(bed.remote, svc.cluster_ip)  # no policy
        bed.stub.put(network_policy("x", "client-egress", CLIENT_EGRESS))  # role=client may reach app=nothing
        wait_for(lambda: not connects(bed.remote, svc.cluster_ip), what="egress through the Service refused")
        assert connects(bed.other, svc.cluster_ip)  # not selected by the policy
        rule = {**CLIENT_EGRESS, "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                             "ports": [{"protocol": "TCP", "port": 80}]}]}
        bed.stub.put(network_policy("x", "client-egress", rule))  # now: web's pods on port 80
        wait_for(lambda: connects(bed.remote, svc.cluster_ip), what="egress through the Service allowed")
        assert connects(bed.remote, bed.web.ip(4))  # the same verdict as dialling web directly
    finally:
        bed.stub.delete("networkpolicies", "x", "client-egress")
        bed.stub.delete("services", "x", "websvc")
        flush = "iptables -t nat -F; iptables -t nat -X" if proxy == "iptables" else "nft delete table ip kube-proxy"
        subprocess.run(["ip", "netns", "exec", n2.ns, "sh", "-c", flush + "; conntrack -F 2>/dev/null; true"])
