#!/usr/bin/env python3
"""NetworkPolicy datapath cost, side by side: eBPF (podwire-netpol) vs iptables.

Two pods made by the podwire CNI plugin (routed mode, so iptables' FORWARD
chain sees their traffic too), the netpol agent running:

- TCP throughput (iperf3, one stream) and request/response latency (1-byte
  round trips on one connection, "rr", and with a new connection each, "crr")
  with: no programs; the eBPF programs and no policy; 1,000 and 10,000 ipBlock
  rules selecting the pair (server ingress and client egress, the pair's own
  rule last); the same rules as iptables rules, generated the way an
  iptables-based enforcer without ipsets would (a chain per pod and direction,
  one rule per CIDR and port), evaluated per packet, and again behind the usual
  "ESTABLISHED,RELATED -j ACCEPT" shortcut.
- Policy change latency: 100 times, revoke the rule that admits a 1 kHz UDP
  stream; time from calling apply (and from apply returning) to the first
  dropped packet's kernel timestamp.  With 0 and with 10,000 rules in place.

Goals (issue 4): 1,000 rules >= 0.95 of no policy; at 10,000 rules eBPF >= 5x
iptables; change enforced within 50 ms p99.  Prints a table and writes it to
tests/bench/results/netpol.md.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from netpolnet import Topology  # noqa: E402

from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(HERE, "results")
RR = os.path.join(HERE, "netpol_rr.py")
IPERF_PORT, RR_PORT, UDP_PORT = 5201, 5202, 5203
CHAIN = "PWBENCH"


def policy(name: str, selector: str, direction: str, rules: list[str]) -> str:
    body = "\n".join(rules) if rules else " []"
    return (f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: bench}}\n"
            f"spec:\n  podSelector: {{matchLabels: {{role: {selector}}}}}\n"
            f"  policyTypes: [{'Ingress' if direction == 'ingress' else 'Egress'}]\n  {direction}:{body}\n")


def cidr(i: int) -> str:
    return f"172.{16 + i // 65536}.{(i // 256) % 256}.{i % 256}/32"  # never the pods' addresses


def rules_manifest(count: int) -> str:
    def rules(peer_key: str, last: str) -> list[str]:
        out = [f"\n  - {peer_key}: [{{ipBlock: {{cidr: {cidr(i)}}}}}]\n    ports: [{{port: {IPERF_PORT}}}]"
               for i in range(count)]
        extra = f", {{port: {UDP_PORT}, protocol: UDP}}" if peer_key == "to" else ""  # the change-latency stream
        return out + [f"\n  - {peer_key}: [{{podSelector: {{matchLabels: {{role: {last}}}}}}}]\n"
                      f"    ports: [{{port: {IPERF_PORT}}}, {{port: {RR_PORT}}}{extra}]"]
    return (policy("rules-in", "server", "ingress", rules("from", "client"))
            + policy("rules-out", "client", "egress", rules("to", "server")))


def ns_exec(netns: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", os.path.basename(netns), *cmd], capture_output=True, text=True,
                          **kw)


def spawn(netns: str, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", os.path.basename(netns), *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class Bench:
    def __init__(self, topo: Topology, server: dict, client: dict, seconds: int, runs: int):
        self.topo, self.server, self.client, self.seconds, self.runs = topo, server, client, seconds, runs
        self.samples: dict[str, dict[str, list[float]]] = {}

    def measure(self, label: str) -> None:
        """One sample of every metric for ``label`` (variants are measured round-robin, so
        noise from the rest of the machine spreads over all of them alike)."""
        out = ns_exec(self.client["netns"], "iperf3", "-c", self.server["ips"][0], "-p", str(IPERF_PORT), "-t",
                      str(self.seconds), "-J", timeout=self.seconds + 30)
        result = json.loads(out.stdout or "{}")
        gbps = result.get("end", {}).get("sum_received", {}).get("bits_per_second", 0.0) / 1e9
        rr = json.loads(ns_exec(self.client["netns"], sys.executable, "-S", RR, "measure", self.server["ips"][0],
                                str(RR_PORT), "2000", "200", timeout=120).stdout or '{"rr": [0], "crr": [0]}')
        sample = self.samples.setdefault(label, {"gbps": [], "rr": [], "crr": []})
        sample["gbps"].append(gbps)
        sample["rr"] += rr["rr"]
        sample["crr"] += rr["crr"]
        print(f"  {label}: {gbps:.2f} Gbit/s, rr p50 {statistics.median(rr['rr']):.0f} us", flush=True)

    def program_cost(self, label: str, programs) -> None:
        """Nanoseconds per packet of each program, in the kernel (BPF_PROG_TEST_RUN, 100,000
        runs) on a data packet of an allowed connection: the rule-count independence in one number."""
        from netpolpackets import TCP_ACK, frame

        from netpol.datapath.testrun import run_timed
        data = frame(self.client["ips"][0], self.server["ips"][0], "TCP", 40000, IPERF_PORT, flags=TCP_ACK)
        index = {pod["interface"]: int(open(f"/sys/class/net/{pod['interface']}/ifindex").read())
                 for pod in (self.client, self.server)}
        _, to_ns = run_timed(programs.fd("to_pod"), data, index[self.server["interface"]], 999, 100_000)
        _, from_ns = run_timed(programs.fd("from_pod"), data, index[self.client["interface"]],
                               index[self.client["interface"]], 100_000)
        sample = self.samples.setdefault(label, {"gbps": [], "rr": [], "crr": []})
        sample.setdefault("to_ns", []).append(to_ns)
        sample.setdefault("from_ns", []).append(from_ns)

    def rows(self) -> list[tuple]:
        def med(s, k):
            return statistics.median(s[k]) if s.get(k) else None
        return [(label, med(s, "gbps"), med(s, "rr"), _pct(s["rr"], 99), med(s, "crr"), med(s, "from_ns"),
                 med(s, "to_ns")) for label, s in self.samples.items()]

    # -- the eBPF side ---------------------------------------------------------------------------
    def attach(self, on: bool) -> None:
        c = self.topo.client
        for key, pod in (("bench/server", self.server), ("bench/client", self.client)):
            ns, name = key.split("/")
            if on:
                c.upsert_endpoint(ns, name, {"role": name}, ips=tuple(pod["ips"]), interface=pod["interface"])
            else:
                c.remove_endpoint(ns, name)

    # -- the iptables side -----------------------------------------------------------------------
    def iptables(self, count: int, conntrack: bool) -> None:
        lines = ["*filter", f":{CHAIN} - [0:0]", f":{CHAIN}-IN - [0:0]", f":{CHAIN}-OUT - [0:0]"]
        if conntrack:
            lines.append(f"-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
        lines += [f"-A {CHAIN} -o {self.server['interface']} -j {CHAIN}-IN",
                  f"-A {CHAIN} -i {self.client['interface']} -j {CHAIN}-OUT"]
        for i in range(count):
            lines.append(f"-A {CHAIN}-IN -s {cidr(i)} -p tcp -m tcp --dport {IPERF_PORT} -j RETURN")
            lines.append(f"-A {CHAIN}-OUT -d {cidr(i)} -p tcp -m tcp --dport {IPERF_PORT} -j RETURN")
        lines += [f"-A {CHAIN}-IN -s {self.client['ips'][0]} -j RETURN", f"-A {CHAIN}-IN -j DROP",
                  f"-A {CHAIN}-OUT -d {self.server['ips'][0]} -j RETURN", f"-A {CHAIN}-OUT -j DROP", "COMMIT", ""]
        subprocess.run(["iptables-restore", "--noflush"], input="\n".join(lines), text=True, check=True)
        subprocess.run(["iptables", "-I", "FORWARD", "1", "-j", CHAIN], check=True)

    def iptables_off(self) -> None:
        subprocess.run(["iptables", "-D", "FORWARD", "-j", CHAIN], capture_output=True)
        for chain in (CHAIN, f"{CHAIN}-IN", f"{CHAIN}-OUT"):
            subprocess.run(["iptables", "-F", chain], capture_output=True)
        for chain in (CHAIN, f"{CHAIN}-IN", f"{CHAIN}-OUT"):
            subprocess.run(["iptables", "-X", chain], capture_output=True)

    # -- policy change latency -------------------------------------------------------------------
    def change_latency(self, changes: int) -> tuple[list[float], list[float]]:
        c = self.topo.client
        allow = policy("lat", "server", "ingress",
                       [f"\n  - from: [{{podSelector: {{matchLabels: {{role: client}}}}}}]\n    ports: [{{port: {UDP_PORT}, protocol: UDP}}]",
                        "\n  - ports: [{port: %d}, {port: %d}]" % (IPERF_PORT, RR_PORT)])
        deny = policy("lat", "server", "ingress", ["\n  - ports: [{port: %d}, {port: %d}]" % (IPERF_PORT, RR_PORT)])
        c.apply(allow)
        sender = spawn(self.client["netns"], sys.executable, "-S", "-c", _SENDER % (self.server["ips"][0], UDP_PORT))
        events: queue.Queue = queue.Queue()
        stream = c.drops(recent=0, follow=True, timeout=3600)
        threading.Thread(target=_pump, args=(stream, events), daemon=True).start()
        from_call, from_return = [], []
        try:
            time.sleep(0.5)
            for _ in range(changes):
                t0 = time.monotonic_ns()
                c.apply(deny)
                t1 = time.monotonic_ns()
                first = _first_drop(events, t0)
                if first is not None:
                    from_call.append((first - t0) / 1e6)
                    from_return.append((first - t1) / 1e6)
                c.apply(allow)
                time.sleep(0.02)
                _drain(events)
        finally:
            stream.cancel()
            sender.kill()
            sender.wait()
            c.delete("bench", ("lat",), ignore_not_found=True)
        return from_call, from_return


_SENDER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    s.sendto(b"x", (%r, %d))
    time.sleep(0.001)
"""


