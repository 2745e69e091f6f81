#!/usr/bin/env python3
"""One CNI ADD+DEL cycle: podwire (+podwire-ipam) against the reference bridge + host-local.

Same conflist shape for both (bridge mode, gateway, dual-stack off, same /24 size), each
variant exec'd the way a runtime execs it, interleaved A/B so machine noise hits both alike.
Prints a table and writes it to tests/bench/results/cni_cycle.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from cnitest import REFERENCE_PLUGIN_DIR, run_plugin, unique  # noqa: E402

from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def conf(plugin: str, ipam: str, bridge: str, subnet: str, data_dir: str) -> dict:
    return {"cniVersion": "1.0.0", "name": f"bench-{plugin}", "type": plugin, "bridge": bridge,
            "isGateway": True, "ipam": {"type": ipam, "subnet": subnet, "dataDir": data_dir,
                                         "routes": [{"dst": "0.0.0.0/0"}]}}


def cycle(bin_dir: str, plugin: str, config: dict, netns: str, cid: str) -> float:
    start = time.perf_counter()
    code, out = run_plugin(bin_dir, plugin, "ADD", config, container_id=cid, netns=netns)
    if code != 0:
        raise SystemExit(f"{plugin} ADD failed: {out}")
    code, out = run_plugin(bin_dir, plugin, "DEL", config, container_id=cid, netns=netns)
    if code != 0:
        raise SystemExit(f"{plugin} DEL failed: {out}")
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--cycles", type=int, default=20)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pw-bench-")
    bin_dir = os.path.join(work, "bin")
    write_wrappers(bin_dir, sys.executable)
    for name in ("bridge", "host-local"):
        os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), os.path.join(bin_dir, name))
    ns_name = unique("pwbench-", 20)
    subprocess.run(["ip", "netns", "add", ns_name], check=True)
    bridges = {"podwire": unique("pwbb"), "bridge": unique("pwbr")}
    variants = {
        "podwire (standalone)": ("podwire", conf("podwire", "podwire-ipam", bridges["podwire"], "10.251.1.0/24", work)),
        "reference bridge + host-local": ("bridge", conf("bridge", "host-local", bridges["bridge"], "10.251.2.0/24", work)),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for i in range(opts.cycles + 1):
            for label, (plugin, config) in variants.items():
                ms = cycle(bin_dir, plugin, config, f"/run/netns/{ns_name}", f"bench{i}")
                if i:  # the first round warms caches (and creates the bridges)
                    samples[label].append(ms)
    finally:
        subprocess.run(["ip", "netns", "del", ns_name])
        for br in bridges.values():
            subprocess.run(["ip", "link", "del", br], capture_output=True)
        subprocess.run(["rm", "-rf", work])
    report(samples, opts.cycles)


def report(samples: dict[str, list[float]], n: int) -> None:
    ref = statistics.median(samples["reference bridge + host-local"])
    lines = [f"# CNI ADD+DEL cycle, median of {n} (interleaved), {time.strftime('%Y-%m-%d %H:%M')}",
             "", "| variant | median ms | p90 ms | ratio to reference |", "|---|---|---|---|"]
    for label, values in samples.items():
        med = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        lines.append(f"| {label} | {med:.1f} | {p90:.1f} | {med / ref:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "cni_cycle.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
