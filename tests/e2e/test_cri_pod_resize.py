"""UpdatePodSandboxResources end to end: a kubelet-like pod cgroup (made by the test, as the
kubelet's cgroupfs driver makes it), real runc containers below it, over the socket."""
from __future__ import annotations

import json
import os
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root
from cri.oci import cgroups

pytestmark = needs_root

MiB = 1 << 20
UNLIMITED = "9223372036854771712"       # v1 memory.limit_in_bytes without a limit


@pytest.fixture
def pod_cgroup(shim):
    """/podwire-resize-<x>/pod<y> in every hierarchy.  Teardown removes the pods first (their
    containers' cgroups live below), then the tree, and checks nothing is left."""
    top = "/podwire-resize-" + uuid.uuid4().hex[:8]
    path = f"{top}/pod{uuid.uuid4().hex[:8]}"
    dirs = [os.path.join(root, path.lstrip("/")) for root in set(cgroups.hierarchies().values())]
    try:
        for d in dirs:
            os.makedirs(d)
        if cgroups.is_v2():
            # As the kubelet does on v2: the pod's controllers enabled from the top down.
            with open(os.path.join(cgroups.hierarchies()[""], top.lstrip("/"), "cgroup.subtree_control"), "w") as f:
                f.write("+cpu +memory +pids")
        yield path
    finally:
        h.remove_all(shim.client)
        h.remove_cgroup_tree(top)
    left = [d for d in dirs if os.path.exists(d)]
    assert not left, f"pod cgroup left behind: {left}"


def _res(**kw) -> api.LinuxContainerResources:
    return api.LinuxContainerResources(**kw)


def _run_pod(shim, cgroup_parent: str, **kw) -> tuple[str, api.PodSandboxConfig]:
    cfg = h.pod_config(**kw)
    cfg.linux.cgroup_parent = cgroup_parent
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id, cfg


def _update(shim, pod_id: str, resources=None, overhead=None):
    req = api.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id)
    if resources is not None:
        req.resources.CopyFrom(resources)
    if overhead is not None:
        req.overhead.CopyFrom(overhead)
    return shim.rt.UpdatePodSandboxResources(req, timeout=30)


def _read(path: str, controller: str, name: str) -> str:
    with open(os.path.join(cgroups.controller_dir(controller, path), name)) as f:
        return f.read().strip()


def _limits(path: str) -> dict[str, str]:
    files = (("cpu", "cpu.weight"), ("cpu", "cpu.max"), ("memory", "memory.max")) if cgroups.is_v2() else (
        ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"),
        ("memory", "memory.limit_in_bytes"))
    return {name: _read(path, ctrl, name) for ctrl, name in files}


def _expected(shares: int | None, quota: int, period: int, memory: int | None) -> dict[str, str]:
    """The pod cgroup's files for these limits on this node's cgroup version (None: unset, as a
    fresh cgroup has it).  v2: cpu.weight by runc 1.1's linear map of shares, cpu.max
    "$QUOTA $PERIOD", memory.max."""
    if cgroups.is_v2():
        weight = "100" if shares is None else str(1 + ((shares - 2) * 9999) // 262142)
        return {"cpu.weight": weight, "cpu.max": f"{'max' if quota < 0 else quota} {period}",
                "memory.max": "max" if memory is None else str(memory)}
    return {"cpu.shares": str(1024 if shares is None else shares), "cpu.cfs_quota_us": str(quota),
            "cpu.cfs_period_us": str(period), "memory.limit_in_bytes": UNLIMITED if memory is None else str(memory)}


def _record(shim, pod_id: str) -> dict:
    with open(os.path.join(shim.cfg.pods_dir, pod_id, "record.json")) as f:
        return json.load(f)


def test_resize_sizes_the_pod_cgroup(shim, pod_cgroup):
    pod_id, _ = _run_pod(shim, pod_cgroup)
    assert _limits(pod_cgroup) == _expected(None, -1, 100000, None)

    # As the kubelet sends it for a pod without overhead: an empty overhead.
    _update(shim, pod_id, _res(cpu_shares=512, cpu_quota=50000, cpu_period=100000,
                               memory_limit_in_bytes=64 * MiB), overhead=_res())
    assert _limits(pod_cgroup) == _expected(512, 50000, 100000, 64 * MiB)

    # With a RuntimeClass overhead (100m, 16Mi) the pod cgroup holds the sum, as the kubelet
    # sized it (433m -> 443 shares; it sends 340 + 102 after subtracting).
    res = _res(cpu_shares=340, cpu_quota=150000, cpu_period=100000, memory_limit_in_bytes=48 * MiB)
    overhead = _res(cpu_shares=102, cpu_quota=10000, cpu_period=100000, memory_limit_in_bytes=16 * MiB)
    _update(shim, pod_id, res, overhead)
    assert _limits(pod_cgroup) == _expected(443, 160000, 100000, 64 * MiB)
    _update(shim, pod_id, res, overhead)                # again: all in place, still fine

    # The request as sent is on the pod's record on disk, for a restarted shim.
    rec = _record(shim, pod_id)
    assert rec["resources"]["cpu_shares"] == "340"
    assert rec["overhead"]["memory_limit_in_bytes"] == str(16 * MiB)
    # ... and in the verbose status, as containerd's "updated-resources".
    info = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)).info
    assert json.loads(info["info"])["updatedResources"]["resources"]["cpu_quota"] == "150000"


