"""Requests as real clients send them, not as podwire's own tests like to: the minimal configs
(only what runtime.v1 needs), empty optional fields, unset sections, long and unusual but legal
values, and the shapes of critest, crictl and older kubelets.

Each accepted shape runs a pod, a container in it, an ExecSync and the whole teardown over the
socket; each refused one must leave nothing behind.  The shim fixture then removes whatever a
failed test left and checks that nothing was left on the host (runc containers, monitors,
mounts, netns, cgroups)."""
from __future__ import annotations

import json
import os
import socket
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root
NODE = socket.gethostname()
# The three places a pod's hostname shows: the kernel's (UTS namespace), /etc/hostname, $HOSTNAME.
SHOW_HOSTNAME = ["sh", "-c", 'hostname; cat /etc/hostname; echo "$HOSTNAME"']


def _pod(name: str = "") -> api.PodSandboxConfig:
    """Only metadata, as crictl's smallest runp file: no hostname, log_directory, linux section,
    dns_config, labels; attempt unset (0)."""
    return api.PodSandboxConfig(metadata=api.PodSandboxMetadata(
        name=name or "p" + uuid.uuid4().hex[:6], namespace="ns", uid=uuid.uuid4().hex))


def _critest_pod() -> api.PodSandboxConfig:
    """critest's CreatePodSandboxForContainer: a long capitalised name (the "PS"), no hostname."""
    cfg = _pod("create-PodSandbox-for-container-" + str(uuid.uuid4()))
    cfg.metadata.namespace = "cri-test-namespace" + str(uuid.uuid4())
    cfg.linux.cgroup_parent = ""
    return cfg


def _shape(mutate):
    """The minimal pod with one thing changed (`mutate` may return anything)."""
    def make() -> api.PodSandboxConfig:
        cfg = _pod()
        mutate(cfg)
        return cfg
    return make


def _hostname(name: str, host_network: bool = False):
    def mutate(c: api.PodSandboxConfig) -> None:
        c.hostname = name
        if host_network:
            c.linux.security_context.namespace_options.network = api.NODE
    return _shape(mutate)


def _ns(**modes):
    return _shape(lambda c: [setattr(c.linux.security_context.namespace_options, k, v)
                             for k, v in modes.items()])


UNUSUAL = {"": "", "a": "", "io.x/y": "", "UPPER_case.key-1": "v with spaces",
           "ключ/ü": "значение\nsecond line", "k=v;x": "{\"json\": [1]}"}

# id -> (the pod config, what the kernel, /etc/hostname and $HOSTNAME show in its container).
POD_SHAPES = {
    "minimal": (_pod, (NODE, NODE, NODE)),
    "critest": (_critest_pod, (NODE, NODE, NODE)),
    "name-253-char-dns-name": (lambda: _pod(".".join(["a" * 63] * 3) + "." + "b" * 61), (NODE,) * 3),
    "no-uid": (_shape(lambda c: setattr(c.metadata, "uid", "")), (NODE,) * 3),      # containerd takes it
    "attempt-large": (_shape(lambda c: setattr(c.metadata, "attempt", 2 ** 32 - 1)), (NODE,) * 3),
    "empty-linux-section": (_shape(lambda c: c.linux.SetInParent()), (NODE,) * 3),
    "empty-security-context": (_shape(lambda c: c.linux.security_context.SetInParent()), (NODE,) * 3),
    "empty-dns-config": (_shape(lambda c: c.dns_config.SetInParent()), (NODE,) * 3),
    "empty-log-directory": (_shape(lambda c: setattr(c, "log_directory", "")), (NODE,) * 3),
    "labels-annotations-unusual": (_shape(lambda c: (c.labels.update(UNUSUAL),
                                                     c.annotations.update(UNUSUAL))), (NODE,) * 3),
    "port-mapping-without-host-port": (_shape(lambda c: c.port_mappings.add(container_port=80)), (NODE,) * 3),
    "pod-pid-namespace": (_ns(pid=api.POD), (NODE,) * 3),
    "hostname-64-bytes": (_hostname("h" * 64), ("h" * 64,) * 3),
    "hostname-utf8-64-bytes": (_hostname("é" * 32), ("é" * 32,) * 3),        # 32 characters
    "hostname-capitals": (_hostname("Web-0.Example-PS"), ("Web-0.Example-PS",) * 3),
    "hostname-kernel-only-chars": (_hostname("-under_score with space/slash"),
                                   ("-under_score with space/slash",) * 3),  # hostname(1) refuses it
    "host-network-no-hostname": (_ns(network=api.NODE), (NODE,) * 3),
    # The node's UTS namespace keeps the node's name; the files and $HOSTNAME say the config's,
    # as containerd's setupSandboxFiles and CRI-O write them.
    "host-network-with-hostname": (_hostname("web-0", host_network=True), (NODE, "web-0", "web-0")),
    "host-network-and-ipc": (_ns(network=api.NODE, ipc=api.NODE), (NODE,) * 3),
}


