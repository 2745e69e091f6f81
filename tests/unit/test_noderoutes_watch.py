"""The Node watcher: list, then watch from the list's resourceVersion, relist on errors."""
from __future__ import annotations

import threading

from cni.daemon.nodes.model import Node
from cni.daemon.nodes.watch import NodeWatcher


def node(name, cidr, address):
    return {"metadata": {"name": name}, "spec": {"podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": address}]}}


class FakeApi:
    """list_node answers in turn; each watch streams its scripted events, or raises."""

    def __init__(self, listings, streams):
        self.listings, self.streams = list(listings), list(streams)
        self.watched_from: list[str] = []
        self.stopped = threading.Event()

    def list_node(self, **kwargs):
        return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]

    def watch(self):
        api = self

        class Watch:
            def stream(self, fn, resource_version="", **kwargs):
                api.watched_from.append(resource_version)
                script = api.streams.pop(0) if api.streams else []
                for item in script:
                    if isinstance(item, Exception):
                        raise item
                    yield item
                if not api.streams:
                    api.stopped.wait(30)  # a quiet watch: until the watcher stops it

            def stop(self):
                api.stopped.set()
        return Watch()


def listing(version, *items):
    return {"metadata": {"resourceVersion": version}, "items": list(items)}


def test_list_then_watch_events_then_relist_after_410():
    seen: list[dict] = []
    done = threading.Event()
    api = FakeApi(
        [listing("5", node("n1", "10.244.1.0/24", "192.168.0.1"), node("n2", "10.244.2.0/24", "192.168.0.2")),
         listing("9", node("n1", "10.244.1.0/24", "192.168.0.1"))],   # n2 gone while the watch was broken
        [[{"type": "ADDED", "object": node("n3", "10.244.3.0/24", "192.168.0.3")},
          {"type": "MODIFIED", "object": node("n3", "10.244.3.0/24", "192.168.0.3")},  # a heartbeat: no change
          {"type": "DELETED", "object": node("n1", "10.244.1.0/24", "192.168.0.1")},
          RuntimeError("(410) Gone")],
         []])

    def on_change(nodes):
        seen.append(nodes)
        if len(seen) == 4:
            done.set()

    watcher = NodeWatcher(api.list_node, api.watch, on_change, backoff_s=0.01).start()
    assert done.wait(10)
    watcher.stop()
    assert [sorted(s) for s in seen] == [["n1", "n2"], ["n1", "n2", "n3"], ["n2", "n3"], ["n1"]]
    assert seen[1]["n3"] == Node("n3", ("10.244.3.0/24",), ("192.168.0.3",))
    assert api.watched_from[:2] == ["5", "9"]
    assert watcher.last_error == ""  # the relist succeeded


def test_nothing_is_reported_until_a_list_succeeds():
    calls = []
    outcomes = [ConnectionError("apiserver down"), listing("1", node("n1", "10.244.1.0/24", "192.168.0.1"))]

    def list_node(**kwargs):
        answer = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    done = threading.Event()
    api = FakeApi([None], [[]])
    watcher = NodeWatcher(list_node, api.watch, lambda n: (calls.append(n), done.set()), backoff_s=0.01).start()
    assert done.wait(10)
    watcher.stop()
    assert [sorted(c) for c in calls] == [["n1"]]
