#!/usr/bin/env python3
"""CRI benchmark: podwire-cri against Debian's containerd, driven by the same gRPC client.

Both runtimes get the same CNI conflist (podwire bridge -> portmap, a private bridge,
subnet and IPAM dataDir), the same CNI bin dir, a busybox image from the same local
docker-registry, and kubelet-like pod and container configs.  containerd runs with a
temporary config (its own root, state and socket; restrict_oom_score_adj = true; a
busybox-based sandbox image from the local registry, since this node is air-gapped)
and is stopped afterwards.

Measured, per runtime, in one run:
  * pod life cycle: RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox
    (medians over --pods pods, after one warm-up);
  * container life cycle in one pod: CreateContainer, StartContainer, ContainerStatus,
    StopContainer (timeout 0), RemoveContainer (medians over --containers), and apart from
    the total one ExecSync of `true` per container, as a kubelet exec probe;
  * resident memory (RSS, PSS and USS) of the runtime's processes idle, and with --density pods
    each running one container: podwire-cri + its conmons, containerd + its shims.

Prints a table and writes it to tests/bench/results/cri.md.  This compares the runtimes alone
(same plugins, standalone, on both); bench_node.py compares the node stacks as they are meant to
run (podwire-netpol + podwire-cnid + podwire-cri against containerd with the reference plugins).
"""
from __future__ import annotations

import abc
import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

import grpc  # noqa: E402
from cri_api.v1 import api_pb2 as api  # noqa: E402
from cri_api.v1 import api_pb2_grpc  # noqa: E402

from cnitest import REFERENCE_PLUGIN_DIR, unique  # noqa: E402
from crihelpers import remove_cgroup_tree  # noqa: E402
from localregistry import LocalRegistry  # noqa: E402
from testimages import ImagePusher, ImageSpec  # noqa: E402

from cni.install import write_wrappers  # noqa: E402

RESULTS = os.path.join(HERE, "results")
POD_OPS = ["RunPodSandbox", "PodSandboxStatus", "StopPodSandbox", "RemovePodSandbox"]
SETTLE_S = 6.0
PODWIRE_CGROUP_PARENT = "/podwire-bench"
CONTAINERD_CGROUP_PARENT = "/k8s.io"
CTR_OPS = ["CreateContainer", "StartContainer", "ContainerStatus", "StopContainer", "RemoveContainer"]


# --- the runtimes under test -------------------------------------------------------------

class Runtime(abc.ABC):
    name = ""

    def __init__(self, work: str, run: str = "") -> None:
        self.work = work
        # Runtime state (podwire's run_dir and runc root, containerd's state): on the node these
        # live in /run, a tmpfs; bench_node.py passes a directory there, this benchmark the work dir.
        self.run = run or work
        self.proc: subprocess.Popen | None = None
        self.socket = os.path.join(work, f"{self.name}.sock")

    def client(self) -> "Client":
        return Client(self.socket)

    def wait_ready(self, timeout: float = 60) -> None:
        client, deadline = self.client(), time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see {self.work}")
            try:
                client.rt.Version(api.VersionRequest(), timeout=1)
                conds = client.rt.Status(api.StatusRequest(), timeout=5).status.conditions
                if all(c.status for c in conds):
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} not ready after {timeout}s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """The runtime's own processes: the daemon plus its per-container helpers."""


class Podwire(Runtime):
    name = "podwire-cri"

    def start(self, conf_dir: str, bin_dir: str, netpol_socket: str = "", env: dict | None = None) -> None:
        from cri.config import Config, to_toml
        self.cfg = Config(listen=self.socket, state_dir=os.path.join(self.work, "pw-state"),
                          run_dir=os.path.join(self.run, "pw-run"), cni_conf_dir=conf_dir,
                          cni_bin_dirs=[bin_dir], cni_cache_dir=os.path.join(self.work, "pw-cni-cache"),
                          runc_root=os.path.join(self.run, "pw-runc"), restrict_oom_score_adj=True,
                          cgroup_driver="cgroupfs", cgroup_parent=PODWIRE_CGROUP_PARENT,
                          registry_config_dir=os.path.join(self.work, "certs.d"),
                          netpol_socket=netpol_socket,
                          metrics_address="127.0.0.1:0")   # on, as by default, on a free port
        path = os.path.join(self.work, "cri.toml")
        with open(path, "w") as f:
            f.write(to_toml(self.cfg))
        log = open(os.path.join(self.work, "podwire-cri.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cri.server.main", "--config", path,
                                      "--log-level", "warning"], stdout=log, stderr=log,
                                     cwd=os.path.join(HERE, "..", ".."), start_new_session=True,
                                     env={**os.environ, **(env or {})})
        self.wait_ready()

    def pids(self) -> list[int]:
        marker = os.path.join(self.cfg.run_dir, "monitors").encode()
        # Every helper the shim leaves running: conmons (and an ExecSync helper, if one ran).
        return [self.proc.pid] + [p for p, cmd in _processes()
                                  if marker in cmd and p != self.proc.pid]


