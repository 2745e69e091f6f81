"""A multi-node test bed on one machine: "nodes" are network namespaces, each with its own
podwire-cnid (private socket, state, lease dir and pod-CIDRs file), its own pod bridge, and
pods (more namespaces) wired by the podwire plugin exec'd inside the node's namespace, as
a kubelet there would.  The Kubernetes API is tests/kubestub.py, which every node's daemon
reaches on 127.0.0.1 inside its namespace through the official client.

Two underlays:
- ``l2``: one bridge in an "underlay" namespace, a veth to each node; nodes share
  192.168.50.0/24 and fc00:50::/64 (host-gw's case).  The bridge holds .254/::fe, an
  address outside the cluster (masquerade checks).
- ``routed``: a router namespace, each node in a subnet of its own (172.16.<i>.0/24,
  fc00:<i>::/64) with a default route via the router (no shared L2: vxlan's case).  The
  router's addresses are outside the cluster.

Node <i> gets pod CIDRs 10.244.<i>.0/24 and fd00:244:<i>::/64.  Everything the bed made
(processes, namespaces) goes in :meth:`Bed.close`; every name starts with the bed's
unique prefix, so nothing else is touched.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

from kubestub import KubeStub, node as node_object, pod as pod_object

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*argv: str, check: bool = True, timeout: float = 30) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def nsexec(ns: str, *argv: str, check: bool = True, timeout: float = 30) -> str:
    return sh("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)


def in_netns(ns: str) -> list[str]:
    """Enter the network namespace only: podwire-cnid serves clients of its own network *and*
    mount namespaces, and `ip netns exec` makes a new mount namespace each time."""
    return ["nsenter", f"--net=/run/netns/{ns}"]


class Node:
    def __init__(self, bed: "Bed", index: int) -> None:
        self.bed, self.index = bed, index
        self.name = f"n{index}"
        self.ns = f"{bed.prefix}-n{index}"
        self.workdir = os.path.join(bed.workdir, self.name)
        self.socket = os.path.join(self.workdir, "cni.sock")
        self.cidrs_file = os.path.join(self.workdir, "pod-cidrs.json")
        self.pod_cidrs = [f"10.244.{index}.0/24", f"fd00:244:{index}::/64"]
        if bed.underlay == "l2":
            self.addresses = [f"192.168.50.{index}", f"fc00:50::{index}"]
        else:
            self.addresses = [f"172.16.{index}.2", f"fc00:{index}::2"]
        self.proc: subprocess.Popen | None = None
        self.pods: list[Pod] = []
        self.agent = None  # a netpolnet.AgentProcess once start_agent() ran

    # -- the daemon ------------------------------------------------------------------------------
    def start(self, mode: str | None = None, timeout: float = 30, wait: bool = True, *extra: str) -> "Node":
        mode = mode or self.bed.mode
        kubeconfig = self.bed.stub.kubeconfig(os.path.join(self.workdir, "kubeconfig"), netns=self.ns)
        log = open(os.path.join(self.workdir, "cnid.log"), "ab")
        self.proc = subprocess.Popen(
            [*in_netns(self.ns), sys.executable, "-m", "cni.daemon", "serve",
             "--socket", self.socket, "--config", os.path.join(self.workdir, "none.toml"),
             "--pod-cidrs-file", self.cidrs_file, "--metrics-address", "", "--node-name", self.name,
             "--kubeconfig", kubeconfig, "--routing", mode, *extra], stdout=log, stderr=log, cwd=ROOT)
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def start_agent(self) -> "Node":
        """podwire-netpol in the node's namespace, learning pods, namespaces, policies and
        Services of the whole cluster from the API stub (its pods register via the CNI hook)."""
        from netpolnet import AgentProcess
        kubeconfig = self.bed.stub.kubeconfig(os.path.join(self.workdir, "kubeconfig"), netns=self.ns)
        self.agent = AgentProcess(self.workdir, netns=f"/run/netns/{self.ns}",
                                  extra=("--kubernetes", "--kubeconfig", kubeconfig, "--node-name", self.name))
        self.agent.start()
        return self

    def health(self) -> dict:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(self.socket)
        except OSError:
            return {"ready": False, "problems": ["not answering"]}
        out = sh(*in_netns(self.ns), sys.executable, "-m", "cni.daemon", "status", "--socket", self.socket, "--config",
                 os.path.join(self.workdir, "none.toml"), check=False)
        return json.loads(out) if out.strip() else {"ready": False, "problems": ["no answer"]}

    def wait_ready(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            report = self.health()
            if report.get("ready"):
                return report
            if (self.proc and self.proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"podwire-cnid of {self.name} not ready: {report}\n{self.log()}")
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        try:
            with open(os.path.join(self.workdir, "cnid.log"), errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    # -- what the kernel holds -------------------------------------------------------------------
    def routes(self) -> set[str]:
        """podwire's routes (proto 112), as "dst via gw"."""
        out = set()
        for family in ("-4", "-6"):
            for line in sh("ip", "-n", self.ns, family, "route", "show", "proto", "112").splitlines():
                words = line.split()
                out.add(f"{words[0]} via {words[2]}")
        return out

    def fdb(self) -> set[str]:
        text = sh("bridge", "-n", self.ns, "fdb", "show", "dev", "podwire.vxlan", check=False)
        return {" ".join(line.split()[:3]) for line in text.splitlines() if line.strip()}

    def neighbours(self) -> set[str]:
        out = set()
        for family in ("-4", "-6"):
            text = sh("ip", "-n", self.ns, family, "neigh", "show", "dev", "podwire.vxlan", "nud", "permanent",
                      check=False)
            out |= {line.split()[0] for line in text.splitlines() if line.strip()}
        return out

    def vxlan_details(self) -> str:
        """`ip -d link show podwire.vxlan`: the device's id, local address, port..."""
        return sh("ip", "-n", self.ns, "-d", "link", "show", "podwire.vxlan", check=False)

    def has_link(self, name: str) -> bool:
        return subprocess.run(["ip", "-n", self.ns, "link", "show", name], capture_output=True).returncode == 0

    def nat_table(self) -> str:
        return sh("ip", "netns", "exec", self.ns, "nft", "list", "table", "inet", "podwire-nat", check=False)

    def inside_cluster(self, address: str) -> bool:
        """Is ``address`` in the masquerade table's cluster set (so not masqueraded)?"""
        family = 6 if ":" in address else 4
        return subprocess.run(["ip", "netns", "exec", self.ns, "nft", "get", "element", "inet", "podwire-nat",
                               f"cluster{family}", f"{{ {address} }}"], capture_output=True).returncode == 0

    # -- pods ------------------------------------------------------------------------------------
    def add_pod(self, key: str = "", labels: dict | None = None) -> "Pod":
        """A pod wired by the plugin; with ``key`` ("namespace/name") it is also a Pod object in
        the API, put before ADD with its labels and again after with its addresses, as the
        kubelet's status update does."""
        pod = Pod(self, len(self.pods) + 1, key, labels)
        self.pods.append(pod)
        pod.publish()
        pod.add()
        pod.publish()
        return pod


