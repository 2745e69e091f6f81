"""cri/sandbox/netpol.py without an agent: label filtering, named ports, no-socket behaviour."""
from __future__ import annotations

import json

from cri_api.v1 import api_pb2 as api

from cri.sandbox import netpol


def _ctr(ports) -> api.ContainerConfig:
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name="c"))
    if ports is not None:
        cfg.annotations[netpol.PORTS_ANNOTATION] = ports if isinstance(ports, str) else json.dumps(ports)
    return cfg


def test_kubelet_labels_are_not_pod_labels():
    cfg = api.PodSandboxConfig(labels={"app": "web", "io.kubernetes.pod.name": "p", "io.kubernetes.pod.uid": "u",
                                       "io.kubernetes.pod.namespace": "n", "io.kubernetes.other": "kept"})
    assert netpol.pod_labels(cfg) == {"app": "web", "io.kubernetes.other": "kept"}


def test_named_ports_merge_and_skip_unnamed_or_malformed():
    ctrs = [_ctr([{"name": "http", "containerPort": 80}, {"containerPort": 9000, "protocol": "TCP"}]),
            _ctr([{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"name": "http", "containerPort": 80,
                                                                           "protocol": "TCP"}]),
            _ctr("not json"), _ctr(None), _ctr([{"name": "x", "containerPort": 0}])]
    assert netpol.named_ports(ctrs) == [("http", "TCP", 80), ("dns", "UDP", 53)]


def test_no_socket_means_no_agent(tmp_path):
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="p", namespace="n", uid="u"))
    for path in ("", str(tmp_path / "missing.sock")):
        agent = netpol.NetpolAgent(path, 1.0)
        assert not agent.present() and agent.register(cfg) is False
        agent.set_ports(cfg, [("http", "TCP", 80)])
        agent.unregister(cfg)
