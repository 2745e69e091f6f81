"""A "node" network namespace for the Service tests: bridge, pods, agent and
kube-proxy-shaped DNAT rules all live in namespaces the test made.

Pods are wired by the podwire plugin exec'd inside the node namespace
(standalone: the session's podwire-cnid runs in the host namespace), the
agent runs there too (AgentProcess with netns), and the Services' DNAT rules
are written the way kube-proxy writes them, in iptables form (KUBE-SERVICES,
KUBE-SVC-*, KUBE-SEP-* with `statistic --mode random`) or in nftables form
(its `kube-proxy` table: verdict maps and `numgen random`).  ``close()``
removes everything; deleting the node namespace takes its bridge, veths and
rules with it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import uuid

from cnitest import Network, _ip, unique
from netpolnet import AgentProcess, PodProcess

HERE = os.path.dirname(os.path.abspath(__file__))
RESPONDER = os.path.join(HERE, "netpol_responder.py")


@dataclasses.dataclass
class SvcPort:
    proto: str        # TCP / UDP
    port: int         # the Service port
    target: int       # the backends' port
    node_port: int = 0


@dataclasses.dataclass
class Svc:
    namespace: str
    name: str
    cluster_ip: str
    ports: list[SvcPort]
    backends: list[str]  # pod keys, in kube-proxy's order
    cluster_ip6: str = ""  # dual-stack: kube-proxy's ip6tables / ip6 table get it

    def ip(self, family: int) -> str:
        return self.cluster_ip if family == 4 else self.cluster_ip6

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def manifest(self) -> dict:
        ips = [self.cluster_ip] + ([self.cluster_ip6] if self.cluster_ip6 else [])
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": self.namespace, "name": self.name},
                "spec": {"type": "NodePort" if any(p.node_port for p in self.ports) else "ClusterIP",
                         "clusterIP": self.cluster_ip, "clusterIPs": ips,
                         "ports": [{"name": f"{p.proto.lower()}-{p.port}", "protocol": p.proto, "port": p.port,
                                    "targetPort": p.target, **({"nodePort": p.node_port} if p.node_port else {})}
                                   for p in self.ports]}}


def _hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16].upper()


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def iptables_rules(services: list[Svc], ips: dict[str, str], pod_cidr: str, family: int = 4) -> str:
    """iptables-restore (ip6tables-restore) input in kube-proxy's iptables-mode shape (nat table)."""
    services = [s for s in services if s.ip(family)]
    host = "/32" if family == 4 else "/128"
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"]
    rules = ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
             '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
             '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
             "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
             "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
             "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
             "-A KUBE-POSTROUTING -j MASQUERADE --random-fully"]
    for svc in services:
        for p in svc.ports:
            name = f"{svc.key}:{p.proto.lower()}-{p.port}"
            proto = p.proto.lower()
            svc_chain, ext_chain = f"KUBE-SVC-{_hash(name)}", f"KUBE-EXT-{_hash(name)}"
            chains += [svc_chain]
            rules.append(f'-A KUBE-SERVICES -d {svc.ip(family)}{host} -p {proto} -m comment --comment "{name} cluster IP"'
                         f" -m {proto} --dport {p.port} -j {svc_chain}")
            if p.node_port:
                # externalTrafficPolicy: Local's shape: pod traffic skips the masquerade
                chains.append(ext_chain)
                rules.append(f'-A KUBE-NODEPORTS -p {proto} -m comment --comment "{name}" -m {proto} '
                             f"--dport {p.node_port} -j {ext_chain}")
                rules.append(f'-A {ext_chain} -s {pod_cidr} -m comment --comment "pod traffic for {name} external '
                             f'destinations" -j {svc_chain}')
            n = len(svc.backends)
            for i, backend in enumerate(svc.backends):
                sep = f"KUBE-SEP-{_hash(name, backend)}"
                chains.append(sep)
                stat = f" -m statistic --mode random --probability {1 / (n - i):.11f}" if i < n - 1 else ""
                to = _hostport(ips[backend], p.target)
                rules.append(f'-A {svc_chain} -m comment --comment "{name} -> {to}"{stat} -j {sep}')
                rules.append(f"-A {sep} -s {ips[backend]}{host} -j KUBE-MARK-MASQ")
                rules.append(f"-A {sep} -p {proto} -m {proto} -j DNAT --to-destination {to}")
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" -m addrtype --dst-type LOCAL '
                 "-j KUBE-NODEPORTS")
    return "*nat\n" + "".join(f":{c} - [0:0]\n" for c in chains) + "\n".join(rules) + "\nCOMMIT\n"


