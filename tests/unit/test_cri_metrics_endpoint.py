"""podwire-cri's metrics without root: the series and their conventions, the boundary's RPC
histogram (in process and scraped over HTTP from a real server), the state collector over fake
state, pull accounting, streaming session counts, the metrics_address key, and
ListPodSandboxMetrics over fake stats against its descriptors.  tests/e2e/test_cri_metrics.py
checks the values after real pods, containers, pulls and exec sessions."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import socket
import threading
import time
import urllib.request

import grpc
import pytest
import websocket
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from cri import config
from cri.errors import CriError
from cri.rpc import metric_descriptors, sandbox_metrics, stats
from cri.server import boundary
from cri.server import main as cri_main
from cni.metrics import parse_address
from cri.server.metrics import CriMetrics, MetricsServer
from cri.server.server import create_server
from cri.store.records import ContainerRecord, PodRecord
from cri.streaming import exec as exec_backend
from cri.streaming.remotecommand import Streams
from cri.streaming.requests import ExecRequest
from cri.streaming.server import StreamingServer

DOCS = os.path.join(os.path.dirname(__file__), "../../docs/cri.md")
SECONDS = 1_000_000_000

# name -> (type, label names): what docs/cri.md promises.
SERIES = {
    "podwire_cri_rpc_duration_seconds": ("histogram", {"method", "code"}),
    "podwire_cri_pods": ("gauge", {"state"}),
    "podwire_cri_containers": ("gauge", {"state"}),
    "podwire_cri_image_pulls": ("counter", {"result"}),
    "podwire_cri_image_pull_duration_seconds": ("histogram", {"result"}),
    "podwire_cri_image_pull_bytes": ("counter", set()),
    "podwire_cri_streaming_sessions": ("gauge", {"kind"}),
}


# -- fakes ------------------------------------------------------------------------------------------

def _pod(pid: str, state: str = "ready", netns: str = "", created: int = 0) -> PodRecord:
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=f"p-{pid}", namespace="ns", uid=pid))
    return PodRecord(id=pid, name=pid, config=cfg, state=state, netns=netns, created_at=created)


def _ctr(cid: str, pod_id: str, state: str = "running", started: int = 0) -> ContainerRecord:
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name=f"c-{cid}"))
    return ContainerRecord(id=cid, pod_id=pod_id, name=cid, config=cfg, state=state,
                           image="registry.example/app:1", started_at=started)


class _Records:
    def __init__(self, items) -> None:
        self.items = list(items)

    def list(self):
        return list(self.items)


class _Streaming:
    def __init__(self, sessions) -> None:
        self.sessions = sessions

    def open_sessions(self):
        return dict(self.sessions)


@dataclasses.dataclass
class FakeSvc:
    pods: _Records
    containers: _Records
    streaming: object = None
    metrics: CriMetrics = dataclasses.field(default_factory=CriMetrics)

    def pod_containers(self, pod_id):
        return [c for c in self.containers.list() if c.pod_id == pod_id]


def _families(registry) -> dict:
    return {f.name: f for f in registry.collect()}


# -- series and conventions -------------------------------------------------------------------------

def test_series_names_types_and_labels_follow_prometheus_conventions():
    svc = FakeSvc(_Records([]), _Records([]), _Streaming({}))
    svc.metrics.watch(svc)
    svc.metrics.observe_rpc("Version", "OK", 0.001)
    with svc.metrics.pull() as progress:
        progress("sha256:a", 10, 10)
    families = _families(svc.metrics.registry)
    assert set(families) == set(SERIES)
    for name, family in families.items():
        kind, labels = SERIES[name]
        assert family.type == kind, name
        assert name.startswith("podwire_cri_") and re.fullmatch(r"[a-z_]+", name), name
        for sample in family.samples:
            if sample.name.endswith("_created"):        # prometheus_client's creation time
                continue
            assert set(sample.labels) - {"le"} == labels, (name, sample)
            if kind == "counter":
                assert sample.name == name + "_total", sample
            elif kind == "histogram":
                assert sample.name in (name + "_bucket", name + "_count", name + "_sum")
            else:
                assert sample.name == name and not name.endswith("_total")
        if kind == "histogram":
            assert name.endswith("_seconds"), "latencies in base units"


def test_docs_list_every_series_and_every_cadvisor_metric():
    with open(DOCS) as f:
        text = f.read()
    documented = set(re.findall(r"`(podwire_cri_[a-z_]+?)(?:_total)?(?:\{[^`]*\})?`", text))
    assert documented == set(SERIES)
    cadvisor = set()
    for name in re.findall(r"^\| `(container_[a-z_{},]+)`", text, re.M):   # {a,b} expanded
        m = re.search(r"\{([a-z,]+)\}", name)
        cadvisor |= {name[:m.start()] + w + name[m.end():] for w in m.group(1).split(",")} if m else {name}
    assert cadvisor == set(metric_descriptors.DESCRIPTORS)


# -- the boundary hook --------------------------------------------------------------------------

class _Context:
    def abort(self, code, details):
        raise RuntimeError(f"aborted {code}")


class _Servicer:
    def __init__(self) -> None:
        self.svc = FakeSvc(_Records([]), _Records([]))


def _count(metrics: CriMetrics, method: str, code: str):
    return metrics.registry.get_sample_value("podwire_cri_rpc_duration_seconds_count",
                                             {"method": method, "code": code})


def test_the_boundary_records_method_and_code_of_each_call():
    calls = []

    def handler(self, request, context):
        calls.append(request)
        if request == "missing":
            raise CriError(grpc.StatusCode.NOT_FOUND, "no such pod")
        if request == "bug":
            raise KeyError("oops")
        time.sleep(0.02)
        return "ok"
    wrapped = boundary.rpc("PodSandboxStatus", handler)
    servicer = _Servicer()
    assert wrapped(servicer, "here", _Context()) == "ok"
    assert wrapped(servicer, "here", _Context()) == "ok"
    for request in ("missing", "bug"):
        with pytest.raises(RuntimeError, match="aborted"):
            wrapped(servicer, request, _Context())
    m = servicer.svc.metrics
    assert _count(m, "PodSandboxStatus", "OK") == 2
    assert _count(m, "PodSandboxStatus", "NOT_FOUND") == 1
    assert _count(m, "PodSandboxStatus", "INTERNAL") == 1
    assert m.registry.get_sample_value("podwire_cri_rpc_duration_seconds_sum",
                                       {"method": "PodSandboxStatus", "code": "OK"}) >= 0.04
    # The 0.02 s calls are above the 10 ms bucket and within the 25 ms... 250 ms ones.
    assert m.registry.get_sample_value("podwire_cri_rpc_duration_seconds_bucket",
                                       {"method": "PodSandboxStatus", "code": "OK", "le": "0.01"}) == 0
    assert m.registry.get_sample_value("podwire_cri_rpc_duration_seconds_bucket",
                                       {"method": "PodSandboxStatus", "code": "OK", "le": "0.25"}) == 2


class _Images:
    def get(self, ref):
        return None

    def list(self, filter_ref=None):
        return []

    def fs_info(self):
        return "/images", 1, 1

    def pull(self, ref, auth=None, progress=None):
        raise CriError(grpc.StatusCode.NOT_FOUND, f"{ref}: manifest unknown")


class _Runtime:
    def lookup(self, cid):
        return None

    def recover(self):
        return []


def _scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return {f.name: f for f in text_string_to_metric_families(resp.read().decode())}


def _value(families: dict, family: str, sample: str, **labels) -> float | None:
    for s in families[family].samples:
        if s.name == sample and s.labels == labels:
            return s.value
    return None


def _cfg(tmp_path, **over) -> config.Config:
    return config.Config(listen=str(tmp_path / "cri.sock"), state_dir=str(tmp_path / "state"),
                         run_dir=str(tmp_path / "run"), cni_conf_dir=str(tmp_path / "net.d"),
                         runc="true", cgroup_driver="cgroupfs", **over)


def test_a_real_server_serves_its_own_registry_over_http(tmp_path):
    server, svc = create_server(_cfg(tmp_path, metrics_address="127.0.0.1:0"),
                                images=_Images(), runtime=_Runtime())
    server.start()
    channel = grpc.insecure_channel("unix://" + str(tmp_path / "cri.sock"))
    try:
        rt, img = api_pb2_grpc.RuntimeServiceStub(channel), api_pb2_grpc.ImageServiceStub(channel)
        rt.Version(api.VersionRequest())
        with pytest.raises(grpc.RpcError):
            rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id="nope"))
        with pytest.raises(grpc.RpcError):
            img.PullImage(api.PullImageRequest(image=api.ImageSpec(image="nothing:1")))
        assert len(rt.ListMetricDescriptors(api.ListMetricDescriptorsRequest()).descriptors) == \
            len(metric_descriptors.DESCRIPTORS)
        assert list(rt.ListPodSandboxMetrics(api.ListPodSandboxMetricsRequest()).pod_metrics) == []
        got = _scrape(svc.metrics_server.url)
        hist = "podwire_cri_rpc_duration_seconds"
        assert _value(got, hist, hist + "_count", method="Version", code="OK") == 1
        assert _value(got, hist, hist + "_count", method="PodSandboxStatus", code="NOT_FOUND") == 1
        assert _value(got, hist, hist + "_count", method="PullImage", code="NOT_FOUND") == 1
        pulls = "podwire_cri_image_pulls"
        assert _value(got, pulls, pulls + "_total", result="failure") == 1
        assert _value(got, pulls, pulls + "_total", result="success") == 0
        assert _value(got, "podwire_cri_pods", "podwire_cri_pods", state="ready") == 0
        assert _value(got, "podwire_cri_streaming_sessions", "podwire_cri_streaming_sessions",
                      kind="exec") == 0
    finally:
        channel.close()
        server.stop(0).wait()
        svc.close()
    with pytest.raises(OSError):        # closed with the shim
        urllib.request.urlopen(svc.metrics_server.url, timeout=2)


def test_a_metrics_address_in_use_stops_the_shim_at_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"metrics_address 127.0.0.1:{port}: .*in use"):
            create_server(_cfg(tmp_path, metrics_address=f"127.0.0.1:{port}"),
                          images=_Images(), runtime=_Runtime())
    # Nothing left listening: a shim with the same socket starts.
    server, svc = create_server(_cfg(tmp_path, metrics_address=""), images=_Images(), runtime=_Runtime())
    server.stop(0).wait()
    svc.close()
    assert svc.metrics_server is None


# -- the state collector --------------------------------------------------------------------------

def test_the_collector_counts_the_state_at_scrape_time():
    pods = _Records([_pod("a"), _pod("b"), _pod("c", "notready")])
    ctrs = _Records([_ctr("1", "a"), _ctr("2", "a", "exited"), _ctr("3", "b", "created"),
                     _ctr("4", "b", "running")])
    streaming = _Streaming({"exec": 2, "portforward": 1})
    svc = FakeSvc(pods, ctrs, streaming)
    svc.metrics.watch(svc)
    get = svc.metrics.registry.get_sample_value
    assert [get("podwire_cri_pods", {"state": s}) for s in ("ready", "notready")] == [2, 1]
    assert [get("podwire_cri_containers", {"state": s}) for s in ("created", "running", "exited", "unknown")] \
        == [1, 2, 1, 0]
    assert [get("podwire_cri_streaming_sessions", {"kind": k}) for k in ("exec", "attach", "portforward")] \
        == [2, 0, 1]
    pods.items.pop()                          # read again at the next scrape
    streaming.sessions = {}
    assert get("podwire_cri_pods", {"state": "notready"}) == 0
    assert get("podwire_cri_streaming_sessions", {"kind": "exec"}) == 0


def test_the_collector_before_the_streaming_server_exists():
    svc = FakeSvc(_Records([]), _Records([]), streaming=None)
    svc.metrics.watch(svc)
    assert svc.metrics.registry.get_sample_value("podwire_cri_streaming_sessions", {"kind": "attach"}) == 0


# -- pulls ------------------------------------------------------------------------------------------

def test_pulls_count_result_duration_and_bytes_received():
    m = CriMetrics()
    get = m.registry.get_sample_value
    with m.pull() as progress:
        progress("sha256:a", 100, 300)
        progress("sha256:b", 50, 50)
        progress("sha256:a", 300, 300)
    assert get("podwire_cri_image_pull_bytes_total") == 350
    with pytest.raises(CriError):
        with m.pull() as progress:
            progress("sha256:c", 40, 100)
            progress("sha256:c", 10, 100)      # the next endpoint: the download starts again
            raise CriError(grpc.StatusCode.UNAVAILABLE, "registry down")
    assert get("podwire_cri_image_pull_bytes_total") == 400
    assert get("podwire_cri_image_pulls_total", {"result": "success"}) == 1
    assert get("podwire_cri_image_pulls_total", {"result": "failure"}) == 1
    assert get("podwire_cri_image_pull_duration_seconds_count", {"result": "failure"}) == 1


# -- streaming sessions ---------------------------------------------------------------------------

def test_streaming_sessions_are_counted_while_open(monkeypatch):
    started, release = threading.Event(), None

    async def run_exec(req, io):
        nonlocal release
        release = asyncio.Event()
        started.set()
        await release.wait()
        return 0
    monkeypatch.setattr(exec_backend, "run_exec", run_exec)
    server = StreamingServer("127.0.0.1", 0, creation_timeout=5)
    server.start()
    try:
        opts = {"stdin": False, "stdout": True, "stderr": True, "tty": False}
        req = ExecRequest(container_id="c1", cmd=("true",), process={}, runc="runc", runc_root="/x",
                          scratch_dir="/tmp", **opts)
        url = server.issue(req, Streams(**opts))
        ws = websocket.create_connection("ws" + url[4:], subprotocols=["v4.channel.k8s.io"], timeout=10)
        try:
            assert started.wait(10)
            assert server.open_sessions() == {"exec": 1}
            server._loop.call_soon_threadsafe(release.set)
            while ws.recv_data(control_frame=True)[0] != websocket.ABNF.OPCODE_CLOSE:
                pass
        finally:
            ws.close()
        deadline = time.monotonic() + 10
        while server.open_sessions().get("exec") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.open_sessions() == {"exec": 0}
    finally:
        server.stop()


# -- config ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, host, port", [
    ("127.0.0.1:9743", "127.0.0.1", 9743), ("[::1]:9743", "::1", 9743),
    ("127.0.0.1:0", "127.0.0.1", 0), ("0.0.0.0:9100", "0.0.0.0", 9100),
])
def test_metrics_addresses_accepted(text, host, port):
    assert parse_address(text) == (host, port)
    assert config.from_dict({"metrics_address": text}).metrics_address == text


@pytest.mark.parametrize("text, words", [
    ("9743", "expected HOST:PORT"), ("127.0.0.1", "expected HOST:PORT"), (":9743", "is not an IP address"),
    ("127.0.0.1:http", "expected HOST:PORT"), ("127.0.0.1:70000", "expected HOST:PORT"),
    ("::1:9743", "goes in brackets"), ("localhost:9743", "is not an IP address"),
    ("metrics.example:9743", "is not an IP address"),
])
def test_bad_metrics_addresses_are_refused_saying_why(text, words):
    with pytest.raises(config.ConfigError) as err:
        config.from_dict({"metrics_address": text}, source="cri.toml")
    assert str(err.value).startswith("cri.toml: metrics_address: ") and words in str(err.value)
    with pytest.raises(ValueError):
        MetricsServer(text, CriMetrics().registry)


def test_metrics_off_and_the_default():
    assert config.from_dict({"metrics_address": ""}).metrics_address == ""
    assert config.Config().metrics_address == "127.0.0.1:9743"
    with pytest.raises(config.ConfigError, match="must be of type str"):
        config.from_dict({"metrics_address": 9743})


def test_the_flag_overrides_the_config_and_is_checked(tmp_path, capsys):
    path = tmp_path / "cri.toml"
    path.write_text('metrics_address = "127.0.0.1:1"\n')
    assert cri_main.main(["--config", str(path), "--metrics-address", "", "--print-config"]) == 0
    assert 'metrics_address = ""' in capsys.readouterr().out
    assert cri_main.main(["--config", str(path), "--metrics-address", "[::1]:9", "--print-config"]) == 0
    assert 'metrics_address = "[::1]:9"' in capsys.readouterr().out
    assert cri_main.main(["--config", str(path), "--metrics-address", "nope", "--print-config"]) == 2
    assert "--metrics-address: metrics_address: metrics address 'nope': expected HOST:PORT" in capsys.readouterr().err


# -- ListPodSandboxMetrics over fake stats --------------------------------------------------------

def _stats(cpu_ns: int, ws: int, swap=None) -> api.ContainerStats:
    st = api.ContainerStats()
    st.cpu.timestamp = 123
    st.cpu.usage_core_nano_seconds.value = cpu_ns
    st.memory.working_set_bytes.value = ws
    st.memory.usage_bytes.value = ws + 10
    st.memory.rss_bytes.value = ws - 10
    st.memory.page_faults.value = 7
    st.memory.major_page_faults.value = 1
    st.writable_layer.used_bytes.value = 4096
    if swap is not None:
        st.swap.swap_usage_bytes.value = swap
    return st


@pytest.fixture
def metered(monkeypatch):
    """Pods: ready with two running containers (one cgroup already gone) and an exited one,
    ready without containers, not ready."""
    pods = _Records([_pod("full", netns="/run/netns/podwire-full", created=5 * SECONDS),
                     _pod("empty", netns="/run/netns/podwire-empty", created=6 * SECONDS),
                     _pod("down", "notready", created=7 * SECONDS)])
    ctrs = _Records([_ctr("c1", "full", started=8 * SECONDS), _ctr("c2", "full", started=9 * SECONDS),
                     _ctr("c3", "full", "exited"), _ctr("c4", "down", "exited")])
    by_id = {"c1": _stats(2_500_000_000, 1000, swap=64)}

    def of_container(svc, ctr):
        st = by_id.get(ctr.id)
        if st is None:                            # c2: its cgroup went away
            gone = api.ContainerStats()
            gone.writable_layer.used_bytes.value = 1
            return gone
        return st
    links = {"podwire-full": [{"ifname": "eth0", "stats64": {
        "rx": {"bytes": 1500, "packets": 10, "errors": 0, "dropped": 1},
        "tx": {"bytes": 900, "packets": 8, "errors": 2, "dropped": 0}}}],
        "podwire-empty": None}                 # unreadable: no network series, no error
    monkeypatch.setattr(stats, "of_container", of_container)
    monkeypatch.setattr(stats, "process_count", lambda svc, cid: 3)
    monkeypatch.setattr(stats, "read_links", lambda netns: links[netns])
    svc = FakeSvc(pods, ctrs)
    return sandbox_metrics.list_pod_sandbox_metrics(svc, api.ListPodSandboxMetricsRequest())


def _all_metrics(resp):
    for pm in resp.pod_metrics:
        yield from pm.metrics
        for cm in pm.container_metrics:
            yield from cm.metrics


def _by_name(metrics) -> dict:
    out: dict = {}
    for m in metrics:
        out.setdefault(m.name, []).append(m)
    return out


def test_every_metric_matches_its_descriptor(metered):
    descs = {d.name: d for d in metric_descriptors.list_metric_descriptors(
        None, api.ListMetricDescriptorsRequest()).descriptors}
    emitted = list(_all_metrics(metered))
    assert emitted
    for m in emitted:
        assert m.name in descs, m.name
        assert len(m.label_values) == len(descs[m.name].label_keys), m.name
        want = api.COUNTER if m.name.endswith("_total") else api.GAUGE
        assert m.metric_type == want, m.name
    for d in descs.values():
        assert set(d.label_keys) >= {"container", "pod", "namespace", "id", "image", "name"}
        assert len(set(d.label_keys)) == len(d.label_keys)


def test_sandbox_metrics_per_container_and_per_pod(metered):
    pods = {pm.pod_sandbox_id: pm for pm in metered.pod_metrics}
    assert set(pods) == {"full", "empty", "down"}
    full = pods["full"]
    assert [cm.container_id for cm in full.container_metrics] == ["c1", "c2"]      # running only
    c1 = _by_name(full.container_metrics[0].metrics)
    keys = metric_descriptors.DESCRIPTORS["container_cpu_usage_seconds_total"].label_keys
    cpu = c1["container_cpu_usage_seconds_total"][0]
    assert dict(zip(keys, cpu.label_values, strict=True)) == {
        "container": "c-c1", "id": "c1", "image": "registry.example/app:1", "name": "c-c1",
        "namespace": "ns", "pod": "p-full", "cpu": "total"}
    assert cpu.value.value == 2 and cpu.timestamp == 123          # whole seconds, the stats' time
    assert c1["container_memory_working_set_bytes"][0].value.value == 1000
    assert c1["container_memory_swap"][0].value.value == 64
    assert c1["container_start_time_seconds"][0].value.value == 8
    faults = {m.label_values[-2]: m.value.value for m in c1["container_memory_failures_total"]}
    assert faults == {"pgfault": 7, "pgmajfault": 1}
    assert "container_network_receive_bytes_total" not in c1       # the pod's series carry it
    c2 = _by_name(full.container_metrics[1].metrics)                # cgroup gone: no cpu/memory
    assert set(c2) == {"container_start_time_seconds", "container_fs_usage_bytes"}

    pod = _by_name(full.metrics)
    assert pod["container_cpu_usage_seconds_total"][0].label_values[:2] == ["", "full"]
    assert pod["container_cpu_usage_seconds_total"][0].value.value == 2
    assert pod["container_memory_working_set_bytes"][0].value.value == 1000
    assert pod["container_processes"][0].value.value == 3
    assert pod["container_start_time_seconds"][0].value.value == 5
    rx = pod["container_network_receive_bytes_total"][0]
    assert rx.value.value == 1500 and rx.label_values[-1] == "eth0"
    assert pod["container_network_transmit_errors_total"][0].value.value == 2
    assert pod["container_network_receive_packets_dropped_total"][0].value.value == 1
    assert "container_memory_swap" not in pod

    empty = pods["empty"]           # ready, no containers, network unreadable
    assert list(empty.container_metrics) == []
    assert set(_by_name(empty.metrics)) == {"container_start_time_seconds"}
    down = pods["down"]             # not ready, its container exited
    assert list(down.container_metrics) == []
    assert set(_by_name(down.metrics)) == {"container_start_time_seconds"}