def _start_filler(shim, pod_id, pod_cfg, image: str, log_dir) -> str:
    """A container below the pod cgroup, with a CPU limit of its own, holding 24 MiB of the pod's
    /dev/shm (tmpfs pages: charged to the pod and not reclaimable)."""
    linux = api.LinuxContainerConfig(resources=_res(cpu_quota=50000, cpu_period=100000))
    script = "head -c 24m /dev/zero > /dev/shm/fill; echo ok; sleep 3600"
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name="fill"), image=api.ImageSpec(image=image),
                              linux=linux, command=["sh", "-c", script], log_path="fill.log")
    req = api.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg)
    cid = shim.rt.CreateContainer(req, timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid), timeout=60)
    log = log_dir / "fill.log"
    assert h.wait_for(lambda: log.exists() and "ok" in log.read_text(), 30), "/dev/shm was not filled"
    return cid


def test_refused_limits_are_errors_and_leave_the_cgroup_alone(shim, pod_cgroup, tmp_path, test_images):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod_id, pod_cfg = _run_pod(shim, pod_cgroup, log_directory=str(tmp_path / "logs"))
    cid = _start_filler(shim, pod_id, pod_cfg, test_images.busybox, tmp_path / "logs")
    before = _limits(pod_cgroup)

    # Below what the pod uses: refused before anything is written (the CPU part neither).
    with pytest.raises(grpc.RpcError) as err:
        _update(shim, pod_id, _res(cpu_shares=256, memory_limit_in_bytes=8 * MiB))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert "current usage" in err.value.details()
    assert _limits(pod_cgroup) == before

    if not cgroups.is_v2():
        # A pod quota below its container's: the v1 kernel refuses it (EINVAL), said as such.
        # (v2 takes it: a parent's cpu.max simply bounds its children.)
        with pytest.raises(grpc.RpcError) as err:
            _update(shim, pod_id, _res(cpu_quota=20000, cpu_period=100000))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
        assert "kernel refused 20000" in err.value.details()
        assert _limits(pod_cgroup) == before
    assert _record(shim, pod_id)["resources"] is None           # nothing recorded for a failure

    # Above both: applied while the container runs.
    _update(shim, pod_id, _res(cpu_quota=200000, cpu_period=100000, memory_limit_in_bytes=256 * MiB))
    assert _limits(pod_cgroup) == {**before, **{k: v for k, v in _expected(1024, 200000, 100000, 256 * MiB).items()
                                                if k not in ("cpu.shares", "cpu.weight")}}
    assert shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status.state == \
        api.CONTAINER_RUNNING


def test_empty_requests_are_accepted_and_change_nothing(shim, pod_cgroup):
    pod_id, _ = _run_pod(shim, pod_cgroup)
    before = _limits(pod_cgroup)
    _update(shim, pod_id)
    _update(shim, pod_id, _res(), _res())
    assert _limits(pod_cgroup) == before
    rec = _record(shim, pod_id)
    assert (rec["resources"], rec["overhead"]) == ({}, {})


@pytest.mark.parametrize("parent", ["", "absent"])
def test_a_pod_without_its_cgroup_is_accepted(shim, parent):
    """critest/crictl pods have no cgroup_parent; a kubelet's may not exist (yet): best effort,
    nothing created."""
    parent = parent and f"/podwire-resize-absent-{uuid.uuid4().hex[:8]}/pod1"
    pod_id, _ = _run_pod(shim, parent)
    _update(shim, pod_id, _res(cpu_shares=512, memory_limit_in_bytes=64 * MiB))
    assert _record(shim, pod_id)["resources"]["cpu_shares"] == "512"
    # Neither the absent parent nor podwire's own per-pod directory was made for it.
    for path in (parent, f"{shim.cfg.cgroup_parent}/{pod_id}"):
        if path:
            assert not os.path.exists(cgroups.controller_dir("cpu", path)), path


def test_unknown_pod_is_not_found(shim):
    with pytest.raises(grpc.RpcError) as err:
        _update(shim, "0" * 64, _res(cpu_shares=512))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
