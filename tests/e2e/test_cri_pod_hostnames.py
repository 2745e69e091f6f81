"""Pod hostnames end to end, as critest and crictl send them: what the container's UTS namespace,
/etc/hostname and $HOSTNAME hold, and what is refused with nothing left behind."""
from __future__ import annotations

import socket
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root
NODE = socket.gethostname()


def _pod_config(hostname: str, host_network: bool = False) -> api.PodSandboxConfig:
    # critest's shape: a long, capitalised name and no hostname unless given.
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(
        name="create-PodSandbox-for-container-" + str(uuid.uuid4()), namespace="cri-test",
        uid=str(uuid.uuid4())), hostname=hostname)
    if host_network:
        cfg.linux.security_context.namespace_options.network = api.NODE
    return cfg


def _seen_inside(shim, image: str, cfg: api.PodSandboxConfig) -> list[str]:
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    ctr = api.ContainerConfig(metadata=api.ContainerMetadata(name="c"), image=api.ImageSpec(image=image),
                              command=["sleep", "3600"])
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr,
                                                             sandbox_config=cfg), timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, timeout=10, cmd=[
        "sh", "-c", 'cat /proc/sys/kernel/hostname; cat /etc/hostname; echo "$HOSTNAME"']))
    assert res.exit_code == 0, res.stderr
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    return res.stdout.decode().splitlines()


@pytest.mark.parametrize("hostname, host_network, uts, etc_hostname, env", [
    ("", False, NODE, NODE, NODE),
    ("Mixed_Case name", False, *["Mixed_Case name"] * 3),   # hostname(1) would refuse it
    ("h" * 64, False, *["h" * 64] * 3),
    ("", True, NODE, NODE, NODE),
    # The node's UTS namespace; /etc/hostname and $HOSTNAME the config's, as containerd writes them.
    ("web-0", True, NODE, "web-0", "web-0"),
])
def test_hostname_inside_the_pod(shim, test_images, hostname, host_network, uts, etc_hostname, env):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    seen = _seen_inside(shim, test_images.busybox, _pod_config(hostname, host_network))
    assert seen == [uts, etc_hostname, env]


@pytest.mark.parametrize("hostname", ["h" * 65, "two\nlines"])
def test_refused_hostname_leaves_nothing(shim, hostname):
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=_pod_config(hostname)), timeout=120)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "hostname" in err.value.details()
    assert shim.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    assert h.netns_of(shim.cfg) == []
