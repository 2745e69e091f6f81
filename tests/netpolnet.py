"""Real pods for the netpol root tests and benchmarks: the agent as a process,
pods made by the podwire CNI plugin, a workload in each pod's namespace.

Everything made here is removed by ``Topology.close()`` (pods, namespaces,
links, the agent, its pinned maps and state), which callers run in a
``finally`` or fixture teardown.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Optional

from cnitest import Network, _ip, unique
from netpol.client import Client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POD_SCRIPT = os.path.join(HERE, "netpol_pod.py")


class AgentProcess:
    """`podwire-netpol serve` with private sockets, state and pinned maps."""

    def __init__(self, workdir: str, extra: tuple[str, ...] = (), netns: str = ""):
        self.workdir = workdir
        # Another network namespace for the agent (a test's "node"): entered with nsenter, which
        # keeps the mount namespace (ip netns exec would not), so its pins stay in the host's
        # /sys/fs/bpf where close() removes them.
        self.prefix = ["nsenter", f"--net={netns}"] if netns else []
        self.socket = os.path.join(workdir, "netpol.sock")
        self.cni_socket = os.path.join(workdir, "netpol-cni.sock")
        self.pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:10]}"
        self.extra = ("--metrics-address", "", *extra)  # not the node's 9742; a test can ask for one
        self.proc: Optional[subprocess.Popen] = None
        self.client: Optional[Client] = None

    def start(self, timeout: float = 60.0) -> "AgentProcess":
        log = open(os.path.join(self.workdir, "agent.log"), "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "netpol.cli", "--socket", self.socket, "serve", "--cni-socket", self.cni_socket,
             "--state-dir", os.path.join(self.workdir, "state"), "--pin-dir", self.pin_dir, *self.extra],
            stdout=log, stderr=log, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + timeout
        while not (os.path.exists(self.socket) and os.path.exists(self.cni_socket)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"netpol agent did not start:\n{self.log()}")
            time.sleep(0.05)
        self.client = Client(self.socket, timeout=60)
        self.client.wait_ready(timeout)
        return self

    def log(self) -> str:
        with open(os.path.join(self.workdir, "agent.log"), errors="replace") as f:
            return f.read()[-4000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.client:
            self.client.close()
            self.client = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        from netpol.datapath.loader import remove_pins
        self.stop()
        remove_pins(self.pin_dir)


class PodProcess:
    """The workload of one pod: servers plus a prober, driven over stdin/stdout."""

    def __init__(self, key: str, netns: str, ips: list[str], interface: str):
        self.key, self.netns, self.ips, self.interface = key, netns, ips, interface
        self.proc = subprocess.Popen(["ip", "netns", "exec", os.path.basename(netns), sys.executable, "-S",
                                      POD_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError(f"pod {key}: workload did not start")
        self.sctp = json.loads(ready)["sctp"]  # "sockets" (real associations) or "raw" (INIT/INIT-ACK)

    def send(self, command: dict) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        return json.loads(self.proc.stdout.readline())

    def call(self, command: dict) -> dict:
        self.send(command)
        return self.receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "quit"})
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Topology:
    """Namespaces and pods on one podwire network, registered with one agent."""

    def __init__(self, cni_bin: str, workdir: str, mode: str = "bridge", dual: bool = True):
        self.workdir = workdir
        octet = int(uuid.uuid4().hex[:2], 16)
        self.network = Network(name=unique("pwnp-", 20), bridge=unique("pwnpbr"),
                               subnet4=f"10.{200 + octet % 50}.{octet}.0/24", subnet6=f"fd{octet:02x}:77::/64",
                               data_dir=os.path.join(workdir, "ipam"), bin_dir=cni_bin)
        self.agent = AgentProcess(workdir)
        self.conf = self.network.conf(dual=dual, mode=mode, netpolSocket=self.agent.cni_socket)
        self.pods: dict[str, PodProcess] = {}
        self._netns: list[str] = []
        self._added: list[tuple[str, str]] = []  # (container id, netns path)

    def start(self) -> "Topology":
        self.agent.start()
        return self

    @property
    def client(self) -> Client:
        return self.agent.client

    def add_pod(self, key: str, labels: dict, ports: tuple = (), workload: bool = True) -> PodProcess | dict:
        """Like a CRI shim: tell the agent the pod's labels and named ports, then CNI ADD
        (the plugin registers the interface and addresses), then start the containers."""
        ns, name = key.split("/")
        self.client.upsert_endpoint(ns, name, labels, ports=ports, fields=("labels", "ports"))
        netns_name = unique("pwnp-", 24)
        _ip("netns", "add", netns_name)
        self._netns.append(netns_name)
        netns = f"/run/netns/{netns_name}"
        _ip("-n", netns_name, "link", "set", "lo", "up")
        cid = f"{ns}-{name}-{uuid.uuid4().hex[:8]}"
        code, result = self.network.run("ADD", self.conf, cid, netns,
                                        cni_args=f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}")
        if code != 0:
            raise RuntimeError(f"CNI ADD {key}: {result}\n{self.agent.log()}")
        self._added.append((cid, netns))
        ips = [ip["address"].split("/")[0] for ip in result["ips"]]
        host = next(i["name"] for i in result["interfaces"] if "sandbox" not in i and i["name"].startswith("pw"))
        if not workload:
            return {"netns": netns, "ips": ips, "interface": host, "container_id": cid}
        pod = self.pods[key] = PodProcess(key, netns, ips, host)
        return pod

    def probe(self, probes: dict[str, list], timeout: float) -> dict:
        """probes: source pod key -> [(id, dst ip, proto, port)]; all sources in parallel."""
        for key, batch in probes.items():
            self.pods[key].send({"op": "probe", "timeout": timeout, "probes": batch})
        out = {}
        for key in probes:
            out.update(self.pods[key].receive()["results"])
        return out

    def close(self) -> None:
        for pod in self.pods.values():
            pod.close()
        for cid, netns in self._added:
            self.network.run("DEL", self.conf, cid, netns,
                             cni_args="")  # the hook unregisters by interface name
        for name in self._netns:
            _ip("netns", "del", name, check=False)
        self.agent.close()
        from cni.plugin import firewall
        from cni.context import STANDALONE
        from cni.plugin.gc import remove_stale_links
        remove_stale_links(STANDALONE, self.network.name, set())
        firewall.gc(self.network.name, set())
        _ip("link", "del", self.network.bridge, check=False)