def _pump(stream, events: queue.Queue) -> None:
    try:
        for event in stream:
            events.put(event)
    except Exception:  # cancelled at the end of the measurement
        pass


def _first_drop(events: queue.Queue, after_ns: int, timeout: float = 2.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            ev = events.get(timeout=0.05)
        except queue.Empty:
            continue
        if ev.dst_port == UDP_PORT and ev.isolated_pod == "bench/server" and ev.monotonic_ns >= after_ns:
            return ev.monotonic_ns
    return None


def _drain(events: queue.Queue) -> None:
    while True:
        try:
            events.get_nowait()
        except queue.Empty:
            return


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def report(bench: Bench, latency: dict[str, tuple[list[float], list[float]]], args) -> str:
    rows = bench.rows()
    base = next(r for r in rows if r[0] == "eBPF, no policy")
    ipt10k = next((r for r in rows if r[0] == "iptables, 10,000 rules"), None)
    lines = [f"# NetworkPolicy datapath, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Two pods, routed mode, iperf3 single TCP stream ({args.seconds} s; median of {args.runs} rounds, "
             "variants measured round-robin); "
             f"rr/crr: 1-byte round trips ({args.runs} x 2000 on one connection / {args.runs} x 200 with a new connection "
             "each, Python client, so absolute values include interpreter time).", "",
             "| variant | Gbit/s | vs eBPF no policy | vs iptables 10k | rr p50 us | rr p99 us | crr p50 us "
             "| from_pod ns/pkt | to_pod ns/pkt |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, gbps, rr50, rr99, crr, from_ns, to_ns in rows:
        vs_ipt = f"{gbps / ipt10k[1]:.1f}x" if ipt10k and ipt10k[1] else "-"
        cost = f"{from_ns:.0f} | {to_ns:.0f}" if from_ns is not None else "- | -"
        lines.append(f"| {label} | {gbps:.2f} | {gbps / base[1]:.2f} | {vs_ipt} | {rr50:.0f} | {rr99:.0f} | {crr:.0f} "
                     f"| {cost} |")
    lines += ["", f"Policy change -> first dropped packet ({args.changes} changes, ms; a negative time after "
              "return means the drop happened before apply returned):", "",
              "| rules in place | apply call -> drop p50 | p99 | apply return -> drop p50 | p99 | missed |",
              "|---|---|---|---|---|---|"]
    for label, (call, ret) in latency.items():
        lines.append(f"| {label} | {_pct(call, 50):.1f} | {_pct(call, 99):.1f} | {_pct(ret, 50):.1f} | "
                     f"{_pct(ret, 99):.1f} | {args.changes - len(call)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="eBPF vs iptables NetworkPolicy benchmark")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rules", type=int, nargs="*", default=[1000, 10000])
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_netpol: needs root (namespaces, BPF, iptables); skipped")
        return 0
    work = tempfile.mkdtemp(prefix="pw-bench-netpol-")
    bin_dir = os.path.join(work, "bin")
    os.makedirs(bin_dir)
    write_wrappers(bin_dir, sys.executable)
    topo = Topology(bin_dir, work, mode="routed", dual=False)
    procs: list[subprocess.Popen] = []
    bench = None
    try:
        topo.start()
        server = topo.add_pod("bench/server", {"role": "server"}, workload=False)
        client = topo.add_pod("bench/client", {"role": "client"}, workload=False)
        procs.append(spawn(server["netns"], "iperf3", "-s", "-p", str(IPERF_PORT)))
        procs.append(spawn(server["netns"], sys.executable, "-S", RR, "serve", str(RR_PORT)))
        time.sleep(0.5)
        bench = Bench(topo, server, client, args.seconds, args.runs)
        from netpol.datapath.loader import Programs
        programs = Programs(topo.agent.pin_dir)  # the agent's maps, for BPF_PROG_TEST_RUN timings
        print("policy change latency:", flush=True)
        latency = {"none": bench.change_latency(args.changes)}
        if args.rules:
            topo.client.apply(rules_manifest(args.rules[-1]))
            latency[f"{args.rules[-1]:,} rules"] = bench.change_latency(args.changes)
            topo.client.delete("bench", ("rules-in", "rules-out"))
        for run in range(args.runs):
            print(f"round {run + 1}/{args.runs}:", flush=True)
            bench.measure("eBPF, no policy")
            bench.program_cost("eBPF, no policy", programs)
            for count in args.rules:
                topo.client.apply(rules_manifest(count))
                bench.measure(f"eBPF, {count:,} rules")
                bench.program_cost(f"eBPF, {count:,} rules", programs)
                topo.client.delete("bench", ("rules-in", "rules-out"))
            bench.attach(False)
            bench.measure("no programs, no rules")
            for count in args.rules:
                for conntrack in (False, True):
                    bench.iptables(count, conntrack)
                    try:
                        bench.measure(f"iptables, {count:,} rules" + (" + ct shortcut" if conntrack else ""))
                    finally:
                        bench.iptables_off()
            bench.attach(True)
        programs.close()
        text = report(bench, latency, args)
        print("\n" + text)
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "netpol.md"), "w") as f:
            f.write(text)
        return 0
    finally:
        if bench is not None:
            bench.iptables_off()
        for proc in procs:
            proc.kill()
            proc.wait()
        topo.close()


if __name__ == "__main__":
    sys.exit(main())
