#!/usr/bin/env python3
"""Node-level benchmark (issue 14): the podwire node stack against containerd with the reference
CNI plugins, through the CRI socket, driven by the same gRPC client.

podwire runs as a node runs it: podwire-netpol, podwire-cnid and podwire-cri all up (each on a
private socket, state and pin directory), podwire-cri talking to the agent, the podwire CNI
plugin reaching the daemon (PODWIRE_CNID_SOCKET) and the agent's CNI hook (netpolSocket), with
the installed conflist (packaging/cni/10-podwire.conflist: bridge, isGateway, ipMasq,
hairpinMode, IPv4 + IPv6 ranges, then portmap) on a private bridge, subnets and IPAM dir.

containerd runs with the reference plugins in the same shape: bridge (isGateway, ipMasq,
hairpinMode) with host-local over an IPv4 and an IPv6 range, then portmap (what containerd's
own example conflist has), plus the loopback plugin it runs by itself; its sandbox image is
busybox sleeping, from the same local registry.

Measured in one run, the two stacks interleaved (one pod or container on each in turn):
  * pod life cycle: RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox;
  * container life cycle in one pod: Create, Start, Status, Stop (timeout 0), Remove;
  * memory (RSS, PSS, USS) of each stack idle and with --density pods running one container
    each: podwire-netpol + podwire-cnid (and its namespace broker) + podwire-cri + conmons,
    against containerd + its shims.

With --netpol-rules N (issue 16), podwire only, against itself: RunPodSandbox and Stop +
RemovePodSandbox of pods the policies select (namespace bench, role server / client) with no
policies vs with bench_netpol.py's manifest (2 policies x N ipBlock rules) applied through the
agent's client.  Rounds alternate (ABBA: none, rules, rules, none, ...); a rules round applies the
manifest first and deletes it after, so each one's first server and first client pod are the
first the policies isolate (they write the policies' allow entries for their subject) and are
reported apart from the median of the round's later pods.  Writes tests/bench/results/netpol_runp.md.

Benchmarks print ratio tables of side-by-side medians; nothing here asserts a time.  Writes
tests/bench/results/node.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

import grpc  # noqa: E402
from cri_api.v1 import api_pb2 as api  # noqa: E402

import bench_cri  # noqa: E402
from bench_cri import (CTR_OPS, POD_OPS, SETTLE_S, Containerd, Podwire, container_cycle,  # noqa: E402
                       density, memory_kib, pod_config, pod_cycle, remove_pods)
from cnitest import REFERENCE_PLUGIN_DIR, Daemon, unique  # noqa: E402
from crihelpers import remove_cgroup_tree  # noqa: E402
from localregistry import LocalRegistry  # noqa: E402
from netpolnet import AgentProcess  # noqa: E402
from testimages import ImagePusher, ImageSpec  # noqa: E402

from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(HERE, "results")
INSTALLED_CONFLIST = os.path.join(HERE, "..", "..", "packaging", "cni", "10-podwire.conflist")
GOALS = {"pods": 0.8, "StopPodSandbox": 1.0, "ctrs": 0.8}
MEMORY_GOALS = {"idle": 1.0, "busy": 1.5, "busy-policy": 1.5}
POLICY_RULES = 1000  # busy-policy: 2 policies of 500 ipBlock rules (+1 selector rule each), every pod selected
SHAPES = {"installed": " (bridge, ipMasq, IPv4 + IPv6, portmap)",
          "minimal": ", made minimal on both sides (IPv4 only, no ipMasq; bridge, portmap)"}


class PodwireNode(Podwire):
    """podwire-cri with the node's other two daemons; its memory counts all three."""

    def __init__(self, work: str, run: str = "") -> None:
        super().__init__(work, run)
        for d in ("agent", "cnid"):
            os.makedirs(os.path.join(work, d), exist_ok=True)
        self.agent = AgentProcess(os.path.join(work, "agent"))
        self.cnid = Daemon(os.path.join(work, "cnid"))

    def start_daemons(self) -> None:
        # In run_stack.py's order: the agent first, then the CNI daemon.
        self.agent.start()
        self.cnid.start()

    def start(self, conf_dir: str, bin_dir: str, netpol_socket: str = "", env: dict | None = None) -> None:
        super().start(conf_dir, bin_dir, netpol_socket=self.agent.socket,
                      env={"PODWIRE_CNID_SOCKET": self.cnid.socket})

    def pids(self) -> list[int]:
        daemons = [p.pid for p in (self.agent.proc, self.cnid.proc) if p is not None]
        return super().pids() + [pid for d in daemons for pid in [d, *_descendants(d)]]

    def stop(self) -> None:
        super().stop()
        self.cnid.stop()
        self.agent.close()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def networks(work: str, agent_cni_socket: str, shape: str) -> tuple[str, str, str, list[str]]:
    """(podwire conf dir, containerd conf dir, bin dir, bridges).  ``shape`` "minimal": both
    conflists IPv4 only and without ipMasq (what neither side's firewall work is in)."""
    bin_dir = os.path.join(work, "cni-bin")
    write_wrappers(bin_dir, sys.executable)
    for name in os.listdir(REFERENCE_PLUGIN_DIR):
        os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), os.path.join(bin_dir, name))
    pw_dir, cd_dir = os.path.join(work, "net.d-podwire"), os.path.join(work, "net.d-containerd")
    os.makedirs(pw_dir)
    os.makedirs(cd_dir)
    with open(INSTALLED_CONFLIST) as f:
        pw = json.load(f)
    pw_bridge, cd_bridge = unique("pwnb"), unique("cdnb")
    main = pw["plugins"][0]
    main.update(bridge=pw_bridge, netpolSocket=agent_cni_socket)
    main["ipam"].update(dataDir=os.path.join(work, "ipam-podwire"),
                        ranges=[[{"subnet": "10.247.0.0/22"}], [{"subnet": "fd47::/64"}]])
    pw["name"] = unique("pwnode-", 20)
    # The reference in the same shape (containerd's example conflist has these fields).
    cd = {"cniVersion": "1.0.0", "name": unique("cdnode-", 20), "plugins": [
        {"type": "bridge", "bridge": cd_bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": os.path.join(work, "ipam-containerd"),
                  "ranges": [[{"subnet": "10.247.4.0/22"}], [{"subnet": "fd47:1::/64"}]],
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}
    if shape == "minimal":
        for conf in (pw, cd):
            conf["plugins"][0]["ipMasq"] = False
            ipam = conf["plugins"][0]["ipam"]
            ipam["ranges"], ipam["routes"] = ipam["ranges"][:1], [{"dst": "0.0.0.0/0"}]
    for d, conf in ((pw_dir, pw), (cd_dir, cd)):
        with open(os.path.join(d, "10-bench.conflist"), "w") as f:
            json.dump(conf, f)
    return pw_dir, cd_dir, bin_dir, [pw_bridge, cd_bridge]


def measure(stacks: dict, image: str, work: str, opts) -> dict:
    res: dict = {name: {"pods": {}, "ctrs": {}} for name in stacks}
    clients = {name: rt.client() for name, rt in stacks.items()}
    logs = {name: os.path.join(work, "logs-" + name) for name in stacks}
    for name, c in clients.items():
        c.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=image)), timeout=300)
        for _ in range(2):
            pod_cycle(c, logs[name], {})               # warm-up
    for _ in range(opts.pods):
        for name, c in clients.items():
            pod_cycle(c, logs[name], res[name]["pods"])
    pods = {name: c.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_config(logs[name])),
                                     timeout=300).pod_sandbox_id for name, c in clients.items()}
    for i in range(opts.containers + 1):
        for name, c in clients.items():
            container_cycle(c, pods[name], image, i, res[name]["ctrs"] if i else {})
    for c in clients.values():
        remove_pods(c)
    time.sleep(SETTLE_S)
    for name, rt in stacks.items():
        res[name]["idle"] = memory_kib(rt.pids())
        res[name]["idle-processes"] = [(_process_name(pid), memory_kib([pid])) for pid in rt.pids()]
    for name, rt in stacks.items():
        density(clients[name], image, logs[name], opts.density)
        time.sleep(SETTLE_S)
        res[name]["busy"] = memory_kib(rt.pids())
        remove_pods(clients[name])
    if "podwire" in stacks:   # the same pods, each selected by a policy of POLICY_RULES rules in all
        from bench_netpol import rules_manifest
        pw, agent = stacks["podwire"], stacks["podwire"].agent.client
        agent.apply(rules_manifest(POLICY_RULES // 2))
        density(clients["podwire"], image, logs["podwire"], opts.density, roles=ROLES)
        time.sleep(SETTLE_S)
        res["podwire"]["busy-policy"] = memory_kib(pw.pids())
        remove_pods(clients["podwire"])
        agent.delete("bench", ("rules-in", "rules-out"))
    return res


# --- --netpol-rules: RunPodSandbox with and without the policies (issue 16) -------------------

NETPOL_GOAL = 1.1
ROLES = ("server", "client")   # bench_netpol's policies: rules-in selects role=server, rules-out role=client


def _selected_pod(log_dir: str, role: str) -> api.PodSandboxConfig:
    cfg = pod_config(log_dir)    # namespace "bench", as the manifest's
    cfg.labels["role"] = role
    return cfg


def _isolated(agent, names: set[str]) -> int:
    """How many of these pods the agent holds isolated (ingress for servers, egress for clients)."""
    eps = [e for e in agent.endpoints() if e.namespace == "bench" and e.name in names]
    return sum(1 for e in eps if e.interface and (e.ingress_isolated if e.labels.get("role") == "server"
                                                  else e.egress_isolated))


def measure_netpol(pw: "PodwireNode", work: str, opts) -> dict:
    from bench_netpol import rules_manifest
    manifest = rules_manifest(opts.netpol_rules)
    c, agent, log_dir = pw.client(), pw.agent.client, os.path.join(work, "logs-netpol")
    res: dict = {cond: {"run": [], "stop": [], "first": {r: [] for r in ROLES}, "isolated": 0, "pods": 0,
                        "apply": [], "delete": []} for cond in ("none", "rules")}

    def rpc(samples: list, fn, req, timeout: float = 300):
        t0 = time.perf_counter()
        out = fn(req, timeout=timeout)
        samples.append((time.perf_counter() - t0) * 1000)
        return out

    for role in ROLES * 2:                                    # warm-up, no policies
        pod = c.rt.RunPodSandbox(api.RunPodSandboxRequest(config=_selected_pod(log_dir, role)),
                                 timeout=300).pod_sandbox_id
        c.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        c.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    order = [cond for i in range(opts.rounds) for cond in (("none", "rules") if i % 2 == 0 else ("rules", "none"))]
    for n, cond in enumerate(order, 1):
        r = res[cond]
        if cond == "rules":
            t0 = time.perf_counter()
            agent.apply(manifest)
            r["apply"].append(time.perf_counter() - t0)
        time.sleep(opts.settle)                               # before every round, either condition
        pods, names = [], set()
        for i in range(opts.round_pods):
            role = ROLES[i % 2]
            cfg = _selected_pod(log_dir, role)
            names.add(cfg.metadata.name)
            samples = r["first"][role] if i < len(ROLES) else r["run"]
            pods.append(rpc(samples, c.rt.RunPodSandbox, api.RunPodSandboxRequest(config=cfg)).pod_sandbox_id)
        r["isolated"] += _isolated(agent, names)
        r["pods"] += len(pods)
        for pod in pods:
            t0 = time.perf_counter()
            c.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            c.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            r["stop"].append((time.perf_counter() - t0) * 1000)
        if cond == "rules":
            t0 = time.perf_counter()
            agent.delete("bench", ("rules-in", "rules-out"))
            r["delete"].append(time.perf_counter() - t0)
        med = statistics.median
        print(f"round {n}/{len(order)} ({cond}): RunPodSandbox first {r['first']['server'][-1]:.0f} / "
              f"{r['first']['client'][-1]:.0f} ms, later median {med(r['run'][-(opts.round_pods - 2):]):.0f} ms; "
              f"Stop+Remove median {med(r['stop'][-len(pods):]):.0f} ms", flush=True)
    return res


def netpol_table(res: dict, opts) -> str:
    med = statistics.median
    none, rules = res["none"], res["rules"]
    n = f"{opts.netpol_rules:,}"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")

    def row(label: str, a: list, b: list, goal: float = 0.0) -> str:
        x, y = med(a), med(b)
        note = f"≤ {goal}× ({_verdict(y / x, goal)})" if goal else "-"
        return f"| {label} | {x:.1f} | {y:.1f} | {y / x:.2f}× | {note} |"

    def spread(v: list) -> str:
        q = statistics.quantiles(v, n=4)
        return f"{q[0]:.0f}–{q[2]:.0f}"

    extra = {r: med(rules["first"][r]) - med(rules["run"]) for r in ROLES}
    lines = [f"# RunPodSandbox with and without 2 × {n} rules: podwire-netpol + podwire-cnid + podwire-cri, "
             f"through the CRI, {stamp}", "",
             f"`tests/bench/bench_node.py --netpol-rules {opts.netpol_rules}` (issue 16's first goal).  One stack "
             "against itself, as a node runs it (the installed conflist via podwire-cnid and the agent's CNI hook, "
             "runtime state on tmpfs); pods in namespace `bench` labelled `role: server` / `role: client`, which "
             f"bench_netpol.py's manifest selects (2 policies × {n} ipBlock rules, their own pod rule last; applied "
             f"as YAML through the agent's client).  {opts.rounds} rounds per condition, interleaved ABBA; each "
             f"round starts {opts.round_pods} pods (server, client, ...) one after the other, keeps them up, then "
             "stops and removes them; a rules round applies the manifest before (then waits "
             f"{opts.settle:g} s, as a round without does) and deletes it after, so its first server and first "
             "client pod are the first the policies isolate and are reported apart.  Load average at the end: "
             f"{os.getloadavg()[0]:.1f}.", "",
             f"| figure (ms, medians) | no policies | 2 × {n} rules | ratio | goal |", "|---|---|---|---|---|",
             row(f"RunPodSandbox, selected pods after the first of each role ({len(rules['run'])} per condition)",
                 none["run"], rules["run"], NETPOL_GOAL),
             row(f"StopPodSandbox + RemovePodSandbox ({len(rules['stop'])} per condition)", none["stop"],
                 rules["stop"]),
             row(f"first pod after the policies were applied: server (ingress isolated; {len(rules['first']['server'])}"
                 " rounds)", none["first"]["server"], rules["first"]["server"]),
             row(f"first pod after the policies were applied: client (egress isolated; {len(rules['first']['client'])}"
                 " rounds)", none["first"]["client"], rules["first"]["client"]),
             "",
             f"- The first pod of each role with the rules costs {extra['server']:.0f} ms (server) and "
             f"{extra['client']:.0f} ms (client) more than the later pods' median: it writes its subject's allow "
             "entries (one per rule; netpol_scale.md's in-process figure: 127 ms).  In the rounds without policies "
             "the first pods are the first after the pause, for a like-for-like column.",
             f"- RunPodSandbox interquartile range: {spread(none['run'])} ms without, {spread(rules['run'])} ms "
             f"with; Stop + Remove: {spread(none['stop'])} / {spread(rules['stop'])} ms.",
             f"- Pods the agent held isolated when their round's pods were up: {none['isolated']} of {none['pods']} "
             f"without policies, {rules['isolated']} of {rules['pods']} with them.",
             f"- Applying the manifest (YAML, the client's ApplyPolicies): median {med(rules['apply']):.2f} s; "
             f"deleting it: {med(rules['delete']):.2f} s (outside the pod figures)."]
    return "\n".join(lines) + "\n"


def _process_name(pid: int) -> str:
    """The daemon a process is: its command's first podwire-ish word (or the program)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return str(pid)
    for arg in argv:
        base = os.path.basename(arg)
        if base.startswith(("podwire", "containerd", "conmon")) or arg in ("cni.daemon.main", "netpol.cli"):
            return base
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        return argv[argv.index("-m") + 1]
    return os.path.basename(argv[0]) if argv else str(pid)


def _verdict(ratio: float, goal: float) -> str:
    return "met" if ratio <= goal else f"missed by {(ratio / goal - 1) * 100:.0f}%"


def table(res: dict, opts) -> str:
    pw, cd = res["podwire"], res["containerd"]
    med = statistics.median
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"# Node stacks: podwire (netpol + cnid + cri) vs containerd {bench_cri._containerd_version()} "
             f"+ reference plugins, {stamp}", "",
             f"Medians in ms over {opts.pods} pods and {opts.containers} containers, the stacks interleaved, "
             f"same client; podwire with the installed conflist{SHAPES[opts.shape]} via podwire-cnid and the "
             f"agent's hook; containerd with bridge + host-local + portmap in the same shape.  Load average "
             f"at the end: {os.getloadavg()[0]:.1f}.", "",
             "| operation | podwire | containerd | ratio | goal |", "|---|---|---|---|---|"]
    for group, ops in (("pods", POD_OPS), ("ctrs", CTR_OPS)):
        tot_pw = tot_cd = 0.0
        for op in ops:
            a, b = med(pw[group][op]), med(cd[group][op])
            tot_pw, tot_cd = tot_pw + a, tot_cd + b
            goal = GOALS.get(op)
            note = f"≤ {goal} ({_verdict(a / b, goal)})" if goal else ""
            lines.append(f"| {op} | {a:.1f} | {b:.1f} | {a / b:.2f} | {note} |")
        label = "pod life cycle total" if group == "pods" else "container life cycle total"
        r = tot_pw / tot_cd
        lines.append(f"| **{label}** | **{tot_pw:.1f}** | **{tot_cd:.1f}** | **{r:.2f}** | "
                     f"≤ {GOALS[group]} ({_verdict(r, GOALS[group])}) |")
    lines += ["", "Memory in MiB: podwire = podwire-netpol + podwire-cnid (with its namespace broker) + "
                  "podwire-cri + conmons; containerd = containerd + shims (the sandbox processes of neither "
                  f"counted); busy = {opts.density} pods with one running container each, no policies; busy-policy "
                  f"= the same with every pod selected by policies of {POLICY_RULES} rules in all (podwire only; "
                  "compared with containerd's busy figure).", "",
              "| state | metric | podwire | containerd | ratio | goal (RSS) |", "|---|---|---|---|---|---|"]
    for key in ("idle", "busy", "busy-policy"):
        theirs = cd["busy" if key == "busy-policy" else key]   # containerd has no policy to hold
        pn, cn = pw[key][3], theirs[3]
        for i, metric in enumerate(("RSS", "PSS", "USS")):
            a, b = pw[key][i] / 1024, theirs[i] / 1024
            goal = f"≤ {MEMORY_GOALS[key]} ({_verdict(a / b, MEMORY_GOALS[key])})" if metric == "RSS" else ""
            lines.append(f"| {key} ({pn} / {cn} processes) | {metric} | {a:.1f} | {b:.1f} | {a / b:.2f} | {goal} |")
    lines += ["", "Idle, per process (MiB; where the idle figure goes):", "",
              "| stack | process | RSS | PSS | USS |", "|---|---|---|---|---|"]
    for stack in ("podwire", "containerd"):
        for proc, (rss, pss, uss, _) in res[stack].get("idle-processes", []):
            lines.append(f"| {stack} | {proc} | {rss / 1024:.1f} | {pss / 1024:.1f} | {uss / 1024:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--density", type=int, default=20)
    parser.add_argument("--shape", choices=("installed", "minimal"), default="installed",
                        help="installed: both conflists as installed (ipMasq, IPv4 + IPv6); minimal: "
                             "IPv4 only, no ipMasq, on both sides")
    parser.add_argument("--netpol-rules", type=int, default=0, metavar="N",
                        help="podwire only: RunPodSandbox of pods the policies select, without vs with "
                             "bench_netpol.py's 2 x N-rule manifest (writes netpol_runp.md)")
    parser.add_argument("--rounds", type=int, default=4, help="--netpol-rules: rounds per condition")
    parser.add_argument("--round-pods", type=int, default=6, help="--netpol-rules: pods per round (>= 3)")
    parser.add_argument("--settle", type=float, default=2.0, help="--netpol-rules: seconds before each round")
    parser.add_argument("--output", default="", help="default tests/bench/results/node[-minimal].md "
                                                     "(--netpol-rules: netpol_runp.md)")
    opts = parser.parse_args()
    netpol = opts.netpol_rules > 0
    if netpol and opts.round_pods < len(ROLES) + 1:
        parser.error(f"--round-pods must be at least {len(ROLES) + 1}")
    opts.output = opts.output or os.path.join(RESULTS, "netpol_runp.md" if netpol else
                                              "node.md" if opts.shape == "installed" else f"node-{opts.shape}.md")
    if os.geteuid() != 0 or not shutil.which("runc") or not (netpol or shutil.which("containerd")):
        print("bench_node: needs root, containerd and runc (--netpol-rules: root and runc); skipped")
        return 0
    work = tempfile.mkdtemp(prefix="pw-node-bench-")
    os.environ.setdefault("PODWIRE_NETPOL_BPF_CACHE", os.path.join(work, "bpf-cache"))  # compiled once, here
    run = tempfile.mkdtemp(prefix="pw-node-bench-", dir="/run")   # tmpfs, as on a node
    new_cgroups = [p for p in (bench_cri.PODWIRE_CGROUP_PARENT, bench_cri.CONTAINERD_CGROUP_PARENT)
                   if not bench_cri._cgroup_exists(p)]
    registry = None
    pw, cd = PodwireNode(work, run), Containerd(work, run)
    bridges: list[str] = []
    started: list = []
    try:
        if netpol:   # no image: podwire's sandboxes have no pause container
            started.append(pw)
            pw.start_daemons()
            pw_conf, _, bin_dir, bridges = networks(work, pw.agent.cni_socket, opts.shape)
            pw.start(pw_conf, bin_dir)
            text = netpol_table(measure_netpol(pw, work, opts), opts)
            print(text)
            os.makedirs(os.path.dirname(opts.output), exist_ok=True)
            with open(opts.output, "w") as f:
                f.write(text)
            return 0
        registry = LocalRegistry(os.path.join(work, "registry"), os.path.join(work, "registry-storage")).start()
        os.makedirs(os.path.join(work, "layouts"))
        pusher = ImagePusher(registry.host, os.path.join(work, "layouts"))
        image = pusher.push("podwire-bench/busybox:1.0")
        pause = pusher.push("podwire-bench/pause:1.0", ImageSpec(cmd=["sleep", "2147483647"]))
        started.append(pw)
        pw.start_daemons()
        pw_conf, cd_conf, bin_dir, bridges = networks(work, pw.agent.cni_socket, opts.shape)
        pw.start(pw_conf, bin_dir)
        started.append(cd)
        cd.start(cd_conf, bin_dir, pause)
        results = measure({"podwire": pw, "containerd": cd}, image, work, opts)
        text = table(results, opts)
        print(text)
        os.makedirs(os.path.dirname(opts.output), exist_ok=True)
        with open(opts.output, "w") as f:
            f.write(text)
        return 0
    finally:
        for rt in started:
            try:
                remove_pods(rt.client())
            except grpc.RpcError:
                pass
            rt.stop()
        for b in bridges:
            bench_cri.subprocess.run(["ip", "link", "del", b], capture_output=True)
        bench_cri._cleanup(run, "")
        bench_cri._cleanup(work, "")
        for parent in new_cgroups:
            remove_cgroup_tree(parent)
        if registry is not None:
            registry.stop()


if __name__ == "__main__":
    sys.exit(main())
