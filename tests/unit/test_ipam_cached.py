"""podwire-cnid's IPAM: memory written through to host-local's store, reloaded
when someone else changed the directory, rebuilt from disk after a restart."""
from __future__ import annotations

import ipaddress

import pytest

from cni.context import Context
from cni.ipam import allocator
from cni.ipam.cached import StoreCache
from cni.ipam.config import Range, RangeSet
from cni.ipam.disk import DiskStore
from cni.ipam.main import VERBS
from cni.skel import CmdArgs
from cni.ipam.store import Attachment

ip = ipaddress.ip_address
SUBNET = ipaddress.ip_network("10.9.0.0/29")  # .2-.6 allocatable: exhaustion is near
RANGES = (RangeSet((Range(SUBNET, ip("10.9.0.2"), ip("10.9.0.6"), ip("10.9.0.1")),)),)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "net1")


def allocate(opener, path, cid):
    with opener(path) as store:
        return allocator.allocate(store, RANGES, Attachment(cid, "eth0"))[0].ip


def release(opener, path, cid):
    with opener(path) as store:
        return allocator.release(store, Attachment(cid, "eth0"))


def on_disk(path) -> dict:
    with DiskStore.locked(path) as disk:
        return {str(k): v for k, v in disk.all_leases().items()}


def test_every_change_is_on_disk_before_the_call_returns(path):
    cache = StoreCache()
    assert allocate(cache.locked, path, "a") == ip("10.9.0.2")
    assert on_disk(path) == {"10.9.0.2": Attachment("a", "eth0")}
    release(cache.locked, path, "a")
    assert on_disk(path) == {}


def test_a_restarted_daemon_rebuilds_from_disk(path):
    first = StoreCache()
    for cid in ("a", "b", "c"):
        allocate(first.locked, path, cid)
    release(first.locked, path, "b")
    second = StoreCache()  # the old one was killed: only the disk remains
    assert allocate(second.locked, path, "d") == ip("10.9.0.5")  # round robin resumes from the cursor
    assert allocate(second.locked, path, "a") == ip("10.9.0.2")  # idempotent: a still holds .2
    assert set(on_disk(path)) == {"10.9.0.2", "10.9.0.4", "10.9.0.5"}


def test_changes_by_others_are_seen(path):
    cache = StoreCache()
    allocate(cache.locked, path, "a")
    allocate(DiskStore.locked, path, "host-local-pod")  # another process (host-local, podwire-ipam)
    release(DiskStore.locked, path, "a")
    assert allocate(cache.locked, path, "b") == ip("10.9.0.4")  # .3 is taken, behind memory's back
    assert release(cache.locked, path, "a") == []  # already released by the other process
    assert set(on_disk(path)) == {"10.9.0.3", "10.9.0.4"}


def test_a_stale_free_address_is_caught_by_the_disk(path):
    cache = StoreCache()
    allocate(cache.locked, path, "a")
    entry = next(iter(cache._entries.values()))
    with DiskStore.locked(path) as disk:  # leased on disk, and memory told it still matches
        disk.reserve(Attachment("other", "eth0"), ip("10.9.0.3"), 0)
        entry.fingerprint = disk.fingerprint()
    assert allocate(cache.locked, path, "b") == ip("10.9.0.4")
    assert allocate(cache.locked, path, "c") == ip("10.9.0.5")  # and memory was reloaded
    assert on_disk(path)["10.9.0.3"] == Attachment("other", "eth0")


def test_verbs_use_the_contexts_store(path, tmp_path):
    cache = StoreCache()
    conf = {"cniVersion": "1.1.0", "name": "net1",
            "ipam": {"type": "podwire-ipam", "dataDir": str(tmp_path), "ranges": [[{"subnet": str(SUBNET)}]]}}
    ctx = Context(open_store=cache.locked)
    args = CmdArgs(command="ADD", container_id="a", ifname="eth0", netns="/x", config=conf, context=ctx)
    assert VERBS.add(args)["ips"][0]["address"] == "10.9.0.2/29"
    assert cache._entries  # the lease went through the context's store
    assert VERBS.status(args) is None
    VERBS.gc(CmdArgs(command="GC", config={**conf, "cni.dev/valid-attachments": []}, context=ctx))
    assert cache._entries and on_disk(path) == {}
