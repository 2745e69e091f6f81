"""The daemons' one Kubernetes client loader reads the kubeconfig it is given."""
from __future__ import annotations

from cni.kube import api_client
from cni.daemon.podcidr import kube_api

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: sekrit}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_both_daemons_load_the_same_way(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    assert api_client(str(path)).configuration.host == "https://127.0.0.1:6443"
    assert kube_api(str(path)).api_client.configuration.host == "https://127.0.0.1:6443"
