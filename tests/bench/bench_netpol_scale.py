#!/usr/bin/env python3
"""NetworkPolicy at scale (issue 16): the control plane with 10,000 rules and thousands of pods.

The agent runs in process on the kernel datapath (programs loaded with bcc, maps pinned in a
private directory, tc programs attached to veths made here); the rules are bench_netpol.py's
manifest (2 policies x 10,000 ipBlock rules selecting the pods, their own pod rule last).

- pod registration ("RunPodSandbox-equivalent"): UpsertEndpoint of a selected pod with its host
  veth, returning once the programs are attached and the maps hold it, with 10k rules vs none;
- applying the 20,000 rules;
- policy change -> enforced: with 10k rules in place, revoke the rule admitting a flow; time from
  the apply call until the maps hold it, then BPF_PROG_TEST_RUN confirms the packet is dropped;
- pod add with 5,000 pods known (remote pods from 50 label sets): call -> maps holding it;
- agent RSS (in fresh processes, the median of 3 each) with 0/1,000/5,000 remote pods and 0/10,000
  rules, a server and a client pod on the node in each (their allow entries in the compiler when
  there are rules); the programs load from the compile cache (no BPF compiler in the agent), so
  the rules' and pods' Python objects are what grows.

Prints a table and writes tests/bench/results/netpol_scale.md.  Needs root.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from bench_netpol import rules_manifest  # noqa: E402

from netpol.model import NamedPort, Pod  # noqa: E402

RESULTS = os.path.join(HERE, "results")
NS = "bench"


def make_agent(pin_dir: str):
    from netpol.agent.core import Agent
    from netpol.agent.store import Store
    from netpol.datapath.kernel import KernelDatapath
    agent = Agent(KernelDatapath(pin_dir, 0), Store(None))
    agent.start()
    return agent


def remote_pod(i: int) -> Pod:
    address = f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"
    return Pod(NS, f"r{i}", (("app", f"a{i % 50}"), ("role", "peer")), (address,), (NamedPort("http", "TCP", 8080),))


def veth() -> tuple[str, str]:
    name = f"pwsc{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    return name, name + "p"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def register_local(agent, i: int, labels: tuple = ()) -> float:
    """UpsertEndpoint with the host veth (what the CNI hook does) -> programs attached, maps written;
    then the pod goes again (CNI DEL)."""
    host, _ = veth()
    try:
        pod = Pod(NS, f"server{i}", (("role", "server"), *labels), (f"10.99.0.{10 + i % 200}",), interface=host)
        gc.collect()
        start = time.perf_counter()
        agent.upsert_endpoint(pod)
        seconds = time.perf_counter() - start
        agent.remove_endpoint(NS, pod.name)
        return seconds
    finally:
        subprocess.run(["ip", "link", "del", host], capture_output=True)


def runp_row() -> list[tuple[str, ...]]:
    """The through-the-CRI figure bench_node.py --netpol-rules recorded (netpol_runp.md), carried over."""
    try:
        with open(os.path.join(RESULTS, "netpol_runp.md")) as f:
            line = next(x for x in f if x.startswith("| RunPodSandbox,"))
    except (OSError, StopIteration):
        return []
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return [("RunPodSandbox through the CRI, 3 daemons up, median (bench_node.py --netpol-rules: netpol_runp.md)",
             f"{cells[1]} ms", f"{cells[2]} ms", cells[3].replace("×", "x"), "<= 1.1x")]


def change_latency(agent, changes: int) -> list[float]:
    """Revoke/restore the rule admitting 10.99.1.1 -> server on UDP 5303 (its only rule); verify by test run."""
    from netpol.datapath.testrun import TC_ACT_SHOT, run
    sys.path.insert(0, os.path.dirname(HERE))
    from netpolpackets import frame
    host, _ = veth()
    agent.upsert_endpoint(Pod(NS, "client0", (("role", "client"),), ("10.99.1.1",), interface=host))
    agent.upsert_endpoint(Pod(NS, "srv", (("role", "server"),), ("10.99.1.2",)))
    allow = ("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: toggle, namespace: bench}\n"
             "spec:\n  podSelector: {matchLabels: {role: client}}\n  policyTypes: [Egress]\n"
             "  egress: [{to: [{podSelector: {matchLabels: {role: server}}}], ports: [{port: 5303, protocol: UDP}]}]\n")
    revoke = allow.replace("port: 5303", "port: 5304")
    ifindex = int(open(f"/sys/class/net/{host}/ifindex").read())
    fd = agent.datapath.programs.fd("from_pod")
    times = []
    try:
        for i in range(changes):
            agent.apply(allow)
            start = time.perf_counter()
            agent.apply(revoke)
            times.append(time.perf_counter() - start)
            verdict = run(fd, frame("10.99.1.1", "10.99.1.2", "UDP", 40000 + i, 5303), ifindex, ifindex)
            assert verdict == TC_ACT_SHOT, "the revoked flow still passes"
    finally:
        agent.delete_policies([f"{NS}/toggle"], ignore_not_found=True)
        agent.remove_endpoint(NS, "client0")
        agent.remove_endpoint(NS, "srv")
        subprocess.run(["ip", "link", "del", host], capture_output=True)
    return times


def apply_times(agent, repeats: int) -> dict[str, list[float]]:
    """Apply bench_netpol.py's 20,000 rules (2 policies) ``repeats`` times as YAML and as JSON (a
    List, what `kubectl get -o json`-style input or the API source hands over), alternating which
    goes first, deleting them in between; each with a cold cidr cache, as for a manifest never
    seen.  Returns seconds from the call to the maps holding them ("held") and to apply returning."""
    from netpol.validation import parse_cidr
    text = rules_manifest(10000)
    texts = {"yaml": text, "json": json.dumps({"kind": "List", "items": list(yaml.safe_load_all(text))})}
    out: dict[str, list[float]] = {f"{k}_{w}": [] for k in texts for w in ("held", "returns")}
    held: list[float] = []
    agent.update_listeners.append(lambda change, seconds, ok: held.append(seconds))
    try:
        for i in range(repeats):
            for last, kind in enumerate(sorted(texts, reverse=bool(i % 2))):
                parse_cidr.cache_clear()
                held.clear()
                start = time.perf_counter()
                agent.apply(texts[kind])
                out[f"{kind}_returns"].append(time.perf_counter() - start)
                out[f"{kind}_held"].append(held[0])
                if not (last and i == repeats - 1):
                    agent.delete_policies([f"{NS}/rules-in", f"{NS}/rules-out"])
    finally:
        agent.update_listeners.pop()
    return out


def apply_rows(t: dict[str, list[float]]) -> list[tuple[str, ...]]:
    n = len(t["json_held"])
    med = {k: statistics.median(v) for k, v in t.items()}
    return [(f"apply 20,000 rules: call -> maps hold them, median of {n} (JSON; YAML in brackets)", "-",
             f"{med['json_held']:.2f} s ({med['yaml_held']:.2f} s)", "-", "<= 1 s"),
            ("... call -> apply returns (JSON; YAML in brackets)", "-",
             f"{med['json_returns']:.2f} s ({med['yaml_returns']:.2f} s)", "-", "<= 1 s")]


def pod_adds(agent, known: int, adds: int) -> list[float]:
    seconds: list[float] = []
    for i in range(known):
        agent.upsert_endpoint(remote_pod(i))
    agent.update_listeners.append(lambda change, s, ok: seconds.append(s) if change == "endpoint" else None)
    for i in range(known, known + adds):
        agent.upsert_endpoint(remote_pod(i))
    agent.update_listeners.pop()
    return seconds


def rss_child(pods: int, rules: int) -> None:
    """One agent: a server and a client pod on this node (isolated by the rules, if any: their
    allow entries are then in the compiler too), ``pods`` remote pods, ``rules`` rules."""
    pin = f"/sys/fs/bpf/pwscale-{uuid.uuid4().hex[:8]}"
    links = [veth()[0] for _ in range(2)]
    try:
        agent = make_agent(pin)
        if rules:
            agent.apply(rules_manifest(rules // 2))
        for role, link, address in zip(("server", "client"), links, ("10.99.2.1", "10.99.2.2"), strict=True):
            agent.upsert_endpoint(Pod(NS, role, (("role", role),), (address,), interface=link))
        for i in range(pods):
            agent.upsert_endpoint(remote_pod(i))
        gc.collect()
        rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
        desired = agent._desired
        print(json.dumps({"rss_kib": rss, "policy": len(desired.policy), "ipcache": len(desired.ipcache)}))
        agent.close()
    finally:
        for link in links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        from netpol.datapath.loader import remove_pins
        remove_pins(pin)  # never teardown(): it detaches our programs from every interface, others' too


def rss(pods: int, rules: int, runs: int = 3) -> dict:
    """The median RSS of ``runs`` fresh agents (a run varies by ~1 MiB: where the allocator's pages fall)."""
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(pods), str(rules)], capture_output=True,
                             text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(results, key=lambda r: r["rss_kib"])[len(results) // 2]


def main() -> int:
    # The agents here compile into a private cache (inherited by the --rss-child processes), not the node's.
    if "PODWIRE_NETPOL_BPF_CACHE" not in os.environ:
        import atexit
        import shutil
        import tempfile
        os.environ["PODWIRE_NETPOL_BPF_CACHE"] = tempfile.mkdtemp(prefix="pw-scale-bpf-")
        atexit.register(shutil.rmtree, os.environ["PODWIRE_NETPOL_BPF_CACHE"], True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--known", type=int, default=5000)
    parser.add_argument("--adds", type=int, default=200)
    parser.add_argument("--applies", type=int, default=5, help="applies of the 20,000 rules per format")
    parser.add_argument("--apply-only", action="store_true", help="time the applies only; write nothing")
    parser.add_argument("--rss-child", type=int, nargs=2)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return 0
    from netpol.datapath.loader import remove_pins
    pins = [f"/sys/fs/bpf/pwscale-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        bare, agent = make_agent(pins[0]), make_agent(pins[1])  # no rules / 10k rules, side by side
        applies = apply_times(agent, args.applies)  # leaves the rules applied
        if args.apply_only:
            bare.close()
            agent.close()
            print(json.dumps({k: statistics.median(v) for k, v in applies.items()}))
            print("\n".join("| " + " | ".join(r) + " |" for r in apply_rows(applies)))
            return 0
        # The first local pod isolated by these policies writes their entries for its subject
        # (~20,000); later ones, whatever their other labels, share them.
        first = register_local(agent, 0, (("pod-template-hash", "first"),))
        none, with_rules = [], []
        register_local(bare, 0, (("pod-template-hash", "first"),))  # both warm
        for i in range(1, args.rounds + 1):  # interleaved, alternating who goes first: the load drifts
            labels = (("pod-template-hash", f"h{i}"),)
            for sink, which in ((none, bare), (with_rules, agent))[::1 if i % 2 else -1]:
                sink.append(register_local(which, i, labels))
        bare.close()
        changes = change_latency(agent, args.changes)
        adds = pod_adds(agent, args.known, args.adds)
        agent.close()
    finally:
        for pin in pins:
            remove_pins(pin)  # our veths are gone already; never teardown() (every interface's programs)
    # restart: a new agent over the same maps and store would compile once before serving; time it
    restart = restart_time()
    budget = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "netpol_progsize.py")], capture_output=True,
                                       text=True, check=True).stdout.strip().splitlines()[-1])
    sizes = {k: rss(*k) for k in [(0, 0), (1000, 0), (5000, 0), (0, 10000), (5000, 10000)]}
    base, full = sizes[(0, 0)]["rss_kib"], sizes[(5000, 10000)]["rss_kib"]
    per_kpods = (sizes[(5000, 0)]["rss_kib"] - base) / 5 / 1024
    per_krules = (sizes[(0, 10000)]["rss_kib"] - base) / 10 / 1024
    rows = [
        ("pod registration (UpsertEndpoint + attach), median", f"{statistics.median(none) * 1e3:.1f} ms",
         f"{statistics.median(with_rules) * 1e3:.1f} ms",
         f"{statistics.median(with_rules) / statistics.median(none):.2f}x", "<= 1.1x"),
        ("the first pod isolated by these policies on the node", "-", f"{first * 1e3:.0f} ms", "-", "-"),
        *apply_rows(applies),
        ("policy change -> enforced (p50 / p99)", "-",
         f"{pct(changes, 50) * 1e3:.1f} / {pct(changes, 99) * 1e3:.1f} ms", "-", "p99 <= 10 ms"),
        (f"pod add with {args.known:,} pods known, call -> maps (p50 / p99)", "-",
         f"{pct(adds, 50) * 1e3:.2f} / {pct(adds, 99) * 1e3:.2f} ms", "-", "p99 <= 5 ms"),
        ("agent RSS, 5,000 pods + 10k rules vs none", f"{base / 1024:.0f} MiB", f"{full / 1024:.0f} MiB",
         f"{full / base:.2f}x", "<= 1.2x"),
        ("RSS growth per 1,000 pods / per 1,000 rules", "-", f"{per_kpods:.2f} / {per_krules:.2f} MiB", "-", "-"),
        ("restart with 10k rules + 1,000 pods: compile before serving", "-", f"{restart:.2f} s", "-", "-"),
        *runp_row(),
    ]
    table = "\n".join(["| figure | no rules | 10k rules | ratio | goal |", "| --- | --- | --- | --- | --- |",
                       *("| " + " | ".join(r) + " |" for r in rows)])
    programs = "\n".join(f"- {name}: {xlated:,} instructions, {verified:,} verified (of the verifier's 1,000,000)"
                          for name, (xlated, verified) in budget.items())
    entries = "\n".join(f"- {k[0]:,} pods, {k[1]:,} rules: RSS {v['rss_kib'] / 1024:.1f} MiB, "
                        f"{v['policy']:,} allow entries, {v['ipcache']:,} ipcache entries" for k, v in sizes.items())
    text = (f"# NetworkPolicy at scale (tests/bench/bench_netpol_scale.py)\n\n{time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} CPUs, kernel {os.uname().release}; agent in process on the kernel datapath; "
            f"medians of {args.rounds} registrations (interleaved with an agent without rules), "
            f"{args.applies} applies of 20,000 rules per format, {args.changes} changes, "
            f"{args.adds} pod adds; load average {os.getloadavg()[0]:.1f} at the end (other work on the machine).\n\n"
            f"{table}\n\n"
            f"Map sizes and RSS per configuration (fresh processes, programs from the compile cache; median of 3):\n"
            f"{entries}\n\nPrograms (netpol_progsize.py; per-packet lookups unchanged: ipcache, then pw_policy for the "
            f"peer identity and for ANY):\n{programs}\n\nWith real packets through the whole agent (gRPC, YAML), "
            f"bench_netpol.py measures policy change -> first dropped packet with 0 and 10,000 rules: "
            f"results/netpol.md.\n")
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "netpol_scale.md"), "w") as f:
        f.write(text)
    return 0


def restart_time() -> float:
    """Compile 10k rules + 1,000 pods in a fresh Compiler, as a restarted agent does before serving."""
    from netpol.compiler import Attachment, Compiler, IdentityAllocator
    from netpol.manifest import parse_manifest
    from netpol.model import World
    policies = parse_manifest(rules_manifest(5000)).policies
    pods = [remote_pod(i) for i in range(1000)] + [Pod(NS, "s", (("role", "server"),), ("10.99.0.1",))]
    world = World(pods, {}, policies)
    start = time.perf_counter()
    Compiler(IdentityAllocator()).compile(world, {f"{NS}/s": Attachment(1, 1)}, {p.key: 1 for p in policies})
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
