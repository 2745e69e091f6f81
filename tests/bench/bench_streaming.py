#!/usr/bin/env python3
"""Streaming benchmark: Exec's time to first byte, podwire-cri against Debian's containerd.

Both runtimes are set up as in bench_cri.py (same CNI conflist, image, registry) and driven
by one client: the Exec RPC, then the SPDY upgrade and remotecommand streams of podwire-ctl's
client library (cri/ctl/stream/), the leg the kubelet's proxy speaks to a runtime.

Measured in one run, interleaved (podwire, containerd, podwire, ...), medians:
  * time to first byte: from the Exec RPC being sent to the first stdout byte of `echo hi`;
  * whole exec: until the status on the error stream has been read;
  * resident memory of the runtime's processes idle and with 20 idle exec sessions open
    (`cat` waiting on stdin): podwire-cri (+ conmons, + the runc of each session) against
    containerd (+ its shims).

Prints a table and writes it to tests/bench/results/streaming.md.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_cri as base  # noqa: E402  (puts the repo and tests/ on sys.path)
import grpc  # noqa: E402
from cri_api.v1 import api_pb2 as api  # noqa: E402

from cri.ctl.stream.upgrade import REMOTECOMMAND, upgrade  # noqa: E402
from cri.streaming.spdy_session import SpdySession  # noqa: E402
from localregistry import LocalRegistry  # noqa: E402
from testimages import ImagePusher, ImageSpec  # noqa: E402

IDLE_SESSIONS = 20


async def exec_once(client: base.Client, cid: str, cmd: list[str]) -> tuple[float, float]:
    """(seconds to the first stdout byte, seconds to the status), from the RPC's start."""
    start = time.perf_counter()
    url = client.rt.Exec(api.ExecRequest(container_id=cid, cmd=cmd, stdout=True), timeout=10).url
    up = await upgrade(url, REMOTECOMMAND)
    session = SpdySession(up.reader, up.writer, server=False, initial=up.initial)
    reading = asyncio.create_task(session.run())
    try:
        error = await session.open_stream({"streamtype": "error"})
        stdout = await session.open_stream({"streamtype": "stdout"})
        first = await stdout.read()
        ttfb = time.perf_counter() - start
        assert first, "no output"
        while await stdout.read():
            pass
        while await error.read():
            pass
        return ttfb, time.perf_counter() - start
    finally:
        await session.close()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


async def open_idle(client: base.Client, cid: str, n: int) -> list:
    """n exec sessions of `cat` with stdin open and nothing sent: idle streams."""
    sessions = []
    for _ in range(n):
        url = client.rt.Exec(api.ExecRequest(container_id=cid, cmd=["cat"], stdin=True, stdout=True),
                             timeout=10).url
        up = await upgrade(url, REMOTECOMMAND)
        session = SpdySession(up.reader, up.writer, server=False, initial=up.initial)
        reading = asyncio.create_task(session.run())
        for kind in ("error", "stdin", "stdout"):
            await session.open_stream({"streamtype": kind})
        sessions.append((session, reading))
    await asyncio.sleep(2)                  # every runc exec has started its process
    return sessions


async def close_idle(sessions: list) -> None:
    for session, reading in sessions:
        await session.close()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


def start_container(client: base.Client, image: str, log_dir: str) -> tuple[str, str]:
    pod_cfg = base.pod_config(log_dir)
    pod = client.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_cfg), timeout=120).pod_sandbox_id
    cid = client.rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod, config=base.ctr_config(image, 0), sandbox_config=pod_cfg), timeout=120).container_id
    client.rt.StartContainer(api.StartContainerRequest(container_id=cid), timeout=60)
    return pod, cid


