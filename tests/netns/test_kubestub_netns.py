"""The API stub is reachable on 127.0.0.1 inside a node's network namespace."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from kubestub import KubeStub, node


@pytest.fixture
def netns():
    name = f"pwks-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_daemon_in_a_node_namespace_lists_through_the_stub(netns, tmp_path):
    with KubeStub() as stub:
        stub.put(node("n1", ["10.1.1.0/24"], ["192.168.50.1"]))
        path = stub.kubeconfig(str(tmp_path / "kc"), netns=netns)
        code = ("import sys; from kubernetes import client, config\n"
                "config.load_kube_config(config_file=sys.argv[1])\n"
                "print(client.CoreV1Api().read_node('n1').spec.pod_cidrs)")
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, path],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "['10.1.1.0/24']"
        assert json.load(open(path))["clusters"][0]["cluster"]["server"] != stub.url()  # its own port there
