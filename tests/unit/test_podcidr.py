"""The node's pod CIDR: from podwire-cnid's config or the Kubernetes Node, published
for podwire-ipam's ``usePodCidr`` ranges."""
from __future__ import annotations

import http.server
import json
import threading
import types

import pytest

from cni.daemon.podcidr import PodCidrs, kube_api, node_pod_cidrs
from cni.errors import CniError
from cni.ipam import config, nodecidr
from cni.skel import CmdArgs


def node(pod_cidr=None, pod_cidrs=None):
    return types.SimpleNamespace(spec=types.SimpleNamespace(pod_cidr=pod_cidr, pod_cidrs=pod_cidrs))


class FakeApi:
    def __init__(self, *answers) -> None:
        self.answers = list(answers)

    def read_node(self, name, **kwargs):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_dual_stack_pod_cidrs_win_over_the_single_one():
    api = FakeApi(node("10.244.1.0/24", ["10.244.1.0/24", "fd00:10:244:1::/64"]))
    assert node_pod_cidrs(api, "n1") == ["10.244.1.0/24", "fd00:10:244:1::/64"]
    assert node_pod_cidrs(FakeApi(node("10.244.2.0/24")), "n1") == ["10.244.2.0/24"]
    assert node_pod_cidrs(FakeApi(node()), "n1") == []


def test_the_daemon_waits_for_the_node_controller_then_publishes(tmp_path):
    api = FakeApi(ConnectionError("apiserver down"), node(), node(pod_cidrs=["10.244.3.0/24"]))
    cidrs = PodCidrs(str(tmp_path / "pc.json"), node_name="n1", api_factory=lambda: api, retry_s=0.01)
    assert "not known yet" in cidrs.problem()
    cidrs.start()
    cidrs._thread.join(5)
    cidrs.stop()
    assert cidrs.problem() is None
    assert nodecidr.read(str(tmp_path / "pc.json")) == ["10.244.3.0/24"]


def test_static_cidrs_from_the_config(tmp_path):
    cidrs = PodCidrs(str(tmp_path / "pc.json"), static=["10.1.2.0/24"])
    cidrs.start()
    assert cidrs.problem() is None and nodecidr.read(str(tmp_path / "pc.json")) == ["10.1.2.0/24"]


def test_use_pod_cidr_ranges_resolve_to_the_published_cidrs(tmp_path, monkeypatch):
    monkeypatch.setenv(nodecidr.PATH_ENV, str(tmp_path / "pc.json"))
    conf = {"cniVersion": "1.1.0", "name": "net1",
            "ipam": {"type": "podwire-ipam", "ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]]}}
    args = CmdArgs(command="ADD", container_id="a", ifname="eth0", config=conf)
    with pytest.raises(CniError) as err:
        config.load(args)
    assert err.value.code == 11
    nodecidr.publish(["10.244.7.0/24", "fd00:7::/64"])
    sets = config.load(args).range_sets
    assert [str(s.ranges[0].subnet) for s in sets] == ["10.244.7.0/24", "fd00:7::/64"]


class _FakeApiServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/api/v1/nodes/node-7":
            self.send_error(404)
            return
        body = json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-7"},
                           "spec": {"podCIDR": "10.244.7.0/24",
                                    "podCIDRs": ["10.244.7.0/24", "fd00:10:244:7::/64"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_official_client_reads_the_node_from_an_api_server(tmp_path):
    pytest.importorskip("kubernetes")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    try:
        assert node_pod_cidrs(kube_api(str(kubeconfig)), "node-7") == ["10.244.7.0/24", "fd00:10:244:7::/64"]
    finally:
        server.shutdown()
        server.server_close()