def nft_rules(services: list[Svc], ips: dict[str, str], pod_cidr: str, family: int = 4) -> str:
    """nft -f input in kube-proxy's nftables-mode shape (table ip / ip6 kube-proxy)."""
    services = [s for s in services if s.ip(family)]
    nfamily, ipx, addr_type, loopback = ("ip", "ip", "ipv4_addr", "127.0.0.0/8") if family == 4 else \
        ("ip6", "ip6", "ipv6_addr", "::1")
    chains, ip_elems, np_elems = [], [], []
    for svc in services:
        for p in svc.ports:
            proto = p.proto.lower()
            base = f"{svc.namespace}/{svc.name}/{proto}/{proto}-{p.port}"
            svc_chain = f"service-{_hash(base)[:8]}-{base}"
            eps = []
            for backend in svc.backends:
                ep = f"endpoint-{_hash(base, backend)[:8]}-{base}__{ips[backend].replace(':', '.')}/{p.target}"
                eps.append(ep)
                chains.append(f"chain {ep} {{\n  {ipx} saddr {ips[backend]} jump mark-for-masquerade\n"
                              f"  meta l4proto {proto} dnat to {_hostport(ips[backend], p.target)}\n}}")
            vmap = ", ".join(f"{i} : goto {ep}" for i, ep in enumerate(eps))
            chains.append(f"chain {svc_chain} {{\n  numgen random mod {len(eps)} vmap {{ {vmap} }}\n}}")
            ip_elems.append(f"{svc.ip(family)} . {proto} . {p.port} : goto {svc_chain}")
            if p.node_port:
                ext = f"external-{_hash(base)[:8]}-{base}"
                chains.append(f"chain {ext} {{\n  {ipx} saddr {pod_cidr} goto {svc_chain}\n}}")
                np_elems.append(f"{proto} . {p.node_port} : goto {ext}")
    maps = (f"map service-ips {{\n  type {addr_type} . inet_proto . inet_service : verdict\n"
            f"  elements = {{ {', '.join(ip_elems)} }}\n}}\n")
    maps += "map service-nodeports {\n  type inet_proto . inet_service : verdict\n" + \
        (f"  elements = {{ {', '.join(np_elems)} }}\n" if np_elems else "") + "}\n"
    return (f"table {nfamily} kube-proxy {{\n" + maps +
            "chain mark-for-masquerade {\n  mark set mark or 0x4000\n}\n"
            "chain masquerading {\n  type nat hook postrouting priority srcnat; policy accept;\n"
            "  mark and 0x4000 == 0 return\n  mark set mark xor 0x4000\n  masquerade fully-random\n}\n"
            f"chain services {{\n  {ipx} daddr . meta l4proto . th dport vmap @service-ips\n"
            f"  fib daddr type local {ipx} daddr != {loopback} meta l4proto . th dport vmap @service-nodeports\n}}\n"
            "chain nat-prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n  jump services\n}\n"
            "chain nat-output {\n  type nat hook output priority -100; policy accept;\n  jump services\n}\n"
            + "\n".join(chains) + "\n}\n")