class Containerd(Runtime):
    name = "containerd"

    def start(self, conf_dir: str, bin_dir: str, sandbox_image: str) -> None:
        root, state = os.path.join(self.work, "ctd-root"), os.path.join(self.run, "ctd-state")
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{os.path.join(self.work, 'ctd-opt')}"
[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
        path = os.path.join(self.work, "containerd.toml")
        with open(path, "w") as f:
            f.write(config)
        log = open(os.path.join(self.work, "containerd.log"), "ab")
        self.proc = subprocess.Popen(["containerd", "--config", path], stdout=log, stderr=log,
                                     start_new_session=True)
        self.wait_ready()

    def pids(self) -> list[int]:
        marker = self.socket.encode()
        return [self.proc.pid] + [p for p, cmd in _processes()
                                  if b"containerd-shim" in cmd and marker in cmd]


class Client:
    def __init__(self, socket_path: str) -> None:
        self.channel = grpc.insecure_channel("unix://" + socket_path)
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)


# --- workloads -------------------------------------------------------------------------------

def pod_config(log_dir: str) -> api.PodSandboxConfig:
    """What a kubelet sends for a plain pod (PID per container, pod-level IPC/UTS/net)."""
    name = "bench-" + uuid.uuid4().hex[:8]
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=name, namespace="bench",
                                                                uid=uuid.uuid4().hex),
                               hostname=name, log_directory=os.path.join(log_dir, name),
                               labels={"io.kubernetes.pod.name": name})
    cfg.linux.security_context.namespace_options.pid = api.CONTAINER
    os.makedirs(cfg.log_directory, exist_ok=True)
    return cfg


def ctr_config(image: str, i: int) -> api.ContainerConfig:
    return api.ContainerConfig(metadata=api.ContainerMetadata(name=f"c{i}"), image=api.ImageSpec(image=image),
                               command=["sleep", "3600"], log_path=f"c{i}/0.log",
                               labels={"io.kubernetes.container.name": f"c{i}"})


def timed(samples: dict, op: str, fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    samples.setdefault(op, []).append((time.perf_counter() - t0) * 1000)
    return out


def pod_cycle(c: Client, log_dir: str, samples: dict) -> None:
    cfg = pod_config(log_dir)
    pod = timed(samples, "RunPodSandbox", c.rt.RunPodSandbox, api.RunPodSandboxRequest(config=cfg),
                timeout=300).pod_sandbox_id
    timed(samples, "PodSandboxStatus", c.rt.PodSandboxStatus, api.PodSandboxStatusRequest(pod_sandbox_id=pod))
    timed(samples, "StopPodSandbox", c.rt.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=pod),
          timeout=120)
    timed(samples, "RemovePodSandbox", c.rt.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=pod),
          timeout=120)


def container_cycle(c: Client, pod: str, image: str, i: int, samples: dict) -> None:
    cfg = c.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    sandbox = api.PodSandboxConfig(metadata=cfg.metadata, labels=cfg.labels, annotations=cfg.annotations)
    cid = timed(samples, "CreateContainer", c.rt.CreateContainer, api.CreateContainerRequest(
        pod_sandbox_id=pod, config=ctr_config(image, i), sandbox_config=sandbox), timeout=120).container_id
    timed(samples, "StartContainer", c.rt.StartContainer, api.StartContainerRequest(container_id=cid), timeout=60)
    timed(samples, "ContainerStatus", c.rt.ContainerStatus, api.ContainerStatusRequest(container_id=cid))
    # What a kubelet exec probe costs (outside the life-cycle total).
    timed(samples, "ExecSync", c.rt.ExecSync, api.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10),
          timeout=60)
    timed(samples, "StopContainer", c.rt.StopContainer, api.StopContainerRequest(container_id=cid, timeout=0),
          timeout=60)
    timed(samples, "RemoveContainer", c.rt.RemoveContainer, api.RemoveContainerRequest(container_id=cid),
          timeout=60)


