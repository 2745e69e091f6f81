"""The shim's state store, name registrar, List filters and event bus (no root)."""
from __future__ import annotations

import json
import os
import threading

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.store import filters
from cri.store.events import EventBus
from cri.store.records import (CREATED, EXITED, POD_NOTREADY, POD_READY, RUNNING, ContainerRecord,
                               PodRecord)
from cri.store.registrar import NameReserved, Registrar
from cri.store.store import RECORD_FILE, RecordStore


def pod(id_, state=POD_READY, labels=None, name="p", annotations=None):
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=name, namespace="ns", uid="u"),
                               labels=labels or {}, annotations=annotations or {})
    return PodRecord(id=id_, name=f"{name}_{id_}", config=cfg, state=state, created_at=1)


def ctr(id_, pod_id, state=CREATED, labels=None):
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name="c"), labels=labels or {})
    return ContainerRecord(id=id_, pod_id=pod_id, name=f"c_{id_}", config=cfg, state=state)


@pytest.fixture
def pods(tmp_path):
    return RecordStore(str(tmp_path / "pods"), "pod sandbox", PodRecord.from_dict)


@pytest.fixture
def ctrs(tmp_path):
    return RecordStore(str(tmp_path / "containers"), "container", ContainerRecord.from_dict)


def test_records_persist_and_reload_verbatim(tmp_path, pods):
    odd = {"io.kubernetes.pod/hash": "a b\nc", "empty": "", "ünï": "✓"}
    pods.put(pod("abc123", labels=odd, annotations=odd))
    pods.update("abc123", state=POD_NOTREADY, ips=("10.0.0.1", "fd00::1"))
    again = RecordStore(pods.root, "pod sandbox", PodRecord.from_dict)
    assert again.load() == []
    rec = again.get("abc123")
    assert dict(rec.config.labels) == odd and dict(rec.config.annotations) == odd
    assert rec.state == POD_NOTREADY and rec.ips == ("10.0.0.1", "fd00::1")


def test_invisible_put_is_persisted_but_not_listed(pods):
    pods.put(pod("hidden"), visible=False)
    assert pods.get("hidden") is None and pods.list() == []
    again = RecordStore(pods.root, "pod sandbox", PodRecord.from_dict)
    again.load()
    assert again.get("hidden") is not None


def test_unreadable_records_are_reported_for_cleanup(pods):
    pods.put(pod("good"))
    os.makedirs(os.path.join(pods.root, "torn"))
    with open(os.path.join(pods.root, "torn", RECORD_FILE), "w") as f:
        f.write("{not json")
    os.makedirs(os.path.join(pods.root, "empty"))
    again = RecordStore(pods.root, "pod sandbox", PodRecord.from_dict)
    assert sorted(again.load()) == ["empty", "torn"]
    assert [r.id for r in again.list()] == ["good"]


def test_unknown_fields_from_a_newer_shim_are_ignored(pods):
    pods.put(pod("x1"))
    path = os.path.join(pods.root, "x1", RECORD_FILE)
    data = json.load(open(path))
    data["future_field"] = 1
    json.dump(data, open(path, "w"))
    again = RecordStore(pods.root, "pod sandbox", PodRecord.from_dict)
    assert again.load() == [] and again.get("x1") is not None


def test_prefix_resolution(pods):
    pods.put(pod("abc1"))
    pods.put(pod("abd2"))
    assert pods.resolve("abc").id == "abc1"
    assert pods.resolve("abd2").id == "abd2"
    with pytest.raises(CriError) as exc:
        pods.resolve("ab")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(CriError) as exc:
        pods.resolve("zz")
    assert exc.value.code == grpc.StatusCode.NOT_FOUND
    assert pods.find("zz") is None


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "../x", "a\0b"])
def test_ids_cannot_escape_the_store(pods, bad):
    with pytest.raises(CriError):
        pods.dir_of(bad)


def test_delete_is_idempotent(pods):
    pods.put(pod("gone"))
    pods.delete("gone")
    pods.delete("gone")
    assert not os.path.exists(os.path.join(pods.root, "gone"))


def test_readers_do_not_wait_for_op_locks(pods):
    pods.put(pod("busy"))
    with pods.op_lock("busy"):
        done = threading.Event()
        threading.Thread(target=lambda: (pods.get("busy"), pods.list(), done.set())).start()
        assert done.wait(2), "a read blocked behind an op lock"


