"""The shim's gRPC surface over a real channel on a temp socket, no root needed:
factory, the one error boundary, UNIMPLEMENTED RPCs, runtime info, lookups of unknown objects.

The engines are small test doubles here (the e2e tier runs the real ones)."""
from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc

from cri.config import Config
from cri.server import boundary
from cri.server.server import create_server


class FakeImages:
    def __init__(self) -> None:
        self.fail = None

    def get(self, ref):
        if self.fail:
            raise self.fail
        return None

    status = get

    def list(self, filter_ref=None):
        return []

    def fs_info(self):
        return "/images", 123, 4


class FakeRuntime:
    def lookup(self, cid):
        return None

    def recover(self):
        return []


@pytest.fixture
def served(tmp_path):
    cfg = Config(listen=str(tmp_path / "cri.sock"), state_dir=str(tmp_path / "state"),
                 run_dir=str(tmp_path / "run"), cni_conf_dir=str(tmp_path / "net.d"), runc="true",
                 cgroup_driver="cgroupfs",   # whatever PID 1 is (test_cri_cgroup_driver.py: systemd)
                 metrics_address="")         # not the node's 127.0.0.1:9743 (test_cri_metrics.py)
    images = FakeImages()
    server, svc = create_server(cfg, images=images, runtime=FakeRuntime())
    server.start()
    channel = grpc.insecure_channel("unix://" + cfg.socket_path)
    yield (api_pb2_grpc.RuntimeServiceStub(channel), api_pb2_grpc.ImageServiceStub(channel), images, svc)
    channel.close()
    server.stop(0).wait()
    svc.close()


def test_version_and_runtime_config(served):
    rt, _, _, _ = served
    v = rt.Version(api.VersionRequest())
    assert (v.runtime_name, v.runtime_api_version, v.version) == ("podwire", "v1", "0.1.0")
    assert rt.RuntimeConfig(api.RuntimeConfigRequest()).linux.cgroup_driver == api.CGROUPFS


def test_status_reports_network_not_ready_without_a_config(served):
    rt, _, _, _ = served
    conds = {c.type: c for c in rt.Status(api.StatusRequest()).status.conditions}
    assert conds["RuntimeReady"].status
    assert not conds["NetworkReady"].status and "no valid network configuration" in conds["NetworkReady"].message


def test_update_runtime_config_validates_and_persists(served):
    rt, _, _, svc = served
    req = api.UpdateRuntimeConfigRequest()
    req.runtime_config.network_config.pod_cidr = "not-a-cidr"
    with pytest.raises(grpc.RpcError) as err:
        rt.UpdateRuntimeConfig(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    req.runtime_config.network_config.pod_cidr = "10.244.1.0/24,fd00:1::/64"
    rt.UpdateRuntimeConfig(req)
    from cri.server.services import RuntimeState
    assert RuntimeState(svc.state.path).pod_cidr == "10.244.1.0/24,fd00:1::/64"


@pytest.mark.parametrize("call, req", [
    ("CheckpointContainer", api.CheckpointContainerRequest()),
])
def test_unimplemented_rpcs_say_so(served, call, req):
    rt, _, _, _ = served
    with pytest.raises(grpc.RpcError) as err:
        getattr(rt, call)(req)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "not implemented by podwire-cri" in err.value.details()


@pytest.mark.parametrize("call, req, code, words", [
    ("Exec", api.ExecRequest(container_id="abc", cmd=["sh"]), grpc.StatusCode.INVALID_ARGUMENT,
     "one of stdin, stdout, or stderr must be set"),
    ("Exec", api.ExecRequest(container_id="abc", cmd=["sh"], tty=True, stdout=True, stderr=True),
     grpc.StatusCode.INVALID_ARGUMENT, "tty and stderr cannot both be true"),
    ("Exec", api.ExecRequest(container_id="abc", stdout=True), grpc.StatusCode.INVALID_ARGUMENT, "command"),
    ("Exec", api.ExecRequest(container_id="abc", cmd=["sh"], stdout=True), grpc.StatusCode.NOT_FOUND, "abc"),
    ("Attach", api.AttachRequest(container_id="abc", tty=True, stdout=True, stderr=True),
     grpc.StatusCode.INVALID_ARGUMENT, "tty and stderr"),
    ("Attach", api.AttachRequest(container_id="abc", stdin=True), grpc.StatusCode.NOT_FOUND, "abc"),
    ("PortForward", api.PortForwardRequest(pod_sandbox_id="abc", port=[80]), grpc.StatusCode.NOT_FOUND, "abc"),
])
def test_streaming_rpcs_check_their_requests(served, call, req, code, words):
    rt, _, _, _ = served
    with pytest.raises(grpc.RpcError) as err:
        getattr(rt, call)(req)
    assert err.value.code() == code
    assert words in err.value.details()


def test_streaming_urls_are_bounded_like_the_kubelets(served):
    from cri.errors import CriError
    from cri.rpc.streaming import issue_url
    from cri.streaming.requests import PortForwardRequest
    _, _, _, svc = served
    svc.streaming.tokens.max_in_flight = 2
    urls = [issue_url(svc, PortForwardRequest("p", "", (80,))) for _ in range(2)]
    assert all(u.startswith(svc.streaming.base_url + "/portforward/") for u in urls)
    with pytest.raises(CriError) as err:
        issue_url(svc, PortForwardRequest("p", "", (80,)))
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("call, req", [
    ("PodSandboxStatus", api.PodSandboxStatusRequest(pod_sandbox_id="abc")),
    ("ContainerStatus", api.ContainerStatusRequest(container_id="abc")),
    ("StartContainer", api.StartContainerRequest(container_id="abc")),
    ("ExecSync", api.ExecSyncRequest(container_id="abc", cmd=["true"])),
    ("ContainerStats", api.ContainerStatsRequest(container_id="abc")),
    ("PodSandboxStats", api.PodSandboxStatsRequest(pod_sandbox_id="abc")),
    ("UpdatePodSandboxResources", api.UpdatePodSandboxResourcesRequest(pod_sandbox_id="abc")),
    ("ReopenContainerLog", api.ReopenContainerLogRequest(container_id="abc")),
    ("CreateContainer", api.CreateContainerRequest(pod_sandbox_id="abc", config=api.ContainerConfig(
        metadata=api.ContainerMetadata(name="c"), image=api.ImageSpec(image="busybox")))),
])
def test_unknown_objects_are_not_found(served, call, req):
    rt, _, _, _ = served
    with pytest.raises(grpc.RpcError) as err:
        getattr(rt, call)(req)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()


def test_update_pod_sandbox_resources_without_a_pod_cgroup_is_recorded(served):
    """A pod without cgroup_parent has no cgroup of the kubelet's to size: accepted, and the
    request is kept on the pod's record on disk (a restarted shim loads it)."""
    from cri.store import atomic
    from cri.store.records import PodRecord
    rt, _, _, svc = served
    svc.pods.put(PodRecord(id="p1" * 32, name="n", config=api.PodSandboxConfig()))
    res = api.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=64 << 20)
    rt.UpdatePodSandboxResources(api.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id="p1", resources=res, overhead=api.LinuxContainerResources()))
    on_disk = PodRecord.from_dict(atomic.read_json(svc.pods.dir_of("p1" * 32) + "/record.json"))
    assert on_disk.resources == {"cpu_shares": "512", "memory_limit_in_bytes": str(64 << 20)}
    assert on_disk.overhead == {}
    rt.UpdatePodSandboxResources(api.UpdatePodSandboxResourcesRequest(pod_sandbox_id="p1"))
    assert (svc.pods.get("p1" * 32).resources, svc.pods.get("p1" * 32).overhead) == (None, None)