class Node:
    """The node namespace with its bridge network, agent and pods."""

    def __init__(self, workdir: str, bin_dir: str):
        self.workdir = workdir
        self.name = unique("pwsvcn-", 24)
        self.path = f"/run/netns/{self.name}"
        octet = int(uuid.uuid4().hex[:2], 16)
        self.network = Network(name=unique("pwsvc-", 20), bridge=unique("pwsvcbr"),
                               subnet4=f"10.{200 + octet % 50}.{octet}.0/24", subnet6=f"fd{octet:02x}:78::/64",
                               data_dir=os.path.join(workdir, "ipam"), bin_dir=bin_dir)
        self.agent = AgentProcess(workdir, netns=self.path)
        self.conf = self.network.conf(dual=True, netpolSocket=self.agent.cni_socket)
        self.pods: dict[str, PodProcess] = {}
        self.ips: dict[str, str] = {}   # IPv4
        self.ips6: dict[str, str] = {}
        self._netns: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._mode = ""

    def start(self) -> "Node":
        _ip("netns", "add", self.name)
        self.sh("ip link set lo up; sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
                "net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1")
        self.agent.start()
        return self

    @property
    def client(self):
        return self.agent.client

    def sh(self, script: str, stdin: str = "") -> str:
        proc = subprocess.run(["ip", "netns", "exec", self.name, "sh", "-ec", script], input=stdin,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"in {self.name}: {script}: {proc.stderr}")
        return proc.stdout

    def _plugin(self, command: str, cid: str, netns: str, cni_args: str = "") -> tuple[int, dict | None]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": self.network.bin_dir,
               "PODWIRE_CNID_SOCKET": ""}  # standalone: the session's daemon is in the host namespace
        if cni_args:
            env["CNI_ARGS"] = cni_args
        proc = subprocess.run(["nsenter", f"--net={self.path}", os.path.join(self.network.bin_dir, "podwire")],
                              input=json.dumps(self.conf).encode(), env=env, capture_output=True, timeout=60)
        out = proc.stdout.decode().strip()
        return proc.returncode, (json.loads(out) if out else None)

    def add_pod(self, key: str, labels: dict, responder: str = "") -> PodProcess:
        """A pod with the usual workload (TCP/UDP echo on 80, 81) and, if ``responder`` is
        "whoami" or "dns", netpol_responder.py beside it."""
        ns, name = key.split("/")
        self.client.upsert_endpoint(ns, name, labels, fields=("labels",))
        netns_name = unique("pwsvcp-", 24)
        _ip("netns", "add", netns_name)
        self._netns.append(netns_name)
        netns = f"/run/netns/{netns_name}"
        _ip("-n", netns_name, "link", "set", "lo", "up")
        cid = f"{ns}-{name}-{uuid.uuid4().hex[:8]}"
        code, result = self._plugin("ADD", cid, netns, f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}")
        if code != 0:
            raise RuntimeError(f"CNI ADD {key}: {result}\n{self.agent.log()}")
        ips = [i["address"].split("/")[0] for i in result["ips"]]
        host = next(i["name"] for i in result["interfaces"] if "sandbox" not in i and i["name"].startswith("pw"))
        pod = self.pods[key] = PodProcess(key, netns, ips, host)
        self.ips[key] = next(ip for ip in ips if ":" not in ip)
        self.ips6[key] = next(ip for ip in ips if ":" in ip)
        if responder:
            proc = subprocess.Popen(["ip", "netns", "exec", netns_name, sys.executable, "-S", RESPONDER, responder,
                                     key], stdout=subprocess.PIPE, text=True)
            self._procs.append(proc)
            if not proc.stdout.readline():
                raise RuntimeError(f"{key}: responder did not start")
        return pod

    def run_in(self, key: str, *args: str, timeout: float = 60) -> dict:
        """netpol_responder.py's client side in a pod: one JSON answer."""
        netns_name = os.path.basename(self.pods[key].netns)
        proc = subprocess.run(["ip", "netns", "exec", netns_name, sys.executable, "-S", RESPONDER, *args],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{key}: {args}: {proc.stderr}")
        return json.loads(proc.stdout)

    @property
    def gateway(self) -> str:
        return self.network.gateway4()

    def proxy(self, mode: str, services: list[Svc]) -> None:
        """Replace the DNAT rules with kube-proxy's for ``services`` in ``mode`` (iptables / nftables)."""
        self.unproxy()
        self._mode = mode
        v6 = any(s.cluster_ip6 for s in services)
        if mode == "iptables":
            self.sh("iptables-restore --noflush", iptables_rules(services, self.ips, self.network.subnet4))
            if v6:
                self.sh("ip6tables-restore --noflush", iptables_rules(services, self.ips6, self.network.subnet6, 6))
        else:
            self.sh("nft -f -", nft_rules(services, self.ips, self.network.subnet4))
            if v6:
                self.sh("nft -f -", nft_rules(services, self.ips6, self.network.subnet6, 6))

    def unproxy(self) -> None:
        if self._mode == "iptables":  # only ours: the node namespace is the test's
            self.sh("iptables -t nat -F; iptables -t nat -X; ip6tables -t nat -F; ip6tables -t nat -X")
        elif self._mode == "nftables":
            self.sh("nft delete table ip kube-proxy; nft delete table ip6 kube-proxy 2>/dev/null || true")
        if self._mode:  # a flow must not keep the previous mode's DNAT
            self.sh("command -v conntrack >/dev/null && conntrack -F >/dev/null 2>&1 || true")
        self._mode = ""

    def close(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()
        for pod in self.pods.values():
            pod.close()
        for name in self._netns:
            _ip("netns", "del", name, check=False)
        self.agent.close()
        _ip("netns", "del", self.name, check=False)  # its bridge, veths and rules with it
