"""podwire-cri's metrics end to end: a real shim (in process, its metrics endpoint on a free
port), real pods, containers, a pull from the local registry and an exec session; the endpoint
is scraped over HTTP and the values checked exactly.  Then the kubelet's view: the CRI
ListMetricDescriptors / ListPodSandboxMetrics for a pod with a busy container and traffic."""
from __future__ import annotations

import subprocess
import urllib.request

import grpc
import pytest
from cri_api.v1 import api_pb2 as api
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import WSClient, get_websocket_url
from prometheus_client.parser import text_string_to_metric_families

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root


@pytest.fixture
def shim(shim_factory):
    return shim_factory(metrics_address="127.0.0.1:0")


def _scrape(shim) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} of one scrape."""
    with urllib.request.urlopen(shim.svc.metrics_server.url, timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _get(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _run_pod(shim) -> tuple[str, api.PodSandboxConfig]:
    cfg = h.pod_config()
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id, cfg


def _exec_client(shim, cid: str, cmd) -> WSClient:
    url = shim.rt.Exec(api.ExecRequest(container_id=cid, cmd=list(cmd), stdout=True), timeout=10).url
    cfg = Configuration()
    cfg.host = url.split("/exec/")[0]
    cfg.proxy = None
    return WSClient(cfg, get_websocket_url(url), None, capture_all=False, binary=True)


def test_series_after_pods_a_container_a_pull_and_an_exec(shim, test_images):
    before = _scrape(shim)
    assert _get(before, "podwire_cri_pods", state="ready") == 0
    assert _get(before, "podwire_cri_image_pulls_total", result="success") == 0

    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = _run_pod(shim)
    stopped, _ = _run_pod(shim)
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=stopped), timeout=120)
    cid = h.start_container(shim, pod, test_images.busybox, ["sleep", "3600"])
    with pytest.raises(grpc.RpcError):
        shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id="no-such-container"))

    client = _exec_client(shim, cid, ["sh", "-c", "echo ready; sleep 2"])
    try:
        assert client.readline_stdout(timeout=30) == b"ready"
        during = _scrape(shim)
        client.run_forever(timeout=30)
    finally:
        client.close()
    assert _get(during, "podwire_cri_streaming_sessions", kind="exec") == 1
    assert _get(during, "podwire_cri_streaming_sessions", kind="attach") == 0
    assert h.wait_for(lambda: _get(_scrape(shim), "podwire_cri_streaming_sessions", kind="exec") == 0, 10)

    got = _scrape(shim)
    assert _get(got, "podwire_cri_pods", state="ready") == 1
    assert _get(got, "podwire_cri_pods", state="notready") == 1
    assert _get(got, "podwire_cri_containers", state="running") == 1
    assert _get(got, "podwire_cri_containers", state="created") == 0
    assert _get(got, "podwire_cri_containers", state="exited") == 0
    assert _get(got, "podwire_cri_image_pulls_total", result="success") == 1
    assert _get(got, "podwire_cri_image_pulls_total", result="failure") == 0
    assert _get(got, "podwire_cri_image_pull_duration_seconds_count", result="success") == 1
    assert _get(got, "podwire_cri_image_pull_bytes_total") > 0
    rpc = "podwire_cri_rpc_duration_seconds_count"
    assert _get(got, rpc, method="RunPodSandbox", code="OK") == 2
    assert _get(got, rpc, method="StopPodSandbox", code="OK") == 1
    assert _get(got, rpc, method="PullImage", code="OK") == 1
    assert _get(got, rpc, method="CreateContainer", code="OK") == 1
    assert _get(got, rpc, method="StartContainer", code="OK") == 1
    assert _get(got, rpc, method="Exec", code="OK") == 1
    assert _get(got, rpc, method="ContainerStatus", code="NOT_FOUND") == 1
    assert _get(got, "podwire_cri_rpc_duration_seconds_sum", method="RunPodSandbox", code="OK") > 0


# -- the kubelet's cAdvisor metrics ---------------------------------------------------------------

def _pod_metrics(shim) -> dict[str, api.PodSandboxMetrics]:
    resp = shim.rt.ListPodSandboxMetrics(api.ListPodSandboxMetricsRequest(), timeout=30)
    return {pm.pod_sandbox_id: pm for pm in resp.pod_metrics}


def _find(metrics, name: str, keys: list[str], **labels) -> int | None:
    for m in metrics:
        if m.name == name and all(dict(zip(keys, m.label_values, strict=True)).get(k) == v for k, v in labels.items()):
            return m.value.value
    return None


def test_list_pod_sandbox_metrics_for_a_busy_container_and_pod_traffic(shim, test_images):
    descs = {d.name: list(d.label_keys) for d in
             shim.rt.ListMetricDescriptors(api.ListMetricDescriptorsRequest(), timeout=10).descriptors}
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = _run_pod(shim)
    empty, _ = _run_pod(shim)                       # a pod without containers
    pod_id, pod_cfg = pod
    cid = h.start_container(shim, pod, test_images.busybox, ["sh", "-c", "while :; do :; done"])
    cpu = "container_cpu_usage_seconds_total"

    def busy_for_a_second():
        ctr = _pod_metrics(shim)[pod_id].container_metrics
        return ctr and (_find(ctr[0].metrics, cpu, descs[cpu], cpu="total") or 0) >= 1
    assert h.wait_for(busy_for_a_second, 30, 0.5), "no whole CPU second after 30 s of a busy loop"

    ip = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status.network.ip
    rx, tx = "container_network_receive_bytes_total", "container_network_transmit_bytes_total"
    first = _pod_metrics(shim)[pod_id].metrics
    rx0, tx0 = _find(first, rx, descs[rx], interface="eth0"), _find(first, tx, descs[tx], interface="eth0")
    assert rx0 is not None and tx0 is not None
    subprocess.run(["ping", "-c", "5", "-i", "0.2", "-s", "1000", "-W", "2", ip], check=True,
                   capture_output=True)
    all_pods = _pod_metrics(shim)
    assert set(all_pods) == {pod_id, empty}

    busy = all_pods[pod_id]
    [ctr] = busy.container_metrics
    assert ctr.container_id == cid
    for m in [*busy.metrics, *ctr.metrics, *all_pods[empty].metrics]:
        assert m.name in descs, f"{m.name} has no descriptor"
        assert len(m.label_values) == len(descs[m.name]), m
    ws = "container_memory_working_set_bytes"
    name = pod_cfg.metadata.name
    assert _find(ctr.metrics, ws, descs[ws], pod=name, namespace="e2e", id=cid) > 0
    assert _find(ctr.metrics, cpu, descs[cpu], container=ctr_name(shim, cid), image=test_images.busybox) >= 1
    assert _find(busy.metrics, ws, descs[ws], container="", id=pod_id, pod=name) > 0
    assert _find(busy.metrics, cpu, descs[cpu], container="", pod=name) >= 1
    assert _find(busy.metrics, rx, descs[rx], interface="eth0") >= rx0 + 5 * 1000
    assert _find(busy.metrics, tx, descs[tx], interface="eth0") >= tx0 + 5 * 1000
    assert _find(busy.metrics, "container_network_receive_packets_total",
                 descs["container_network_receive_packets_total"], interface="eth0") >= 5
    assert _find(busy.metrics, "container_network_receive_bytes_total", descs[rx], interface="lo") is None

    other = all_pods[empty]                         # no containers: network and start time only
    assert list(other.container_metrics) == []
    assert {m.name for m in other.metrics} == {"container_start_time_seconds"} | {
        n for n in descs if n.startswith("container_network_")}


def ctr_name(shim, cid: str) -> str:
    return shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status.metadata.name
