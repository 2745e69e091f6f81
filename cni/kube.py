"""The one Kubernetes API client loader of podwire's daemons (podwire-cnid reads its Node,
podwire-netpol watches pods, namespaces and policies).  In cni/, the lowest layer both may
import; the kubernetes package is imported only when called, so the CNI executables' start-up
stays standard-library only."""
from __future__ import annotations


def api_client(kubeconfig: str = ""):
    """A kubernetes.client.ApiClient: the given kubeconfig; else the in-cluster service account
    (a daemon run as a pod); else ~/.kube/config or $KUBECONFIG (a node's own daemon)."""
    from kubernetes import client, config

    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    return client.ApiClient()
