#!/usr/bin/env python3
"""What scraping podwire-cri's /metrics costs with 100 pods, and what the kubelet's
ListPodSandboxMetrics costs on the same node.

podwire-cri runs as its own process (as bench_cri.py starts it) with 100 pods on a private CNI
bridge network (podwire bridge + portmap, plugins standalone).  Then, each time from a fresh
start over the same recovered state (so RPC bursts of setting up do not colour RSS):
  * a kubelet-like relist (Version, Status, List*, PodSandboxStatus of each pod, a NOT_FOUND),
    so the RPC histogram has a node's series;
  * metrics off: VmRSS of the shim;
  * metrics on: VmRSS at start, the time of one scrape over HTTP (median and p90 of 100), the
    answer's size, VmRSS after the 100 scrapes;
  * ListPodSandboxMetrics for the 100 pods (median of 5): one `ip -n` child per ready pod.
Needs root, runc and the reference CNI plugins.  Prints a table and writes
tests/bench/results/cri_metrics.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_cri as base  # noqa: E402  (puts the repo and tests/ on sys.path)
from cri_api.v1 import api_pb2 as api  # noqa: E402

from crihelpers import netns_of, remove_cgroup_tree  # noqa: E402

RESULTS = os.path.join(HERE, "results")
SETTLE_S = 3.0


class Shim(base.Podwire):
    """bench_cri's podwire-cri with the metrics endpoint on a chosen address ("" = off)."""

    def __init__(self, work: str, metrics_address: str) -> None:
        super().__init__(work)
        self.metrics_address = metrics_address

    def start(self, conf_dir: str, bin_dir: str) -> None:
        from cri.config import Config, to_toml
        self.cfg = Config(listen=self.socket, state_dir=os.path.join(self.work, "pw-state"),
                          run_dir=os.path.join(self.work, "pw-run"), cni_conf_dir=conf_dir,
                          cni_bin_dirs=[bin_dir], cni_cache_dir=os.path.join(self.work, "pw-cni-cache"),
                          runc_root=os.path.join(self.work, "pw-runc"), restrict_oom_score_adj=True,
                          cgroup_driver="cgroupfs", cgroup_parent=base.PODWIRE_CGROUP_PARENT,
                          registry_config_dir=os.path.join(self.work, "certs.d"), netpol_socket="",
                          metrics_address=self.metrics_address)
        path = os.path.join(self.work, "cri.toml")
        with open(path, "w") as f:
            f.write(to_toml(self.cfg))
        log = open(os.path.join(self.work, "podwire-cri.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cri.server.main", "--config", path,
                                      "--log-level", "warning"], stdout=log, stderr=log,
                                     cwd=os.path.join(HERE, "..", ".."), start_new_session=True)
        self.wait_ready()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def relist(shim: Shim) -> None:
    """What a kubelet's relist asks, so the RPC histogram has the series a node's has."""
    c = shim.client()
    c.rt.Version(api.VersionRequest())
    c.rt.Status(api.StatusRequest())
    c.rt.ListContainers(api.ListContainersRequest())
    c.img.ListImages(api.ListImagesRequest())
    c.img.ImageFsInfo(api.ImageFsInfoRequest())
    for pod in c.rt.ListPodSandbox(api.ListPodSandboxRequest()).items:
        c.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod.id))
        c.rt.ListContainers(api.ListContainersRequest(filter=api.ContainerFilter(pod_sandbox_id=pod.id)))
    try:
        c.rt.ContainerStatus(api.ContainerStatusRequest(container_id="gone"))
    except base.grpc.RpcError:
        pass                            # NOT_FOUND: a code other than OK in the histogram


def settled_rss(shim: Shim) -> float:
    relist(shim)
    time.sleep(SETTLE_S)
    return rss_mib(shim.proc.pid)


def scrapes(url: str, n: int) -> tuple[list[float], int, str]:
    times, text = [], ""
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
        times.append(time.perf_counter() - started)
    return times, len(text), text


IMPORT_COST = """
import asyncio, grpc, h11, wsproto, cri_api.v1.api_pb2, cri_api.v1.api_pb2_grpc
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
before = rss()
import prometheus_client
print(rss() - before)
"""


