"""Policy sources: the watched directory and the Kubernetes API (with injected fakes)."""
from __future__ import annotations

import os
import queue
import threading
import time

from netpol.sources.files import DirectorySource
from netpol.sources.kube import KubeSource, pod_from_object
from netpoltest import CASES, fake_agent, fake_ips

IPS = fake_ips()


def touch_later(path, text: str) -> None:
    """Write so that the (mtime_ns, size) signature surely changes."""
    st = os.stat(path) if os.path.exists(path) else None
    with open(path, "w") as f:
        f.write(text)
    if st is not None:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_watched_directory_applies_prunes_and_survives_bad_files(tmp_path):
    agent, _ = fake_agent()
    watched = tmp_path / "policies"
    watched.mkdir()
    (watched / "a.yaml").write_text(CASES["union"](IPS))
    (watched / "ignored.txt").write_text("not a manifest")
    source = DirectorySource(agent, str(watched))
    source.scan()
    assert agent.policy_keys() == ["x/allow-yb-udp", "x/deny-all"]
    touch_later(watched / "a.yaml", CASES["deny-all"](IPS))
    source.scan()
    assert agent.policy_keys() == ["x/deny-all"]
    touch_later(watched / "a.yaml", CASES["deny-all"](IPS).replace("podSelector: {}", "podSelector: {}\n  bad: 1"))
    source.scan()
    assert agent.policy_keys() == ["x/deny-all"]  # the last good version stays in force
    assert "unknown field" in source.errors[str(watched / "a.yaml")]
    (watched / "b.yml").write_text(CASES["sctp-only"](IPS))
    os.unlink(watched / "a.yaml")
    source.scan()
    assert agent.policy_keys() == ["x/sctp-only"] and source.errors == {}


def test_watched_directory_forgets_files_removed_while_the_agent_was_down(tmp_path):
    agent, _ = fake_agent()
    agent.apply(CASES["deny-all"](IPS), source=f"file:{tmp_path}/gone.yaml")
    agent.apply(CASES["sctp-only"](IPS), source="file:/elsewhere/kept.yaml")
    DirectorySource(agent, str(tmp_path)).scan()
    assert agent.policy_keys() == ["x/sctp-only"]


class FakeWatch:
    """kubernetes.watch.Watch's interface: stream(list_fn, **kw) yields events until stopped."""

    def __init__(self, events: dict):
        self.events = events
        self.stopped = threading.Event()

    def stream(self, list_fn, **kw):
        q = self.events[list_fn.__name__]
        while not self.stopped.is_set():
            try:
                yield q.get(timeout=0.05)
            except queue.Empty:
                continue

    def stop(self):
        self.stopped.set()


class FakeApi:
    def __init__(self, namespaces, pods, policies, services=()):
        self._lists = {"list_namespace": namespaces, "list_pod_for_all_namespaces": pods,
                       "list_network_policy_for_all_namespaces": policies,
                       "list_service_for_all_namespaces": list(services)}
        self.events = {name: queue.Queue() for name in self._lists}
        for name in self._lists:
            setattr(self, name, self._lister(name))

    def _lister(self, name):
        def list_fn(**kw):
            return {"metadata": {"resourceVersion": "7"}, "items": self._lists[name]}
        list_fn.__name__ = name
        return list_fn


def k8s_policy(manifest: str) -> dict:
    import yaml
    return next(d for d in yaml.safe_load_all(manifest) if d)


def k8s_pod(ns, name, labels, ip, node="n1", host_network=False):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080},
                                                             {"containerPort": 9}]}],
                     "initContainers": [{"name": "side", "restartPolicy": "Always",
                                         "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]},
                                        {"name": "init", "ports": [{"name": "once", "containerPort": 1}]}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_pod_objects_become_endpoints():
    pod = pod_from_object(k8s_pod("x", "a", {"pod": "a"}, "10.9.0.10"))
    assert (pod.key, pod.labels, pod.ips) == ("x/a", (("pod", "a"),), ("10.9.0.10",))
    assert [(p.name, p.port) for p in pod.ports] == [("http", 8080), ("metrics", 9100)]
    assert pod_from_object(k8s_pod("x", "h", {}, "192.0.2.1", host_network=True)) is None


def test_kubernetes_source_lists_then_watches(tmp_path):
    agent, _ = fake_agent()
    agent.apply(CASES["sctp-only"](IPS), source="kubernetes")  # deleted in the API while we were away
    api = FakeApi(namespaces=[{"metadata": {"name": "y", "labels": {"ns": "y"}}}],
                  pods=[k8s_pod("x", "a", {"pod": "a"}, IPS["x/a"][0]), k8s_pod("y", "b", {"pod": "b"}, IPS["y/b"][0])],
                  policies=[k8s_policy(CASES["namespace-selector"](IPS))])
    source = KubeSource(agent, api, api, lambda: FakeWatch(api.events), relist_backoff=0.05).start()
    try:
        assert wait_for(lambda: agent.policy_keys() == ["x/from-y"] and len(agent.endpoints()) == 2
                        and agent.namespaces().get("y") == {"ns": "y"})
        api.events["list_network_policy_for_all_namespaces"].put(
            {"type": "ADDED", "object": k8s_policy(CASES["deny-all"](IPS))})
        api.events["list_pod_for_all_namespaces"].put(
            {"type": "MODIFIED", "object": k8s_pod("x", "a", {"pod": "changed"}, IPS["x/a"][0])})
        assert wait_for(lambda: agent.policy_keys() == ["x/deny-all", "x/from-y"]
                        and agent.endpoint("x/a").pod.labels == (("pod", "changed"),))
        api.events["list_network_policy_for_all_namespaces"].put(
            {"type": "DELETED", "object": k8s_policy(CASES["namespace-selector"](IPS))})
        api.events["list_pod_for_all_namespaces"].put(
            {"type": "DELETED", "object": k8s_pod("y", "b", {}, IPS["y/b"][0])})
        api.events["list_namespace"].put({"type": "DELETED", "object": {"metadata": {"name": "y"}}})
        assert wait_for(lambda: agent.policy_keys() == ["x/deny-all"] and len(agent.endpoints()) == 1
                        and "y" not in agent.namespaces())
    finally:
        source.stop()


def test_from_config_wires_the_official_client(tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")
    agent, _ = fake_agent()
    source = KubeSource.from_config(agent, kubeconfig=str(config))
    names = [fn.__name__ for _, fn, _ in source.kinds()]
    assert names == ["list_namespace", "list_pod_for_all_namespaces", "list_network_policy_for_all_namespaces",
                     "list_service_for_all_namespaces"]
    from kubernetes.client import V1ObjectMeta, V1Namespace
    assert source.serialize(V1Namespace(metadata=V1ObjectMeta(name="y", labels={"a": "b"}))) == \
        {"metadata": {"name": "y", "labels": {"a": "b"}}}
