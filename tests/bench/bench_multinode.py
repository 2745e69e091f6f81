#!/usr/bin/env python3
"""Pod-to-pod throughput across nodes, host-gw and vxlan, against the underlay alone.

Two multi-node beds (tests/nodebed.py: nodes are network namespaces, each with its own
podwire-cnid fed by the in-test API stub, pods wired by the podwire plugin):
- host-gw: two nodes on one L2 underlay (a bridge);
- vxlan: two nodes in different subnets behind a router namespace.

For each bed, iperf3 (one TCP stream) from a pod on n1 to a pod on n2, and -- the same
path with no podwire in between -- from n1 to n2 over the underlay alone, IPv4 and IPv6.
Variants are measured round-robin, the median of several rounds is reported, as a ratio
to the underlay.  Prints the table and writes it to tests/bench/results/multinode_throughput.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from nodebed import Bed, wait_for  # noqa: E402

from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(HERE, "results")
PORT = 5201
BEDS = {"host-gw": "l2", "vxlan": "routed"}


def iperf(client_ns: str, address: str, seconds: int) -> float:
    """Gbit/s received by the server."""
    out = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", address, "-p", str(PORT), "-t",
                          str(seconds), "-J"], capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise RuntimeError(f"iperf3 {client_ns} -> {address}: {out.stdout[-500:]} {out.stderr}")
    return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def measure(mode: str, workdir: str, bin_dir: str, runs: int, seconds: int) -> dict[str, list[float]]:
    bed = Bed(os.path.join(workdir, mode), mode, BEDS[mode], bin_dir)
    servers: list[subprocess.Popen] = []
    try:
        bed.build(2)
        n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
        for node in (n1, n2):
            bed.put_node(node)
        for node in (n1, n2):
            node.start()
        a, b = n1.add_pod(), n2.add_pod()
        wait_for(lambda: len(n1.routes()) == 2 and len(n2.routes()) == 2, what="routes")
        assert a.ping(b.ip(4)) and a.ping(b.ip(6))
        for ns in (n2.ns, b.ns):
            servers.append(subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s", "-p", str(PORT)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        paths = {"underlay IPv4": (n1.ns, n2.addresses[0]), f"pod {mode} IPv4": (a.ns, b.ip(4)),
                 "underlay IPv6": (n1.ns, n2.addresses[1]), f"pod {mode} IPv6": (a.ns, b.ip(6))}
        results: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(runs):
            for name, (ns, address) in paths.items():
                results[name].append(iperf(ns, address, seconds))
        results[f"pod MTU {mode}"] = [float(a.mtu())]
        return results
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        bed.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_multinode: needs root (network namespaces)", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="pwbench-mn-") as workdir:
        bin_dir = os.path.join(workdir, "bin")
        write_wrappers(bin_dir, sys.executable)
        for mode in BEDS:
            res = measure(mode, workdir, bin_dir, args.runs, args.seconds)
            mtu = int(res.pop(f"pod MTU {mode}")[0])
            for family in ("IPv4", "IPv6"):
                base = statistics.median(res[f"underlay {family}"])
                pod = statistics.median(res[f"pod {mode} {family}"])
                rows.append((mode, family, base, pod, mtu))
    header = (f"# Pod-to-pod throughput across nodes, {time.strftime('%Y-%m-%d %H:%M')}\n\n"
              f"Two nodes (network namespaces) per bed, podwire-cnid in each fed by the API stub; iperf3, one TCP "
              f"stream, {args.seconds} s, median of {args.runs} rounds (variants round-robin). \"underlay\" is the "
              f"same two nodes talking over their underlay addresses with no podwire in between (host-gw: one L2 "
              f"bridge; vxlan: two subnets behind a router namespace). Pod path: pod veth -> node bridge -> "
              f"route (host-gw) or podwire.vxlan (vxlan) -> underlay -> the other node -> its bridge -> pod: a veth "
              f"and a bridge more on each side than the underlay path, plus VXLAN's encapsulation and its 50 bytes "
              f"less MTU. All namespaces share one {os.cpu_count()}-CPU machine (sender, receiver and every "
              f"forwarding hop compete for it), so the ratios are the figures to compare.\n\n")
    lines = ["| mode | family | underlay alone Gbit/s | pod-to-pod Gbit/s | pod / underlay | pod MTU |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {f} | {b:.2f} | {p:.2f} | {p / b:.2f} | {mtu} |" for m, f, b, p, mtu in rows]
    text = header + "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "multinode_throughput.md"), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