def import_cost_mib() -> float:
    """What importing prometheus_client adds to a process that has the shim's other big
    imports: the shim imports it with metrics off too (its registry is always there)."""
    out = subprocess.run([sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True)
    return float(out.stdout)


def p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=100)
    opts = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc"):
        print("bench_cri_metrics: needs root and runc; skipped")
        return 0
    work = tempfile.mkdtemp(prefix="pw-cri-metrics-bench-")
    new_cgroup = not base._cgroup_exists(base.PODWIRE_CGROUP_PARENT)
    conf_dir, bin_dir, bridge = base.network(work)
    os.environ["PODWIRE_CNID_SOCKET"] = ""      # plugins standalone, whatever the node runs
    shim = None
    try:
        shim = Shim(work, "")
        shim.start(conf_dir, bin_dir)
        c = shim.client()
        started = time.monotonic()
        for _ in range(opts.pods):
            cfg = base.pod_config(os.path.join(work, "logs"))
            c.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=300)
        setup_s = time.monotonic() - started
        shim.stop()

        shim = Shim(work, "")
        shim.start(conf_dir, bin_dir)
        assert len(shim.client().rt.ListPodSandbox(api.ListPodSandboxRequest()).items) == opts.pods
        rss_off = settled_rss(shim)
        shim.stop()

        address = f"127.0.0.1:{free_port()}"
        shim = Shim(work, address)
        shim.start(conf_dir, bin_dir)
        rss_on = settled_rss(shim)
        times, size, text = scrapes(f"http://{address}/metrics", opts.scrapes)
        assert f'podwire_cri_pods{{state="ready"}} {opts.pods}.0' in text, text[:2000]
        rss_after = rss_mib(shim.proc.pid)
        c = shim.client()
        lpsm = []
        for _ in range(5):
            t = time.perf_counter()
            resp = c.rt.ListPodSandboxMetrics(api.ListPodSandboxMetricsRequest(), timeout=120)
            lpsm.append(time.perf_counter() - t)
        assert len(resp.pod_metrics) == opts.pods
        series = sum(len(pm.metrics) for pm in resp.pod_metrics)

        text = (f"# podwire-cri: scrape cost with {opts.pods} pods "
                f"(tests/bench/bench_cri_metrics.py)\n\n"
                f"podwire-cri as its own process, {opts.pods} pods on a CNI bridge (made in "
                f"{setup_s:.0f} s), each column from a fresh start over the same state; "
                f"RSS is the shim's VmRSS. {opts.scrapes} scrapes over HTTP.\n\n"
                "| scrape median | scrape p90 | answer | RSS, metrics off | RSS, on at start "
                "| RSS after scrapes | added |\n|---|---|---|---|---|---|---|\n"
                f"| {statistics.median(times) * 1000:.2f} ms | {p90(times) * 1000:.2f} ms "
                f"| {size / 1024:.1f} KiB | {rss_off:.1f} MiB | {rss_on:.1f} MiB | {rss_after:.1f} MiB "
                f"| {rss_after - rss_off:+.1f} MiB |\n\n"
                f"The shim imports prometheus_client (and builds its registry) with metrics off "
                f"too, so the columns share that: importing it adds {import_cost_mib():.1f} MiB "
                f"to a process with the shim's other imports.\n\n"
                f"ListPodSandboxMetrics (the kubelet's /metrics/cadvisor with "
                f"PodAndContainerStatsFromCRI), {opts.pods} pods without containers, {series} "
                f"metrics: median {statistics.median(lpsm) * 1000:.0f} ms of 5 (one `ip -n` "
                f"child per pod for its network counters).\n")
        print(text)
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "cri_metrics.md"), "w") as f:
            f.write(text)
        return 0
    finally:
        if shim is not None:
            try:
                base.remove_pods(shim.client())
            except Exception as exc:    # noqa: BLE001 - clean up what can be, then report
                print(f"bench_cri_metrics: removing pods: {exc}", file=sys.stderr)
            shim.stop()
            for name in netns_of(shim.cfg):     # pods the shim could not remove
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        base._cleanup(work, bridge)
        if new_cgroup:
            remove_cgroup_tree(base.PODWIRE_CGROUP_PARENT)


if __name__ == "__main__":
    sys.exit(main())
