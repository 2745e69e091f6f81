"""Fixtures for the container-runtime tier: real runc, a busybox rootfs, temporary directories.
(Not a conftest.py: a second module named `conftest` would shadow tests/conftest.py for the
suites that `from conftest import ...`; test modules import these fixtures by name.)

Every container a test makes is removed at teardown, also when the test fails: through
ContainerRuntime.remove(), then by brute force (runc delete -f, SIGKILL of monitors, unmount,
rmdir of the test's cgroup tree) for whatever a broken test left behind."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

import pytest
from cri_api.v1 import api_pb2

from cri.monitor import conmon
from cri.oci import rootfs
from cri.oci.runtime import ContainerRuntime
from cri.oci.spec import PodContext, build_spec
from crihelpers import remove_cgroup_tree

NODE = api_pb2.NamespaceMode.Value("NODE")
CAN_RUN = (os.geteuid() == 0 and shutil.which("runc") is not None and shutil.which("conmon") is not None
           and os.path.exists("/bin/busybox"))
needs_runc = pytest.mark.skipif(not CAN_RUN, reason="needs root, runc, conmon and /bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
"""
GROUP = """root:x:0:
staff:x:50:alice,bob
alice:x:1000:
bob:x:1001:
wheel:x:10:alice
nogroup:x:65534:
"""


def sc(**kw) -> api_pb2.LinuxContainerConfig:
    """A LinuxContainerConfig with these security-context fields, on the host network."""
    ctx = api_pb2.LinuxContainerSecurityContext(**kw)
    ctx.namespace_options.network = NODE
    return api_pb2.LinuxContainerConfig(security_context=ctx)


def make_busybox_rootfs(path: str) -> str:
    """/bin/busybox plus one relative symlink per applet (`busybox --install -s` would make them
    absolute host paths), and /etc/passwd, /etc/group."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(path, "bin", "busybox"))
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write(GROUP)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    return path


@pytest.fixture(scope="session")
def busybox_rootfs():
    path = tempfile.mkdtemp(prefix="pw-busybox-")
    yield make_busybox_rootfs(path)
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Env:
    """A ContainerRuntime over private directories plus helpers to make containers."""
    base: str
    layer: str
    cgroup_root: str
    rt: ContainerRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.rt = ContainerRuntime(os.path.join(self.base, "bundles"),
                                   os.path.join(self.base, "runc"),
                                   os.path.join(self.base, "state"))

    def pod(self, **kw) -> PodContext:
        config = kw.pop("config", None) or api_pb2.PodSandboxConfig(hostname="pwpod")
        return PodContext(id=kw.pop("id", "pod-" + uuid.uuid4().hex[:8]), config=config,
                          cgroup_root=self.cgroup_root, **kw)

    def config(self, command: list[str], **kw) -> api_pb2.ContainerConfig:
        """A ContainerConfig; kw: ContainerConfig fields.  Without `linux` it runs on the host
        network (most tests need no netns); a given `linux` is used as is."""
        host_network = "linux" not in kw
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"),
                                      command=command, **kw)
        if host_network:
            cfg.linux.security_context.namespace_options.network = NODE
        return cfg

    def create(self, cfg, pod: PodContext | None = None, image: dict | None = None,
               log: bool = True) -> tuple[str, str]:
        """Create a container; (id, log path)."""
        cid = "t" + uuid.uuid4().hex[:16]
        path = self.rt.prepare_rootfs(cid, [self.layer])
        spec = build_spec(cid, cfg, pod or self.pod(), image or {}, path)
        log_path = os.path.join(self.base, f"{cid}.log") if log else ""
        self.rt.create(cid, spec, log_path, timeout=30)
        return cid, log_path

    def run(self, command: list[str], timeout: float = 20, **kw) -> tuple[str, str]:
        """Create, start, wait for the exit; (id, log path)."""
        pod = kw.pop("pod", None)
        image = kw.pop("image", None)
        cid, log = self.create(self.config(command, **kw), pod, image)
        self.rt.start(cid)
        assert self.rt.wait_exit(cid, timeout) is not None, "container did not exit"
        return cid, log

    def output(self, command: list[str], **kw) -> str:
        """The container's stdout, run to completion."""
        cid, log = self.run(command, **kw)
        return "".join(read_log(log, "stdout"))


def read_log(path: str, stream: str | None = None) -> list[str]:
    """Messages of the CRI log (P chunks joined), optionally only one stream's."""
    out, partial = [], ""
    with open(path) as f:
        for line in f:
            _ts, s, tag, msg = line.rstrip("\n").split(" ", 3)
            if stream and s != stream:
                continue
            partial += msg
            if tag == "F":
                out.append(partial + "\n")
                partial = ""
    return out + ([partial] if partial else [])


def force_cleanup(env: Env) -> None:
    rt = env.rt
    for cid in rt.list_ids():
        with contextlib.suppress(Exception):
            rt.remove(cid)
    # Whatever remove() could not clean: runc's containers, monitors, mounts, cgroups.
    for c in _runc_list(rt.runc.root):
        subprocess.run(["runc", "--root", rt.runc.root, "delete", "-f", c], capture_output=True)
    for cid in rt.list_ids():
        pid = conmon.conmon_pid(rt.monitor_dir(cid), cid)
        if pid:
            os.kill(pid, signal.SIGKILL)
    for cid in os.listdir(rt.root_dir) if os.path.isdir(rt.root_dir) else []:
        rootfs.unmount_rootfs(os.path.join(rt.root_dir, cid, "rootfs"))
    remove_cgroup_tree(env.cgroup_root)
    shutil.rmtree(env.base, ignore_errors=True)


def _runc_list(root: str) -> list[str]:
    done = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, text=True)
    return done.stdout.split()


@pytest.fixture
def env(busybox_rootfs):
    # Short base path: runc state and sockets live below it.
    base = tempfile.mkdtemp(prefix="pwrt-")
    e = Env(base, busybox_rootfs, "/podwire-rttest-" + uuid.uuid4().hex[:8])
    yield e
    force_cleanup(e)