def test_stop_and_remove_of_unknown_objects_succeed(served):
    rt, _, _, _ = served
    rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id="gone"))
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id="gone"))
    rt.StopContainer(api.StopContainerRequest(container_id="gone"))
    rt.RemoveContainer(api.RemoveContainerRequest(container_id="gone"))


def test_empty_lists(served):
    rt, img, _, _ = served
    assert rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    assert rt.ListContainers(api.ListContainersRequest()).containers == []
    assert rt.ListContainerStats(api.ListContainerStatsRequest()).stats == []
    assert rt.ListPodSandboxStats(api.ListPodSandboxStatsRequest()).stats == []
    assert img.ListImages(api.ListImagesRequest()).images == []


def test_bad_requests_are_invalid_argument(served):
    rt, _, _, _ = served
    cases = [
        (rt.RunPodSandbox, api.RunPodSandboxRequest(config=api.PodSandboxConfig())),
        (rt.RunPodSandbox, api.RunPodSandboxRequest(
            config=api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="p", namespace="n", uid="u")),
            runtime_handler="kata")),
        (rt.CreateContainer, api.CreateContainerRequest(pod_sandbox_id="x", config=api.ContainerConfig())),
        (rt.ExecSync, api.ExecSyncRequest(container_id="x")),
        (rt.ContainerStatus, api.ContainerStatusRequest()),
    ]
    for call, req in cases:
        with pytest.raises(grpc.RpcError) as err:
            call(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (req, err.value.details())


def test_image_status_of_an_absent_image_is_empty_and_errors_cross_the_boundary(served):
    _, img, images, _ = served
    assert not img.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image="busybox"))).HasField("image")
    images.fail = ZeroDivisionError("boom")
    with pytest.raises(grpc.RpcError) as err:
        img.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image="busybox")))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "ZeroDivisionError: boom" in err.value.details()
    fs = img.ImageFsInfo(api.ImageFsInfoRequest()).image_filesystems[0]
    assert (fs.fs_id.mountpoint, fs.used_bytes.value, fs.inodes_used.value) == ("/images", 123, 4)


def test_every_rpc_is_wrapped_by_the_boundary():
    with pytest.raises(TypeError, match="lacks RPCs"):
        @boundary.servicer(api_pb2_grpc.RuntimeServiceServicer)
        class Incomplete(api_pb2_grpc.RuntimeServiceServicer):
            def Version(self, req, ctx):
                return api.VersionResponse()
