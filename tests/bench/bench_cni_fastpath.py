#!/usr/bin/env python3
"""The CNI fast path, side by side: podwire via podwire-cnid, podwire standalone (in
process), and the reference bridge + host-local, with the same conflist shape.

- Sequential: N ADD+DEL cycles, the three variants interleaved (A/B/C), so machine
  noise hits all alike; median and p90 per variant and the ratio to the reference.
- Burst: M concurrent ADDs, then M concurrent DELs, per variant (R rounds, interleaved,
  medians): wall time, ratio to the reference, duplicate addresses (must be 0), leftovers after the DELs (must be 0).
  podwire-cnid's DEL retires the veth and deletes it afterwards: leftovers count its
  retired veths too, once it reports none pending (how long that took is printed).
- The goal of issue 14 beside each ratio: the daemon at <= 0.8x the reference.
- Peak RSS (VmHWM) of the daemon.

Every variant is exec'd the way a runtime execs it, podwire's executables as `make install`
writes them (the C thin client, cni/daemon/client.c; standalone, it execs the interpreter).  Prints a table and writes it
to tests/bench/results/cni_fastpath.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from cnitest import REFERENCE_PLUGIN_DIR, Daemon, run_plugin, unique  # noqa: E402

from cni.daemon import wire  # noqa: E402
from cni.daemon.handler import HEALTH  # noqa: E402
from cni.demo import release_run_netns, run_netns_mounted  # noqa: E402
from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
REFERENCE = "reference bridge + host-local"
DAEMON = "podwire via podwire-cnid"
NATIVE = "podwire via podwire-cnid, C client (opt-in)"
TARGET = 0.8  # issue 14: the daemon path at <= 0.8x the reference, per cycle and in the burst


class Variant:
    def __init__(self, label: str, plugin: str, ipam: str, subnet: str, work: str, socket_path: str | None,
                 bin_dir: str = ""):
        self.label, self.plugin, self.bin_dir = label, plugin, bin_dir
        self.bridge = unique("pwbn")
        self.data_dir = os.path.join(work, f"ipam-{plugin}-{len(label)}")
        # Reference plugins in /usr/lib/cni speak up to 1.0.0: the same version for all.
        self.conf = {"cniVersion": "1.0.0", "name": unique("bench-", 16), "type": plugin,
                     "bridge": self.bridge, "isGateway": True,
                     "ipam": {"type": ipam, "subnet": subnet, "dataDir": self.data_dir,
                              "routes": [{"dst": "0.0.0.0/0"}]}}
        self.env = {} if socket_path is None else {"PODWIRE_CNID_SOCKET": socket_path}

    def run(self, bin_dir: str, command: str, cid: str, netns: str) -> dict | None:
        code, out = run_plugin(self.bin_dir or bin_dir, self.plugin, command, self.conf, container_id=cid, netns=netns,
                               extra_env=self.env)
        if code != 0:
            raise SystemExit(f"{self.label}: {command} {cid} failed: {out}")
        return out

    def leftovers(self) -> int:
        """Leases, bridge ports and host veths tagged with this network (retired ones too)."""
        lease_dir = os.path.join(self.data_dir, self.conf["name"])
        leases = [n for n in os.listdir(lease_dir) if n[0].isdigit()] if os.path.isdir(lease_dir) else []
        ports = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", self.bridge],
                                          capture_output=True, text=True).stdout or "[]")
        links = json.loads(subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True,
                                          text=True).stdout or "[]")
        tagged = [link for link in links if link.get("ifalias", "").startswith(f"podwire:{self.conf['name']}/")]
        return len(leases) + len(ports) + len(tagged)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def sequential(variants, bin_dir, netns, cycles) -> dict[str, list[float]]:
    samples = {v.label: [] for v in variants}
    for i in range(cycles + 1):
        for v in variants:
            ms = timed(lambda: (v.run(bin_dir, "ADD", f"seq{i}", netns), v.run(bin_dir, "DEL", f"seq{i}", netns)))
            if i:  # the first round warms caches and creates the bridges
                samples[v.label].append(ms)
    return samples


def burst(v: Variant, bin_dir: str, namespaces: list[str], daemon: Daemon) -> dict:
    pods = [(f"burst{i}", ns) for i, ns in enumerate(namespaces)]
    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        start = time.perf_counter()
        adds = list(pool.map(lambda p: v.run(bin_dir, "ADD", *p), pods))
        add_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        list(pool.map(lambda p: v.run(bin_dir, "DEL", *p), pods))
        del_ms = (time.perf_counter() - start) * 1000
    drain_ms = _drained_ms(daemon, start) if v.label in (DAEMON, NATIVE) else None
    addresses = [out["ips"][0]["address"] for out in adds]
    return {"add_ms": add_ms, "del_ms": del_ms, "duplicates": len(addresses) - len(set(addresses)),
            "leftovers": v.leftovers(), "drain_ms": drain_ms}


def bursts_interleaved(variants, bin_dir, namespaces, daemon, rounds: int) -> dict[str, dict]:
    """``rounds`` bursts per variant, A/B/C in turn like the cycles (one burst takes a second,
    long enough for the machine's load to change under a single one); medians of the times,
    sums of duplicates and leftovers."""
    runs: dict[str, list[dict]] = {v.label: [] for v in variants}
    for _ in range(max(rounds, 1)):
        for v in variants:
            runs[v.label].append(burst(v, bin_dir, namespaces, daemon))
    out = {}
    for label, results in runs.items():
        merged = {key: statistics.median(r[key] for r in results) for key in ("add_ms", "del_ms")}
        merged["total_ms"] = statistics.median(r["add_ms"] + r["del_ms"] for r in results)
        merged["duplicates"] = sum(r["duplicates"] for r in results)
        merged["leftovers"] = sum(r["leftovers"] for r in results)
        drains = [r["drain_ms"] for r in results if r["drain_ms"] is not None]
        merged["drain_ms"] = statistics.median(drains) if drains else None
        out[label] = merged
    return out


def _drained_ms(daemon: Daemon, start: float, timeout: float = 30.0) -> float:
    """ms from the first DEL until podwire-cnid has deleted every veth it retired."""
    deadline = time.monotonic() + timeout
    while _health(daemon.socket)["retired_veths"]["pending"] and time.monotonic() < deadline:
        time.sleep(0.005)
    return (time.perf_counter() - start) * 1000


def _health(path: str) -> dict:
    """What `podwire-cnid status` prints, asked in process (no interpreter start per poll)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(wire.encode_request(HEALTH.encode(), b"", b"", 0))
        return json.loads(wire.recv_answer(sock)[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--cycles", type=int, default=100)
    parser.add_argument("-b", "--burst", type=int, default=50)
    parser.add_argument("-r", "--burst-rounds", type=int, default=3,
                        help="bursts per variant, interleaved; the table shows medians")
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pw-bench-")
    bin_dir = os.path.join(work, "bin")
    write_wrappers(bin_dir, sys.executable)  # as `make install` writes them
    native_dir = os.path.join(work, "bin-native")
    write_wrappers(native_dir, sys.executable, native=True)  # `make install CNI_NATIVE_CLIENT=yes`
    for name in ("bridge", "host-local"):
        os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), os.path.join(bin_dir, name))
    os.mkdir(os.path.join(work, "cnid"))
    daemon = Daemon(os.path.join(work, "cnid")).start()
    variants = [Variant(DAEMON, "podwire", "podwire-ipam", "10.251.1.0/24", work, daemon.socket),
                Variant(NATIVE, "podwire", "podwire-ipam", "10.251.4.0/24", work, daemon.socket, native_dir),
                Variant("podwire standalone", "podwire", "podwire-ipam", "10.251.2.0/24", work, ""),
                Variant(REFERENCE, "bridge", "host-local", "10.251.3.0/24", work, None)]
    names = [unique("pwbench-", 20) for _ in range(max(opts.burst, 1))]
    netns_was_mounted = run_netns_mounted()
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
        namespaces = [f"/run/netns/{n}" for n in names]
        samples = sequential(variants, bin_dir, namespaces[0], opts.cycles)
        bursts = bursts_interleaved(variants, bin_dir, namespaces[:opts.burst], daemon, opts.burst_rounds)
        rss_kib = _peak_rss_kib(daemon.proc.pid)
    finally:
        daemon.stop()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        release_run_netns(netns_was_mounted)  # `ip netns add` left /run/netns a mount of itself
        for v in variants:
            subprocess.run(["ip", "link", "del", v.bridge], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    report(samples, bursts, rss_kib, opts)


def _target(label: str, ratio: float) -> str:
    if label not in (DAEMON, NATIVE):
        return ""
    return f"<= {TARGET}: " + ("met" if ratio <= TARGET else f"missed by {ratio / TARGET - 1:.0%}")


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def report(samples, bursts, rss_kib: int, opts) -> None:
    ref = statistics.median(samples[REFERENCE])
    ref_burst = bursts[REFERENCE]
    lines = [f"# CNI fast path, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Sequential: {opts.cycles} ADD+DEL cycles per variant, interleaved.", "",
             "| variant | median ms | p90 ms | ratio to reference | target |", "|---|---|---|---|---|"]
    for label, values in samples.items():
        med, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        lines.append(f"| {label} | {med:.1f} | {p90:.1f} | {med / ref:.2f} | {_target(label, med / ref)} |")
    lines += ["", f"Burst: {opts.burst} concurrent ADDs, then {opts.burst} concurrent DELs; {opts.burst_rounds} "
              "bursts per variant, interleaved, medians.", "",
              "| variant | ADDs ms | DELs ms | total ms | ratio to reference | target | duplicate addresses "
              "| leftovers |", "|---|---|---|---|---|---|---|---|"]
    for label, b in bursts.items():
        total = b["total_ms"]
        ratio = total / ref_burst["total_ms"]
        lines.append(f"| {label} | {b['add_ms']:.0f} | {b['del_ms']:.0f} | {total:.0f} | {ratio:.2f} | "
                     f"{_target(label, ratio)} | {b['duplicates']} | {b['leftovers']} |")
    drain = bursts[DAEMON]["drain_ms"]
    lines += ["", f"podwire-cnid deleted the {opts.burst} veths its DELs retired within {drain:.0f} ms "
                  "of the first DEL (median; leftovers are counted after that)."]
    lines += ["", f"podwire-cnid peak RSS (VmHWM): {rss_kib / 1024:.1f} MiB"]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "cni_fastpath.md"), "w") as f:
        f.write(text)
    failed = [label for label, b in bursts.items() if b["duplicates"] or b["leftovers"]]
    if failed:
        raise SystemExit(f"duplicates or leftovers: {', '.join(failed)}")


if __name__ == "__main__":
    main()