def density(c: Client, image: str, log_dir: str, n: int, roles: tuple[str, ...] = ()) -> None:
    """n pods with one running container each; ``roles``: a `role` label taken in turn."""
    for i in range(n):
        cfg = pod_config(log_dir)
        if roles:
            cfg.labels["role"] = roles[i % len(roles)]
        pod = c.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
        cid = c.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod, config=ctr_config(image, i),
                                                              sandbox_config=cfg), timeout=120).container_id
        c.rt.StartContainer(api.StartContainerRequest(container_id=cid), timeout=60)


def remove_pods(c: Client) -> None:
    for pod in c.rt.ListPodSandbox(api.ListPodSandboxRequest(), timeout=30).items:
        c.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=120)
        c.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=120)


# --- memory ----------------------------------------------------------------------------------

def _processes():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    yield int(entry), f.read()
            except OSError:
                continue


def memory_kib(pids: list[int]) -> tuple[int, int, int, int]:
    """(RSS, PSS, USS, process count).  RSS counts every resident page a process maps,
    shared library text included; PSS splits pages shared between processes (the
    interpreter, libraries) fairly among them, so it is the better sum; USS counts only
    the pages no other process maps -- what stopping the runtime would give back."""
    rss = pss = uss = count = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line and not line.startswith("0"))
        except OSError:
            continue
        kib = lambda name: int(fields[name].split()[0])   # noqa: E731
        rss, pss = rss + kib("Rss"), pss + kib("Pss")
        uss += kib("Private_Clean") + kib("Private_Dirty")
        count += 1
    return rss, pss, uss, count


# --- the run ---------------------------------------------------------------------------------

