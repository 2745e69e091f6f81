"""Helpers for the CRI shim's end-to-end tests and their fixtures (crifixtures.py).

Each test gets its own shim: a temp state dir, run dir, socket, runc root, CNI
conf dir (a conflist on a unique bridge/subnet with a temp IPAM dataDir) and
CNI result cache.  Teardown removes every pod through the shim, then sweeps
whatever a failed test may have left: runc containers in its root, mounts under
its dirs, its netns, monitor processes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import grpc
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def conflist(network, *, extra_plugins=(), cni_version="1.0.0") -> dict:
    """The test network as a conflist: podwire (bridge) -> [extra] -> portmap."""
    main = network.conf(cni_version)
    for key in ("cniVersion", "name"):
        main.pop(key)
    main["ipMasq"] = False
    return {"cniVersion": cni_version, "name": network.name,
            "plugins": [main, *extra_plugins, {"type": "portmap", "capabilities": {"portMappings": True}}]}


def write_plugin(bin_dir: str, name: str, script: str) -> None:
    path = os.path.join(bin_dir, name)
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)


# A chained plugin that fails ADD (and succeeds DEL): a CNI that breaks mid-list.
FAILING_PLUGIN = """#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":999,"msg":"injected failure"}'; exit 1;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}';;
esac
exit 0
"""

# A chained plugin whose ADD is slow, passing the previous result through.
# How much slower this machine runs the tests' Python than a host: the VM of `make vm-test` is
# emulated (TCG).  For the few tests that compare a duration with a slow peer's, both scaled.
TIME_SCALE = 4 if os.environ.get("PODWIRE_IN_VM") == "1" else 1

SLOW_PLUGIN = """#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
  exec %s -c 'import json,sys,time; c=json.load(sys.stdin); time.sleep(c.get("sleep", 2)); print(json.dumps(c["prevResult"]))'
fi
exit 0
""" % sys.executable


@dataclasses.dataclass
class Dirs:
    root: str

    def path(self, *p: str) -> str:
        return os.path.join(self.root, *p)


# The cgroup driver of the e2e tier's shims: cgroupfs unless PODWIRE_TEST_CGROUP_DRIVER=systemd
# (a run under systemd as PID 1, e.g. the VM's).  Pinned either way: left unset, the shim would
# pick systemd on a systemd host and refuse the cgroupfs-style parent below.
def e2e_cgroup_driver() -> str:
    driver = os.environ.get("PODWIRE_TEST_CGROUP_DRIVER", "cgroupfs")
    assert driver in ("cgroupfs", "systemd"), f"PODWIRE_TEST_CGROUP_DRIVER={driver!r}"
    return driver


def test_cgroup_parent(driver: str) -> str:
    """A parent of the test's own, removed by sweep(): a directory, or a slice of its own."""
    tag = uuid.uuid4().hex[:8]
    return f"podwire_test_{tag}.slice" if driver == "systemd" else f"/podwire-test-{tag}"


def shim_config(tmp_path, conf_dir: str, bin_dir: str, **over):
    from cri.config import Config
    d = Dirs(str(tmp_path))
    driver = over.pop("cgroup_driver", None) or e2e_cgroup_driver()
    parent = test_cgroup_parent(driver)
    cfg = Config(listen=d.path("cri.sock"), state_dir=d.path("state"), run_dir=d.path("run"),
                 cni_conf_dir=conf_dir, cni_bin_dirs=[bin_dir, "/usr/lib/cni"],
                 cni_cache_dir=d.path("cni-cache"), runc_root=d.path("runc"),
                 cgroup_driver=driver, cgroup_parent=parent, restrict_oom_score_adj=True,
                 registry_config_dir=d.path("certs.d"),
                 netpol_socket="",  # never a node's own agent; tests/e2e/test_cri_netpol.py sets one
                 metrics_address="")  # not the node's 127.0.0.1:9743; test_cri_metrics.py sets one
    return dataclasses.replace(cfg, **over)