def _container(image: str, command=("sleep", "3600")) -> api.ContainerConfig:
    """Only metadata.name and the image (+ a command that stays up, for ExecSync): no
    log_path, linux section, mounts, envs, labels."""
    return api.ContainerConfig(metadata=api.ContainerMetadata(name="c"), image=api.ImageSpec(image=image),
                               command=list(command))


def _status(shim, cid: str) -> api.ContainerStatus:
    return shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status


def _life_cycle(shim, pod_cfg: api.PodSandboxConfig, ctr_cfg: api.ContainerConfig, cmd=SHOW_HOSTNAME,
                handler: str = "") -> api.ExecSyncResponse:
    """Run, check the statuses echo the request verbatim, exec `cmd`, tear everything down."""
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_cfg, runtime_handler=handler),
                                   timeout=120).pod_sandbox_id
    st = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert st.state == api.SANDBOX_READY and st.runtime_handler == handler
    assert st.metadata == pod_cfg.metadata
    assert dict(st.labels) == dict(pod_cfg.labels) and dict(st.annotations) == dict(pod_cfg.annotations)
    # Old crictl/kubelets send no sandbox_config in CreateContainer.
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr_cfg),
                                  timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10))
    cst = _status(shim, cid)
    assert cst.state == api.CONTAINER_RUNNING and cst.metadata == ctr_cfg.metadata
    assert dict(cst.labels) == dict(ctr_cfg.labels) and dict(cst.annotations) == dict(ctr_cfg.annotations)
    assert cst.log_path == ""                   # no log_directory in any of these pods
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0))
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    return res


@pytest.fixture
def busybox(shim, test_images) -> str:
    # The shim (and so its image store) is per test; the registry and the pushed image are not.
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    return test_images.busybox


@pytest.mark.parametrize("shape", list(POD_SHAPES))
def test_pod_shapes(shim, busybox, shape):
    make, seen = POD_SHAPES[shape]
    res = _life_cycle(shim, make(), _container(busybox))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.decode().splitlines() == list(seen)


@pytest.mark.parametrize("handler", ["", "runc"])
def test_old_clients_runtime_handler(shim, busybox, handler):
    """Clients before RuntimeClass send no handler; newer ones may name the default one."""
    res = _life_cycle(shim, _pod(), _container(busybox), handler=handler)
    assert (res.exit_code, res.stdout.decode().splitlines()) == (0, [NODE] * 3)


REFUSED = {
    "hostname-65-bytes": (_hostname("h" * 65), "is 65 bytes; the kernel allows at most 64 (sethostname)"),
    "hostname-utf8-66-bytes": (_hostname("é" * 33), "is 66 bytes"),          # 33 characters
    "hostname-65-bytes-host-network": (_hostname("h" * 65, host_network=True), "is 65 bytes"),
    "hostname-newline": (_hostname("two\nlines"), "contains '\\n'"),
    "no-name": (_shape(lambda c: setattr(c.metadata, "name", "")), "needs a name and a namespace"),
}


@pytest.mark.parametrize("shape", list(REFUSED))
def test_refused_shapes_leave_nothing(shim, shape):
    make, words = REFUSED[shape]
    cfg = make()
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details()
    assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    assert h.netns_of(shim.cfg) == [] and os.listdir(shim.cfg.pods_dir) == []
    # Nor the name: the same pod, made acceptable, runs.
    cfg.hostname, cfg.metadata.name = "ok", cfg.metadata.name or "p"
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def test_unknown_runtime_handler_is_refused(shim):
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=_pod(), runtime_handler="kata"), timeout=120)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'kata'" in err.value.details()
    assert os.listdir(shim.cfg.pods_dir) == []


def _labelled(c: api.ContainerConfig) -> None:
    c.labels.update(UNUSUAL)
    c.annotations.update(UNUSUAL)


def _empty_envs_and_args(c: api.ContainerConfig) -> None:
    c.envs.add(key="EMPTY", value="")
    c.command[:] = ["sh", "-c", "sleep 3600", ""]      # an empty $0
    c.args.append("")


def _mount_made_by_the_shim(tmp_path):
    # Only the two paths: no readonly, propagation, selinux_relabel; a host path that does
    # not exist yet is made (as a directory), as containerd does.
    return lambda c: c.mounts.add(container_path="/data", host_path=str(tmp_path / "made-by-the-shim"))


