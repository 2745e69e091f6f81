#!/usr/bin/env python3
"""What scraping /metrics costs podwire-cnid and podwire-netpol, with 100 pods.

- podwire-cnid: 100 leases (100 ADDs of podwire-ipam through the daemon, so it also knows
  the network's range); the lease collector reads the lease directory at each scrape.
- podwire-netpol serve: 100 pods and one policy per pod (so 100 policy counters to read),
  plus the BPF maps' fill levels.

For each daemon: the time of one scrape over HTTP (median and p90 of N), the size of the
answer, and RSS (VmRSS of the daemon's process): a twin daemon with the same pods and
metrics off ("before the metrics server"), then this one at start and after N scrapes.
Needs root (podwire-netpol loads BPF).  Prints a table and writes
tests/bench/results/metrics.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from cnitest import Daemon, run_plugin  # noqa: E402
from metricstest import url_in_log  # noqa: E402
from netpolnet import AgentProcess  # noqa: E402

from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
PODS = 100


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def scrapes(url: str, n: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as resp:
            size = len(resp.read())
        times.append(time.perf_counter() - started)
    return times, size


def cnid_pods(d: Daemon, bin_dir: str, data_dir: str) -> None:
    conf = {"cniVersion": "1.0.0", "name": "bench-metrics",
            "ipam": {"type": "podwire-ipam", "dataDir": data_dir, "subnet": "10.233.0.0/16"}}
    for i in range(PODS):
        code, out = run_plugin(bin_dir, "podwire-ipam", "ADD", conf, container_id=f"pod{i}", netns="/var/run/netns/x",
                               extra_env={"PODWIRE_CNID_SOCKET": d.socket, "CNI_NETNS_OVERRIDE": "1"})
        if code != 0:
            raise SystemExit(f"ADD pod{i}: {out}")


def bench_cnid(work: str, n: int) -> dict:
    bin_dir = os.path.join(work, "bin")
    os.makedirs(bin_dir)
    write_wrappers(bin_dir, sys.executable)
    out: dict = {}
    for label, args in (("off", ()), ("on", ("--metrics-address", "127.0.0.1:0"))):
        workdir = os.path.join(work, f"cnid-{label}")
        os.makedirs(workdir)
        d = Daemon(workdir, *args).start()
        try:
            cnid_pods(d, bin_dir, os.path.join(workdir, "ipam"))
            if label == "off":
                out["rss_off"] = rss_mib(d.proc.pid)
                continue
            url = d.health()["metrics"]
            out["rss_start"] = rss_mib(d.proc.pid)
            out["times"], out["size"] = scrapes(url, n)
            out["rss_after"] = rss_mib(d.proc.pid)
        finally:
            d.stop()
    return out


def policy(i: int) -> str:
    return (f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{i}, namespace: bench}}\n"
            f"spec: {{podSelector: {{matchLabels: {{pod: p{i}}}}}, ingress: [{{from: [{{podSelector: "
            f"{{matchLabels: {{pod: p{(i + 1) % PODS}}}}}}}]}}]}}\n")


def bench_netpol(work: str, n: int) -> dict:
    out: dict = {}
    for label, args in (("off", ()), ("on", ("--metrics-address", "127.0.0.1:0"))):
        workdir = os.path.join(work, f"netpol-{label}")
        os.makedirs(workdir)
        agent = AgentProcess(workdir, args)
        try:
            agent.start()
            client = agent.client
            assert client is not None
            client.set_namespace("bench", {"ns": "bench"})
            for i in range(PODS):
                client.upsert_endpoint("bench", f"p{i}", {"pod": f"p{i}"}, ips=(f"10.234.{i // 250}.{i % 250 + 1}",))
            client.apply("".join(policy(i) for i in range(PODS)))
            if label == "off":
                out["rss_off"] = rss_mib(agent.proc.pid)
                continue
            url = url_in_log(agent.log)
            out["rss_start"] = rss_mib(agent.proc.pid)
            out["times"], out["size"] = scrapes(url, n)
            out["rss_after"] = rss_mib(agent.proc.pid)
        finally:
            agent.close()
    return out


def row(name: str, r: dict) -> str:
    t = sorted(r["times"])
    p90 = t[int(len(t) * 0.9) - 1]
    return (f"| {name} | {statistics.median(t) * 1000:.2f} ms | {p90 * 1000:.2f} ms | {r['size'] / 1024:.1f} KiB | "
            f"{r['rss_off']:.1f} MiB | {r['rss_start']:.1f} MiB | {r['rss_after']:.1f} MiB | "
            f"{r['rss_after'] - r['rss_off']:+.1f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--scrapes", type=int, default=100)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pw-bench-metrics-")
    try:
        cnid = bench_cnid(work, opts.scrapes)
        netpol = bench_netpol(work, opts.scrapes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join([
        f"# Scrape cost, {PODS} pods, {opts.scrapes} scrapes over HTTP (tests/bench/bench_metrics.py)",
        "",
        "RSS (VmRSS of the daemon): metrics off (a twin with the same pods), metrics on before the scrapes and "
        "after them (the pods are in place for all three); the last column is what the metrics add in all.",
        "",
        "| daemon | scrape median | scrape p90 | answer | RSS, metrics off | RSS, on, before scraping "
        "| RSS after scrapes | added |",
        "|---|---|---|---|---|---|---|---|",
        row(f"podwire-cnid ({PODS} leases)", cnid),
        row(f"podwire-netpol ({PODS} pods, {PODS} policies)", netpol),
        "",
    ])
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "metrics.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