class Client:
    """Both services over a real channel to the shim's socket."""

    def __init__(self, socket_path: str) -> None:
        self.channel = grpc.insecure_channel("unix://" + socket_path)
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def pod_config(name: str = "", namespace: str = "e2e", **kw) -> api.PodSandboxConfig:
    """A kubelet-like pod config (PID per container, as the kubelet sends by default)."""
    name = name or "pod-" + uuid.uuid4().hex[:8]
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=name, namespace=namespace,
                                                                uid=uuid.uuid4().hex), hostname=name, **kw)
    cfg.linux.security_context.namespace_options.pid = api.CONTAINER
    return cfg


def remove_all(client: Client) -> None:
    """Remove every pod (and so every container) through the shim."""
    try:
        for ctr in client.rt.ListContainers(api.ListContainersRequest(), timeout=30).containers:
            client.rt.StopContainer(api.StopContainerRequest(container_id=ctr.id, timeout=0), timeout=60)
            client.rt.RemoveContainer(api.RemoveContainerRequest(container_id=ctr.id), timeout=60)
    except grpc.RpcError as err:
        print(f"container cleanup through the shim failed: {err}", file=sys.stderr)
    try:
        for pod in client.rt.ListPodSandbox(api.ListPodSandboxRequest(), timeout=30).items:
            client.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=120)
            client.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=120)
    except grpc.RpcError as err:
        print(f"pod cleanup through the shim failed: {err}", file=sys.stderr)


def sweep(cfg) -> list[str]:
    """Force-remove what the shim should have removed; returns what was found (for asserts)."""
    found = []
    if os.path.isdir(cfg.runc_root):
        out = subprocess.run(["runc", "--root", cfg.runc_root, "list", "-q"], capture_output=True, text=True)
        for cid in out.stdout.split():
            found.append(f"runc container {cid}")
            subprocess.run(["runc", "--root", cfg.runc_root, "delete", "--force", cid], capture_output=True)
    for pid in monitor_pids(cfg.state_dir):
        found.append(f"monitor {pid}")
        _kill(pid)
    for mnt in sorted(mounts_under(os.path.dirname(cfg.state_dir)), reverse=True):
        found.append(f"mount {mnt}")
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    for name in netns_of(cfg):
        found.append(f"netns {name}")
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    # The configured cgroup parent is the node's (podwire-cri leaves /podwire in place, as
    # a kubelet's /kubepods stays): the test made this one, so the test removes it.  A slice
    # is systemd's: stopped (it is empty by now), which also removes its directory.
    if cfg.cgroup_parent.endswith(".slice"):
        subprocess.run(["systemctl", "stop", cfg.cgroup_parent], capture_output=True)
        from cri.oci import cgroupdriver
        remove_cgroup_tree(cgroupdriver.expand_slice(cfg.cgroup_parent))
    else:
        remove_cgroup_tree(cfg.cgroup_parent)
    return found


def remove_cgroup_tree(path: str) -> None:
    """rmdir `path` and everything below it, deepest first, in every hierarchy; what still
    holds processes stays."""
    from cri.oci import cgroups
    for mountpoint in set(cgroups.hierarchies().values()):
        top = os.path.join(mountpoint, path.lstrip("/"))
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def mounts_under(root: str) -> list[str]:
    root = root.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(root)]


def netns_of(cfg) -> list[str]:
    """podwire-<pod id prefix> namespaces whose pods live in this shim's state dir."""
    out = []
    pods_dir = cfg.pods_dir
    ids = os.listdir(pods_dir) if os.path.isdir(pods_dir) else []
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    for pid in ids:
        name = f"podwire-{pid[:16]}"
        if name in names:
            out.append(name)
    return out


def monitor_pids(state_dir: str) -> list[int]:
    """Processes whose command line names this state dir (monitors, pid holders)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if state_dir.encode() in cmd and b"podwire-cri" not in cmd and b"pytest" not in cmd:
            pids.append(int(entry))
    return pids


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


def start_container(shim, pod, image: str, cmd, **kw) -> str:
    """Create and start a container running `cmd` in `pod` ((pod id, its config)); its id.
    Extra ContainerConfig fields (tty, stdin, stdin_once...) pass through `kw`."""
    pod_id, pod_cfg = pod
    name = "c" + os.urandom(4).hex()
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                              command=list(cmd), log_path=f"{name}/0.log", **kw)
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg), timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid), timeout=60)
    return cid


def recv_line(sock) -> bytes:
    """Read from a socket up to and including a newline (the peer must send one)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data