def test_registrar_reserves_names_like_containerd():
    r = Registrar()
    r.reserve("p_ns_uid_0", "id1")
    r.reserve("p_ns_uid_0", "id1")         # same key again: fine
    with pytest.raises(NameReserved) as exc:
        r.reserve("p_ns_uid_0", "id2")
    assert exc.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert exc.value.message == "name 'p_ns_uid_0' is reserved for 'id1'"
    r.release("p_ns_uid_0")
    r.reserve("p_ns_uid_0", "id2")
    r.release_key("id2")
    assert r.get("p_ns_uid_0") is None


def test_pod_filters(pods):
    pods.put(pod("aaa1", labels={"app": "x", "tier": "web"}))
    pods.put(pod("aaa2", state=POD_NOTREADY, labels={"app": "x"}))
    pods.put(pod("bbb3", labels={"app": "y"}))
    ids = lambda f: sorted(r.id for r in filters.pods(pods.list(), pods, f))  # noqa: E731
    assert ids(None) == ["aaa1", "aaa2", "bbb3"]
    assert ids(api.PodSandboxFilter(id="bbb")) == ["bbb3"]
    assert ids(api.PodSandboxFilter(id="aaa")) == []          # ambiguous prefix: nothing
    assert ids(api.PodSandboxFilter(id="nope")) == []
    assert ids(api.PodSandboxFilter(label_selector={"app": "x"})) == ["aaa1", "aaa2"]
    assert ids(api.PodSandboxFilter(label_selector={"app": "x", "tier": "web"})) == ["aaa1"]
    f = api.PodSandboxFilter()
    f.state.state = api.SANDBOX_NOTREADY
    assert ids(f) == ["aaa2"]
    f.state.state = api.SANDBOX_READY      # READY is 0: must still filter when set
    assert ids(f) == ["aaa1", "bbb3"]
    assert ids(api.PodSandboxStatsFilter(label_selector={"app": "y"})) == ["bbb3"]


def test_container_filters(pods, ctrs):
    pods.put(pod("pod1"))
    pods.put(pod("pod2"))
    ctrs.put(ctr("c1", "pod1", RUNNING, {"a": "1"}))
    ctrs.put(ctr("c2", "pod1", EXITED))
    ctrs.put(ctr("c3", "pod2", CREATED, {"a": "1"}))
    ids = lambda f: sorted(r.id for r in filters.containers(ctrs.list(), ctrs, pods, f))  # noqa: E731
    assert ids(api.ContainerFilter(pod_sandbox_id="pod1")) == ["c1", "c2"]
    assert ids(api.ContainerFilter(pod_sandbox_id="pod")) == []       # ambiguous
    assert ids(api.ContainerFilter(id="c3")) == ["c3"]
    assert ids(api.ContainerFilter(label_selector={"a": "1"})) == ["c1", "c3"]
    f = api.ContainerFilter()
    f.state.state = api.CONTAINER_CREATED    # 0, set explicitly
    assert ids(f) == ["c3"]
    assert ids(api.ContainerStatsFilter(pod_sandbox_id="pod2")) == ["c3"]


def test_event_bus_drops_slow_subscribers():
    bus = EventBus()
    fast, slow = bus.subscribe(), bus.subscribe()
    from cri.store import events
    for i in range(events.QUEUE_SIZE + 5):
        bus.publish(i)
        assert fast.get(timeout=1) == i
    assert bus.subscribers() == 1
    drained = 0
    with pytest.raises(EOFError):
        while True:
            if slow.get(timeout=0.01) is None:
                break
            drained += 1
    assert drained == events.QUEUE_SIZE
    fast.close()
    assert bus.subscribers() == 0


def test_replace_does_not_resurrect_a_deleted_record(ctrs):
    ctrs.put(ctr("c1", "p", RUNNING))
    stale = ctrs.get("c1")
    ctrs.delete("c1")
    import dataclasses
    assert ctrs.replace(dataclasses.replace(stale, state=EXITED)) is None
    assert ctrs.get("c1") is None and not os.path.exists(os.path.join(ctrs.root, "c1"))