class Pod:
    def __init__(self, node: Node, index: int, key: str = "", labels: dict | None = None) -> None:
        self.node = node
        self.ns = f"{node.ns}p{index}"
        self.container_id = f"{node.name}-pod{index}-{uuid.uuid4().hex[:8]}"
        self.key, self.labels = key, dict(labels or {})
        self.ips: list[str] = []
        self.added = False

    def publish(self, labels: dict | None = None) -> None:
        """Put (or update) this pod's object in the API stub; a no-op for an unnamed pod."""
        if labels is not None:
            self.labels = dict(labels)
        if self.key:
            namespace, name = self.key.split("/")
            self.node.bed.stub.put(pod_object(namespace, name, self.labels, self.ips, node_name=self.node.name))

    def conf(self) -> dict:
        hook = {"netpolSocket": self.node.agent.cni_socket} if self.node.agent else {}
        return {"cniVersion": "1.0.0", "name": "pwn", "type": "podwire", "bridge": "pwbr0", "isGateway": True, **hook,
                # ipMasq off: with routing on, podwire-cnid's podwire-nat table masquerades (docs/cni.md)
                "ipam": {"type": "podwire-ipam", "dataDir": os.path.join(self.node.workdir, "ipam"),
                         "ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]],
                         "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}

    def cni(self, command: str) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": self.container_id, "CNI_NETNS": f"/run/netns/{self.ns}", "CNI_IFNAME": "eth0",
               "CNI_PATH": self.node.bed.bin_dir, "PODWIRE_CNID_SOCKET": self.node.socket,
               "PODWIRE_POD_CIDRS_FILE": self.node.cidrs_file}
        if self.key:
            namespace, name = self.key.split("/")
            env["CNI_ARGS"] = f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}"
        proc = subprocess.run([*in_netns(self.node.ns), os.path.join(self.node.bed.bin_dir, "podwire")],
                              input=json.dumps(self.conf()).encode(), env=env, capture_output=True, timeout=60)
        out = proc.stdout.decode().strip()
        if proc.returncode != 0:
            raise RuntimeError(f"CNI {command} in {self.node.name}: {out} {proc.stderr.decode()}")
        return json.loads(out) if out else {}

    def add(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.node.bed.namespaces.append(self.ns)
        result = self.cni("ADD")
        self.added = True
        self.ips = [ip["address"].split("/")[0] for ip in result["ips"]]

    def ip(self, family: int) -> str:
        return next(a for a in self.ips if (":" in a) == (family == 6))

    def mtu(self) -> int:
        return int(sh("ip", "-n", self.ns, "-o", "link", "show", "eth0").split(" mtu ")[1].split()[0])

    def ping(self, address: str) -> bool:
        """One reply of up to three: a new pod's first IPv6 echo can go while neighbour
        discovery along the path is still settling (the link-local address in DAD)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, "ping", "-c", "3", "-i", "0.3", "-W", "2",
                               "-q", address], capture_output=True).returncode == 0


# A TCP server that answers one connection with the peer address it saw, after reading
# the whole request (so a large request exercises the path MTU).
_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print('ready', flush=True)
s.settimeout(20); c, peer = s.accept(); c.settimeout(20)
n = int(c.recv(16).split(b' ')[0]); got = 0
while got < n:
    chunk = c.recv(65536)
    if not chunk: break
    got += len(chunk)
c.sendall(f'{peer[0]} {got}'.encode()); c.close()
"""
_CLIENT = """
import socket, sys
n = int(sys.argv[3])
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(f'{n:<15} '.encode() + b'x' * n); c.shutdown(socket.SHUT_WR)
print(c.recv(200).decode())
"""


def tcp_exchange(client_ns: str, server_ns: str, address: str, size: int = 200_000, port: int = 7070) -> str:
    """Send ``size`` bytes from client_ns to address:port served in server_ns; the source
    address the server saw (checked: every byte arrived)."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-S", "-c", _SERVER, address,
                               str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready", server.stderr.read()
        answer = nsexec(client_ns, sys.executable, "-S", "-c", _CLIENT, address, str(port), str(size)).split()
        assert answer[1] == str(size), answer
        return answer[0]
    finally:
        server.kill()
        server.wait()


class Bed:
    def __init__(self, workdir: str, mode: str, underlay: str, bin_dir: str) -> None:
        self.workdir, self.mode, self.underlay, self.bin_dir = str(workdir), mode, underlay, bin_dir
        self.prefix = f"pwn-{uuid.uuid4().hex[:6]}"
        self.hub = f"{self.prefix}-u"  # the underlay bridge's or the router's namespace
        self.namespaces: list[str] = []
        self.nodes: dict[str, Node] = {}
        self.stub = KubeStub()
        self.outside4, self.outside6 = (("192.168.50.254", "fc00:50::fe") if underlay == "l2"
                                        else ("172.16.1.1", "fc00:1::1"))

    def _netns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def build(self, count: int) -> "Bed":
        self._netns(self.hub)
        if self.underlay == "l2":
            sh("ip", "-n", self.hub, "link", "add", "ubr", "type", "bridge")
            sh("ip", "-n", self.hub, "addr", "add", "192.168.50.254/24", "dev", "ubr")
            sh("ip", "-n", self.hub, "addr", "add", "fc00:50::fe/64", "dev", "ubr", "nodad")
            sh("ip", "-n", self.hub, "link", "set", "ubr", "up")
        else:
            nsexec(self.hub, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        for i in range(1, count + 1):
            self.add_node(i)
        return self

    def add_node(self, i: int) -> Node:
        """The node's namespace and underlay link (no daemon, no Node object yet)."""
        node = Node(self, i)
        os.makedirs(node.workdir, exist_ok=True)
        self._netns(node.ns)
        hub_end = f"u{i}"
        sh("ip", "-n", self.hub, "link", "add", hub_end, "type", "veth", "peer", "name", "eth0", "netns", node.ns)
        if self.underlay == "l2":
            sh("ip", "-n", self.hub, "link", "set", hub_end, "master", "ubr")
            local = [f"{node.addresses[0]}/24", f"{node.addresses[1]}/64"]
        else:
            sh("ip", "-n", self.hub, "addr", "add", f"172.16.{i}.1/24", "dev", hub_end)
            sh("ip", "-n", self.hub, "addr", "add", f"fc00:{i}::1/64", "dev", hub_end, "nodad")
            local = [f"{node.addresses[0]}/24", f"{node.addresses[1]}/64"]
        sh("ip", "-n", self.hub, "link", "set", hub_end, "up")
        sh("ip", "-n", node.ns, "addr", "add", local[0], "dev", "eth0")
        sh("ip", "-n", node.ns, "addr", "add", local[1], "dev", "eth0", "nodad")
        sh("ip", "-n", node.ns, "link", "set", "eth0", "up")
        if self.underlay == "routed":
            sh("ip", "-n", node.ns, "route", "add", "default", "via", f"172.16.{i}.1")
            sh("ip", "-n", node.ns, "-6", "route", "add", "default", "via", f"fc00:{i}::1")
        self.nodes[node.name] = node
        return node

    def put_node(self, node: Node) -> None:
        self.stub.put(node_object(node.name, node.pod_cidrs, node.addresses))

    def delete_node(self, node: Node) -> None:
        self.stub.delete("nodes", "", node.name)

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()
            if node.agent is not None:
                node.agent.close()  # its programs go with the namespaces; its pins are in /sys/fs/bpf
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.stub.close()


def wait_for(check, timeout: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)
