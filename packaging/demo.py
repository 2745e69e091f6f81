#!/usr/bin/env python3
"""`make demo`, once the node stack is up: NetworkPolicy at work, one line per step.

Two throwaway pods ("web" and "client", namespace podwire-demo) are wired through the
installed conflist as a runtime wires them (the runtime library, Kubernetes CNI_ARGS, so the
policy agent registers them).  The client pings the web pod; a policy that denies all
ingress in the namespace is applied with `podwire-netpol apply`; the ping fails, the drop
shows in `podwire-netpol drops` and in the agent's metrics; the policy is deleted and the
ping works again.  Everything is torn down at the end, also on failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

from cni.demo import release_run_netns, run_netns_mounted
from cni.libcni import CNIConfig, RuntimeConf, load_default_network

NAMESPACE = "podwire-demo"
POLICY = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-ingress, namespace: {NAMESPACE}}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress]
"""


class Demo:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.netlist = load_default_network(opts.conf_dir)
        self.cni = CNIConfig([opts.bin_dir] + [d for d in ("/usr/lib/cni",) if os.path.isdir(d)])
        self.tag = uuid.uuid4().hex[:6]
        self.pods: dict[str, tuple[str, RuntimeConf, str]] = {}   # name -> (netns, conf, IPv4)
        self.step = 0
        self.bridges = [p.get("bridge", "podwire0") for p in self.netlist.plugins
                        if p.get("type") == "podwire" and p.get("mode", "bridge") == "bridge"]
        self.preexisting = {b for b in self.bridges
                            if subprocess.run(["ip", "link", "show", b], capture_output=True).returncode == 0}

    def say(self, line: str) -> None:
        self.step += 1
        print(f"demo {self.step:>2}. {line}", flush=True)

    def netpol(self, *argv: str, stdin: str | None = None) -> str:
        proc = subprocess.run([self.opts.netpol, *argv], input=stdin, capture_output=True, text=True, timeout=60)
        if proc.returncode:
            raise RuntimeError(f"podwire-netpol {' '.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def wire(self, name: str) -> None:
        netns = f"podwire-demo-{name}-{self.tag}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        conf = RuntimeConf(container_id=netns, netns=f"/run/netns/{netns}", ifname="eth0",
                           args=[("K8S_POD_NAMESPACE", NAMESPACE), ("K8S_POD_NAME", name)])
        self.pods[name] = (netns, conf, "")
        result = self.cni.add_network_list(self.netlist, conf)
        ipv4 = next(ip["address"].split("/")[0] for ip in result["ips"] if "." in ip["address"])
        self.pods[name] = (netns, conf, ipv4)

    def ping(self, src: str, dst: str) -> bool:
        netns, ip = self.pods[src][0], self.pods[dst][2]
        return subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", ip],
                              capture_output=True).returncode == 0

    def drops_total(self) -> float | None:
        """The agent's drop counters summed, from its metrics; None when it serves none."""
        try:
            with urllib.request.urlopen(f"http://{self.opts.metrics}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("podwire_netpol_drops_total"))

    def run(self) -> int:
        for name in ("web", "client"):
            self.wire(name)
        web, client = self.pods["web"][2], self.pods["client"][2]
        self.say(f"two pods in namespace {NAMESPACE}: web {web}, client {client}")
        if not self.ping("client", "web"):
            self.say("client -> web: no reply before any policy; stopping")
            return 1
        self.say("client -> web: ping answered (no policy yet)")
        drops_before = self.drops_total()
        self.netpol("apply", "-f", "-", stdin=POLICY)
        self.say(f"applied NetworkPolicy {NAMESPACE}/deny-ingress (podSelector {{}}, no ingress rule)")
        if self.ping("client", "web"):
            self.say("client -> web: ping still answered: the policy is not enforced")
            return 1
        self.say("client -> web: no reply: denied")
        seen = self.wait_for_drop(client, web)
        self.say(f"podwire-netpol drops: {seen}" if seen else "podwire-netpol drops: no entry for client -> web")
        drops_after = self.drops_total()
        if drops_before is None or drops_after is None:
            self.say(f"metrics: not served at {self.opts.metrics} (podwire-netpol serve --metrics-address)")
        else:
            self.say(f"metrics: podwire_netpol_drops_total went from {drops_before:g} to {drops_after:g}")
        self.netpol("delete", "-n", NAMESPACE, "deny-ingress")
        self.say("deleted the policy")
        back = self.ping("client", "web")
        self.say("client -> web: ping answered again" if back else "client -> web: still no reply")
        moved = drops_before is not None and drops_after is not None and drops_after > drops_before
        return 0 if seen and back and moved else 1

    def wait_for_drop(self, src: str, dst: str) -> str:
        """The agent's record of the denied ping (one JSON object per line), as one line."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.netpol("drops", "-o", "json").splitlines():
                drop = json.loads(line)
                if (drop.get("src_ip"), drop.get("dst_ip")) == (src, dst):
                    return (f"{drop.get('src_pod') or src} -> {drop.get('dst_pod') or dst} {drop.get('protocol', '')}, "
                            f"{drop.get('direction', '')} of {drop.get('isolated_pod', '?')}: {drop.get('reason', '')}")
            time.sleep(0.2)
        return ""

    def clean_up(self) -> None:
        subprocess.run([self.opts.netpol, "delete", "-n", NAMESPACE, "--ignore-not-found", "deny-ingress"],
                       capture_output=True, timeout=60)
        for netns, conf, _ in reversed(list(self.pods.values())):
            try:
                self.cni.del_network_list(self.netlist, conf)
            finally:
                subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        for bridge in set(self.bridges) - self.preexisting:     # the node had none: leave none
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        self.say("cleaned up: pods, namespaces, addresses and the policy are gone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf-dir", default="/etc/cni/net.d")
    parser.add_argument("--bin-dir", default="/opt/cni/bin")
    parser.add_argument("--netpol", default="/usr/local/bin/podwire-netpol", help="the agent's CLI")
    parser.add_argument("--metrics", default="127.0.0.1:9742", help="the agent's metrics address")
    opts = parser.parse_args()
    netns_was_mounted = run_netns_mounted()
    demo = Demo(opts)
    try:
        return demo.run()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        demo.clean_up()
        release_run_netns(netns_was_mounted)


if __name__ == "__main__":
    sys.exit(main())