async def measure(runtimes: list, image: str, work: str, rounds: int) -> dict:
    targets = {}
    for rt in runtimes:
        c = rt.client()
        c.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=image)), timeout=300)
        targets[rt.name] = (c, start_container(c, image, os.path.join(work, "logs", rt.name))[1])
    res = {rt.name: {"ttfb": [], "exec": []} for rt in runtimes}
    for rt in runtimes:                         # one warm-up each
        await exec_once(*targets[rt.name], ["echo", "hi"])
    for _ in range(rounds):
        for rt in runtimes:
            ttfb, whole = await exec_once(*targets[rt.name], ["echo", "hi"])
            res[rt.name]["ttfb"].append(ttfb)
            res[rt.name]["exec"].append(whole)
    for rt in runtimes:
        c, cid = targets[rt.name]
        res[rt.name]["rss_idle"] = base.memory_kib(rt.pids())[0]
        sessions = await open_idle(c, cid, IDLE_SESSIONS)
        try:
            pids = rt.pids() + [p for p, cmd in base._processes()
                                if b"runc" in cmd and b" exec " in cmd and cid.encode() in cmd]
            res[rt.name]["rss_sessions"] = base.memory_kib(pids)[0]
            res[rt.name]["rss_daemon_sessions"] = base.memory_kib([rt.proc.pid])[0]
        finally:
            await close_idle(sessions)
    return res


def table(res: dict, rounds: int) -> str:
    pw, cd = res["podwire-cri"], res["containerd"]
    med = lambda xs: statistics.median(xs) * 1000      # noqa: E731
    lines = [f"# Streaming: podwire-cri vs containerd ({base._containerd_version()})", "",
             f"Exec of `echo hi` over SPDY (v4.channel.k8s.io), same client, {rounds} interleaved rounds, medians.",
             "", "| figure | podwire-cri | containerd | ratio |", "| --- | --- | --- | --- |"]
    for key, label in (("ttfb", "Exec RPC -> first stdout byte"), ("exec", "Exec RPC -> status read")):
        a, b = med(pw[key]), med(cd[key])
        lines.append(f"| {label} | {a:.1f} ms | {b:.1f} ms | {a / b:.2f} |")
    for key, label in (("rss_idle", "RSS, runtime processes, idle"),
                       ("rss_sessions", f"RSS with {IDLE_SESSIONS} idle exec sessions open")):
        a, b = pw[key] / 1024, cd[key] / 1024
        lines.append(f"| {label} | {a:.1f} MiB | {b:.1f} MiB | {a / b:.2f} |")
    lines.append(f"| RSS of the daemon alone with {IDLE_SESSIONS} sessions | "
                 f"{pw['rss_daemon_sessions'] / 1024:.1f} MiB | {cd['rss_daemon_sessions'] / 1024:.1f} MiB | "
                 f"{pw['rss_daemon_sessions'] / cd['rss_daemon_sessions']:.2f} |")
    lines += ["", "podwire's sessions include one foreground `runc exec` each (CRI-O's design); "
              "containerd's exec runs in its shim."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    opts = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("containerd") or not shutil.which("runc"):
        print("bench_streaming: needs root, containerd and runc; skipped")
        return 0
    work = tempfile.mkdtemp(prefix="pw-stream-bench-")
    new_cgroups = [p for p in (base.PODWIRE_CGROUP_PARENT, base.CONTAINERD_CGROUP_PARENT)
                   if not base._cgroup_exists(p)]
    conf_dir, bin_dir, bridge = base.network(work)
    registry = LocalRegistry(os.path.join(work, "registry"), os.path.join(work, "registry-storage")).start()
    runtimes: list = []
    try:
        os.makedirs(os.path.join(work, "layouts"))
        pusher = ImagePusher(registry.host, os.path.join(work, "layouts"))
        image = pusher.push("podwire-bench/busybox:1.0")
        pause = pusher.push("podwire-bench/pause:1.0", ImageSpec(cmd=["sleep", "2147483647"]))
        os.environ["PODWIRE_CNID_SOCKET"] = ""
        pw, cd = base.Podwire(work), base.Containerd(work)
        runtimes += [pw, cd]
        pw.start(conf_dir, bin_dir)
        cd.start(conf_dir, bin_dir, pause)
        text = table(asyncio.run(measure(runtimes, image, work, opts.rounds)), opts.rounds)
        print(text)
        os.makedirs(base.RESULTS, exist_ok=True)
        with open(os.path.join(base.RESULTS, "streaming.md"), "w") as f:
            f.write(text)
        return 0
    finally:
        for rt in runtimes:
            try:
                base.remove_pods(rt.client())
            except grpc.RpcError:
                pass
            rt.stop()
        base._cleanup(work, bridge)
        for parent in new_cgroups:
            base.remove_cgroup_tree(parent)
        registry.stop()


if __name__ == "__main__":
    sys.exit(main())