def network(work: str) -> tuple[str, str, str]:
    conf_dir, bin_dir, ipam_dir = (os.path.join(work, d) for d in ("net.d", "cni-bin", "ipam"))
    for d in (conf_dir, bin_dir, ipam_dir):
        os.makedirs(d)
    write_wrappers(bin_dir, sys.executable)
    for name in os.listdir(REFERENCE_PLUGIN_DIR):
        os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), os.path.join(bin_dir, name))
    bridge = unique("pwcb")
    conflist = {"cniVersion": "1.0.0", "name": unique("pwbench-", 20), "plugins": [
        {"type": "podwire", "mode": "bridge", "bridge": bridge, "isGateway": True, "hairpinMode": True,
         "ipam": {"type": "podwire-ipam", "dataDir": ipam_dir, "ranges": [[{"subnet": "10.252.0.0/22"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}
    with open(os.path.join(conf_dir, "10-bench.conflist"), "w") as f:
        json.dump(conflist, f)
    return conf_dir, bin_dir, bridge


def measure(runtimes: list[Runtime], image: str, work: str, opts) -> dict:
    """Life cycles interleaved (one pod or container on each runtime in turn), so the
    noise of a busy machine hits both alike; then memory, one runtime at a time."""
    res = {rt.name: {"pods": {}, "ctrs": {}} for rt in runtimes}
    clients = {rt.name: rt.client() for rt in runtimes}
    logs = {rt.name: os.path.join(work, "logs-" + rt.name) for rt in runtimes}
    for name, c in clients.items():
        c.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=image)), timeout=300)
        pod_cycle(c, logs[name], {})                  # warm-up (containerd pulls its sandbox image)
    for _ in range(opts.pods):
        for name, c in clients.items():
            pod_cycle(c, logs[name], res[name]["pods"])
    pods = {name: c.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_config(logs[name])),
                                     timeout=300).pod_sandbox_id for name, c in clients.items()}
    for i in range(opts.containers + 1):
        for name, c in clients.items():
            container_cycle(c, pods[name], image, i, res[name]["ctrs"] if i else {})   # i=0 warms up
    for name, c in clients.items():
        remove_pods(c)
    # Both runtimes give freed memory back in the background (Go's scavenger; podwire-cri's
    # heap trimmer every 5 s): measure once that has had its chance.
    time.sleep(SETTLE_S)
    for rt in runtimes:
        res[rt.name]["idle"] = memory_kib(rt.pids())
    for rt in runtimes:
        c = clients[rt.name]
        density(c, image, logs[rt.name], opts.density)
        time.sleep(SETTLE_S)
        res[rt.name]["busy"] = memory_kib(rt.pids())
        remove_pods(c)
    return res


def table(res: dict, opts) -> str:
    pw, cd = res["podwire-cri"], res["containerd"]
    med = lambda xs: statistics.median(xs)   # noqa: E731
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"# CRI life cycles and memory: podwire-cri vs containerd {_containerd_version()}, {stamp}", "",
             f"Medians in ms: pod life cycle over {opts.pods} pods, container life cycle over "
             f"{opts.containers} containers in one pod, the two runtimes interleaved; same client, CNI "
             f"conflist (podwire -> portmap, plugins standalone) and image.", "",
             "| operation | podwire-cri | containerd | ratio |", "|---|---|---|---|"]
    for group, ops in (("pods", POD_OPS), ("ctrs", CTR_OPS)):
        tot_pw = tot_cd = 0.0
        for op in ops:
            a, b = med(pw[group][op]), med(cd[group][op])
            tot_pw, tot_cd = tot_pw + a, tot_cd + b
            lines.append(f"| {op} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
        label = "pod life cycle total" if group == "pods" else "container life cycle total"
        lines.append(f"| **{label}** | **{tot_pw:.1f}** | **{tot_cd:.1f}** | **{tot_pw / tot_cd:.2f}** |")
    a, b = med(pw["ctrs"]["ExecSync"]), med(cd["ctrs"]["ExecSync"])
    lines.append(f"| ExecSync `true` (an exec probe; not in the total) | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    lines += ["", f"Memory in MiB (processes): the daemon plus its per-container helpers "
                  f"(podwire: conmons; containerd: shims); busy = {opts.density} pods with one running "
                  f"container each.", "",
              "| state | metric | podwire-cri | containerd | ratio |", "|---|---|---|---|---|"]
    for key in ("idle", "busy"):
        (pn, cn) = pw[key][3], cd[key][3]
        for i, metric in enumerate(("RSS", "PSS", "USS")):
            a, b = pw[key][i] / 1024, cd[key][i] / 1024
            lines.append(f"| {key} ({pn} / {cn} processes) | {metric} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    return "\n".join(lines) + "\n"


def _containerd_version() -> str:
    out = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--density", type=int, default=20)
    opts = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("containerd") or not shutil.which("runc"):
        print("bench_cri: needs root, containerd and runc; skipped")
        return 0
    work = tempfile.mkdtemp(prefix="pw-cri-bench-")
    # Cgroup parents the runs create (podwire's configured one, containerd's default for
    # pods without one); removed afterwards unless they were there before.
    new_cgroups = [p for p in (PODWIRE_CGROUP_PARENT, CONTAINERD_CGROUP_PARENT) if not _cgroup_exists(p)]
    conf_dir, bin_dir, bridge = network(work)
    registry = LocalRegistry(os.path.join(work, "registry"), os.path.join(work, "registry-storage")).start()
    runtimes: list[Runtime] = []
    try:
        os.makedirs(os.path.join(work, "layouts"))
        pusher = ImagePusher(registry.host, os.path.join(work, "layouts"))
        image = pusher.push("podwire-bench/busybox:1.0")
        # The sandbox ("pause") image containerd needs; busybox sleeping stands in for it.
        pause = pusher.push("podwire-bench/pause:1.0", ImageSpec(cmd=["sleep", "2147483647"]))
        # Both runtimes' plugins run standalone: a node's podwire-cnid (if any) must not
        # speed up one of them only.
        os.environ["PODWIRE_CNID_SOCKET"] = ""
        pw, cd = Podwire(work), Containerd(work)
        runtimes += [pw, cd]
        pw.start(conf_dir, bin_dir)
        cd.start(conf_dir, bin_dir, pause)
        results = measure(runtimes, image, work, opts)
        text = table(results, opts)
        print(text)
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "cri.md"), "w") as f:
            f.write(text)
        return 0
    finally:
        for rt in runtimes:
            try:
                remove_pods(rt.client())
            except grpc.RpcError:
                pass
            rt.stop()
        _cleanup(work, bridge)
        for parent in new_cgroups:
            remove_cgroup_tree(parent)
        registry.stop()


def _cgroup_exists(path: str) -> bool:
    from cri.oci import cgroups
    d = cgroups.controller_dir("memory", path)
    return d is not None and os.path.isdir(d)


def _cleanup(work: str, bridge: str) -> None:
    """Whatever a failed run left: runc containers, shims, mounts, the bridge, the tree."""
    # containerd's pods were removed through CRI (remove_pods); podwire's runc root is private.
    root = os.path.join(work, "pw-runc")
    if os.path.isdir(root):
        ids = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, text=True)
        for cid in ids.stdout.split():
            subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
    for pid, cmd in _processes():
        if work.encode() in cmd and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(work)]
    for m in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
