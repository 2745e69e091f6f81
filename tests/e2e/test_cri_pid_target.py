"""pid namespace TARGET: a container may join the pid namespace of another container of its
own pod (ephemeral debug containers), never of another pod's (containerd refuses it too)."""
from __future__ import annotations

import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from conftest import needs_root

pytestmark = needs_root


def _run_pod(shim) -> str:
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(
        name="t" + uuid.uuid4().hex[:6], namespace="ns", uid=uuid.uuid4().hex))
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id


def _container(shim, pod_id: str, image: str, name: str, command: list[str], target: str = "") -> str:
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                              command=command)
    if target:
        ns = cfg.linux.security_context.namespace_options
        ns.pid, ns.target_id = api.TARGET, target
    return shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg),
                                   timeout=120).container_id


def test_target_in_the_same_pod_shares_its_processes_and_another_pods_is_refused(shim, test_images):
    image = test_images.busybox
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=image)), timeout=120)
    pod_a, pod_b = _run_pod(shim), _run_pod(shim)
    try:
        target = _container(shim, pod_a, image, "target", ["sleep", "4242"])
        shim.rt.StartContainer(api.StartContainerRequest(container_id=target))
        debug = _container(shim, pod_a, image, "debug", ["sleep", "3600"], target=target)
        shim.rt.StartContainer(api.StartContainerRequest(container_id=debug))
        res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=debug, cmd=["ps"], timeout=10))
        assert b"sleep 4242" in res.stdout, res.stdout
        with pytest.raises(grpc.RpcError) as err:
            _container(shim, pod_b, image, "intruder", ["sleep", "3600"], target=target)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "belongs to pod" in err.value.details()
        listed = shim.rt.ListContainers(api.ListContainersRequest(
            filter=api.ContainerFilter(pod_sandbox_id=pod_b))).containers
        assert listed == []
    finally:
        for pod in (pod_a, pod_b):
            shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod))
            shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod))
