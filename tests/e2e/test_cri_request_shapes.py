"""Requests as real clients send them, not as podwire's own tests like to: the minimal configs
(only what runtime.v1 marks required), empty optional fields, unset sections, long and
unusual but legal values, and the shapes of critest, crictl and older kubelets.

Each shape runs a pod, a container in it, an ExecSync and the whole teardown over the socket; the
fixture then checks nothing was left on the host."""
from __future__ import annotations

import socket
import uuid

import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root


def _minimal_pod(name: str = "") -> api.PodSandboxConfig:
    """Only metadata, as crictl's smallest runp file: no hostname, log_directory, linux, dns."""
    return api.PodSandboxConfig(metadata=api.PodSandboxMetadata(
        name=name or "p" + uuid.uuid4().hex[:6], namespace="ns", uid=uuid.uuid4().hex))


def _critest_pod() -> api.PodSandboxConfig:
    """critest's CreatePodSandboxForContainer: a long capitalised name, no hostname."""
    cfg = _minimal_pod("create-PodSandbox-for-container-" + str(uuid.uuid4()))
    cfg.metadata.namespace = "cri-test-namespace" + str(uuid.uuid4())
    cfg.metadata.attempt = 0
    cfg.linux.cgroup_parent = ""
    return cfg


def _shape(mutate):
    def make() -> api.PodSandboxConfig:
        cfg = _minimal_pod()
        mutate(cfg)
        return cfg
    return make


POD_SHAPES = {
    "minimal": _minimal_pod,
    "critest": _critest_pod,
    "dns-label-of-253-chars": lambda: _minimal_pod(".".join(["a" * 63] * 3) + "." + "b" * 61),
    "empty-linux-section": _shape(lambda c: c.linux.SetInParent()),
    "empty-security-context": _shape(lambda c: c.linux.security_context.SetInParent()),
    "empty-dns-config": _shape(lambda c: c.dns_config.SetInParent()),
    "large-attempt": _shape(lambda c: setattr(c.metadata, "attempt", 2 ** 32 - 1)),
    "empty-label-and-annotation-values": _shape(lambda c: (c.labels.update({"a": "", "io.x/y": ""}),
                                                           c.annotations.update({"": "", "b": ""}))),
    "host-network-no-hostname": _shape(
        lambda c: setattr(c.linux.security_context.namespace_options, "network", api.NODE)),
    "host-network-and-ipc": _shape(lambda c: (
        setattr(c.linux.security_context.namespace_options, "network", api.NODE),
        setattr(c.linux.security_context.namespace_options, "ipc", api.NODE))),
    "pod-pid-namespace": _shape(
        lambda c: setattr(c.linux.security_context.namespace_options, "pid", api.POD)),
    "empty-port-mapping-list-entry": _shape(lambda c: c.port_mappings.add(container_port=80)),
}


def _minimal_container(image: str) -> api.ContainerConfig:
    """Only metadata.name and the image: no command (the image's CMD runs), no log_path,
    no linux section, no mounts, no envs."""
    return api.ContainerConfig(metadata=api.ContainerMetadata(name="c"), image=api.ImageSpec(image=image))


def _life_cycle(shim, pod_cfg: api.PodSandboxConfig, ctr_cfg: api.ContainerConfig,
                cmd=("hostname",)) -> api.ExecSyncResponse:
    # Old crictl/kubelets send no sandbox_config in CreateContainer and no runtime_handler.
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_cfg), timeout=120).pod_sandbox_id
    st = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert st.state == api.SANDBOX_READY
    assert dict(st.labels) == dict(pod_cfg.labels) and dict(st.annotations) == dict(pod_cfg.annotations)
    assert st.metadata == pod_cfg.metadata
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr_cfg),
                                  timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10))
    cst = shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status
    assert cst.metadata == ctr_cfg.metadata and cst.log_path == ""
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid))
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    return res


@pytest.fixture
def busybox(shim, test_images) -> str:
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    return test_images.busybox


@pytest.mark.parametrize("shape", sorted(POD_SHAPES))
def test_pod_shapes(shim, busybox, shape):
    ctr = _minimal_container(busybox)
    ctr.command.extend(["sleep", "3600"])        # busybox's CMD is sh, which exits at once
    res = _life_cycle(shim, POD_SHAPES[shape](), ctr)
    assert res.exit_code == 0 and res.stdout.decode().strip() == socket.gethostname()


def test_minimal_container_runs_the_images_cmd(shim, busybox, test_images):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.configured)), timeout=120)
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=_minimal_pod()), timeout=120).pod_sandbox_id
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=_minimal_container(test_images.configured)), timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))

    def status() -> api.ContainerStatus:
        return shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status
    assert h.wait_for(lambda: status().state == api.CONTAINER_EXITED)
    assert status().exit_code == 0                 # ENTRYPOINT ["/bin/sh", "-c"] + CMD ["echo configured"]


@pytest.mark.parametrize("container_shape", [
    "empty-linux", "empty-security-context", "log-path-without-pod-log-directory", "empty-envs-and-args",
    "empty-mounts-entry-fields"])
def test_container_shapes(shim, busybox, tmp_path, container_shape):
    ctr = _minimal_container(busybox)
    ctr.command.extend(["sleep", "3600"])
    if container_shape == "empty-linux":
        ctr.linux.SetInParent()
    elif container_shape == "empty-security-context":
        ctr.linux.security_context.SetInParent()
    elif container_shape == "log-path-without-pod-log-directory":
        ctr.log_path = "c/0.log"                 # no log_directory in the pod: nothing is written
    elif container_shape == "empty-envs-and-args":
        ctr.envs.add(key="EMPTY", value="")
        ctr.args.append("")
        ctr.command[:] = ["sh", "-c", "sleep 3600", ""]
    elif container_shape == "empty-mounts-entry-fields":
        ctr.mounts.add(container_path="/data", host_path=str(tmp_path / "made-by-the-shim"))
    res = _life_cycle(shim, _minimal_pod(), ctr, cmd=("sh", "-c", "echo ok; echo \"[$EMPTY]\""))
    assert (res.exit_code, res.stdout) == (0, b"ok\n[]\n")