# id -> a change to the minimal container (its pod is the minimal pod).
CONTAINER_SHAPES = {
    "minimal-with-command": lambda c: None,
    "empty-linux-section": lambda c: c.linux.SetInParent(),
    "empty-security-context": lambda c: c.linux.security_context.SetInParent(),
    "log-path-without-pod-log-directory": lambda c: setattr(c, "log_path", "c/0.log"),
    "empty-env-value-and-empty-arg": _empty_envs_and_args,
    "labels-annotations-unusual": _labelled,
    "attempt-large": lambda c: setattr(c.metadata, "attempt", 2 ** 32 - 1),
    "empty-mount-entry-fields": None,          # needs tmp_path: made in the test
}


@pytest.mark.parametrize("shape", list(CONTAINER_SHAPES))
def test_container_shapes(shim, busybox, tmp_path, shape):
    ctr = _container(busybox)
    (CONTAINER_SHAPES[shape] or _mount_made_by_the_shim(tmp_path))(ctr)
    res = _life_cycle(shim, _pod(), ctr, cmd=["sh", "-c", 'echo "ok[$EMPTY]"; ls -d /data 2>/dev/null; true'])
    expect = "ok[]\n" + ("/data\n" if shape == "empty-mount-entry-fields" else "")
    assert (res.exit_code, res.stdout.decode()) == (0, expect), res.stderr
    if shape == "log-path-without-pod-log-directory":
        # Nothing written for a log_path with no log_directory: not relative to the shim's cwd,
        # nor anywhere under this test's dirs.
        assert not os.path.exists(os.path.join(os.getcwd(), "c", "0.log"))
        assert [f for _, _, fs in os.walk(tmp_path) for f in fs if f == "0.log"] == []


@pytest.mark.parametrize("image, args", [
    ("busybox", ["sh"]),                                        # CMD only
    ("configured", ["/bin/sh", "-c", "echo configured"]),       # ENTRYPOINT + CMD
])
def test_minimal_container_runs_the_images_entrypoint_and_cmd(shim, test_images, image, args):
    """metadata.name + image and nothing else: the image's ENTRYPOINT/CMD, env and workdir."""
    ref = getattr(test_images, image)
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=ref)), timeout=120)
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=_pod()), timeout=120).pod_sandbox_id
    ctr = api.ContainerConfig(metadata=api.ContainerMetadata(name="c"), image=api.ImageSpec(image=ref))
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr),
                                  timeout=120).container_id
    info = json.loads(shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid, verbose=True))
                      .info["info"])
    with open(os.path.join(info["bundle"], "config.json")) as f:
        process = json.load(f)["process"]
    assert process["args"] == args
    if image == "configured":
        assert "PODWIRE_TEST=1" in process["env"] and process["cwd"] == "/home/podwire"
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    # Both exit at once (sh with no stdin; echo): a clean exit is the command having run.
    assert h.wait_for(lambda: _status(shim, cid).state == api.CONTAINER_EXITED)
    assert _status(shim, cid).exit_code == 0
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def test_relaxed_shapes_containerd_accepts(shim, busybox, tmp_path):
    """Rules relaxed to containerd's: a negative ExecSync timeout means none, an update with no
    linux resources is a no-op, an absolute log_path lands under the pod's log directory, and
    empty DNS entries are dropped."""
    pod_cfg = _pod()
    pod_cfg.log_directory = str(tmp_path / "logs")
    pod_cfg.dns_config.servers.extend(["", "192.0.2.53"])
    pod_cfg.dns_config.searches.append("")
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_cfg), timeout=120).pod_sandbox_id
    try:
        ctr = _container(busybox)
        ctr.log_path = "/c/0.log"
        cid = shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr),
                                      timeout=120).container_id
        assert _status(shim, cid).log_path == str(tmp_path / "logs" / "c" / "0.log")
        shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
        res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["cat", "/etc/resolv.conf"],
                                                   timeout=-1))
        assert (res.exit_code, res.stdout) == (0, b"nameserver 192.0.2.53\n")
        shim.rt.UpdateContainerResources(api.UpdateContainerResourcesRequest(container_id=cid))
        assert _status(shim, cid).state == api.CONTAINER_RUNNING
    finally:
        shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def test_a_symlink_in_the_log_directory_is_refused_and_nothing_written_outside(shim, busybox, tmp_path):
    """conmon (root) would follow it: <pod logs>/c -> elsewhere must not become a log file there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    pod_cfg = _pod()
    pod_cfg.log_directory = str(tmp_path / "logs")
    os.makedirs(pod_cfg.log_directory)
    os.symlink(outside, os.path.join(pod_cfg.log_directory, "c"))
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_cfg), timeout=120).pod_sandbox_id
    try:
        ctr = _container(busybox)
        ctr.log_path = "c/0.log"
        with pytest.raises(grpc.RpcError) as err:
            shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr), timeout=120)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "symlink" in err.value.details()
        assert list(outside.iterdir()) == []
        assert shim.rt.ListContainers(api.ListContainersRequest()).containers == []
    finally:
        shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
