"""DiskStore: host-local's on-disk format, the index, migration and crash safety."""
from __future__ import annotations

import ipaddress
import os

import pytest

from cni.errors import CniError, Code
from cni.ipam import allocator, config, disk
from cni.ipam.disk import DiskStore
from cni.ipam.main import VERBS
from cni.ipam.store import Attachment
from cni.skel import CmdArgs

ip = ipaddress.ip_address
DUAL = [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/64"}]]


class Net:
    """One network whose leases live under ``base``; verbs called in process."""

    def __init__(self, base) -> None:
        data_dir = base / "data"
        self.dir = data_dir / "net1"
        self.config = {"cniVersion": "1.1.0", "name": "net1",
                       "ipam": {"type": "podwire-ipam", "dataDir": str(data_dir), "ranges": DUAL}}

    def args(self, command: str, cid: str, ifname: str = "eth0", **extra) -> CmdArgs:
        return CmdArgs(command=command, container_id=cid, ifname=ifname, netns="/x",
                       config={**self.config, **extra})

    def add(self, cid: str, ifname: str = "eth0") -> list[str]:
        return [x["address"] for x in VERBS.add(self.args("ADD", cid, ifname))["ips"]]

    def delete(self, cid: str, ifname: str = "eth0") -> None:
        VERBS.delete(self.args("DEL", cid, ifname))

    def leases(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.dir.iterdir() if p.is_file() and _is_ip(p.name)}


@pytest.fixture
def net(tmp_path) -> Net:
    return Net(tmp_path)


def _is_ip(name: str) -> bool:
    try:
        ip(name)
    except ValueError:
        return False
    return True


def write_host_local_lease(lease_dir, addr: str, cid: str, ifname: str = "eth0", cursor: int = 0):
    """What host-local's disk.Store.Reserve leaves behind."""
    (lease_dir / addr).write_bytes(f"{cid}\r\n{ifname}".encode())
    (lease_dir / f"last_reserved_ip.{cursor}").write_bytes(addr.encode())


def test_file_format_is_host_locals(net):
    assert net.add("c1") == ["10.1.0.2/24", "fd00:1::2/64"]
    assert net.leases() == {"10.1.0.2": b"c1\r\neth0", "fd00:1::2": b"c1\r\neth0"}
    assert (net.dir / "last_reserved_ip.0").read_bytes() == b"10.1.0.2"
    assert (net.dir / "last_reserved_ip.1").read_bytes() == b"fd00:1::2"
    assert (net.dir / "lock").is_file()
    assert oct((net.dir / "10.1.0.2").stat().st_mode & 0o777) == "0o644"


def test_index_files_never_look_like_a_lease_to_host_local(net):
    net.add("c1")
    index_files = [p for p in (net.dir / disk.INDEX_DIR).rglob("*") if p.is_file()]
    assert index_files
    for path in index_files:
        # host-local's DEL walks subdirectories and deletes files with exactly this content
        assert path.read_bytes().strip() not in (b"c1\r\neth0", b"c1")


def test_lookups_use_the_index_not_a_scan(net, monkeypatch):
    net.add("c1")
    net.add("c2")

    def no_scan(*_):
        raise AssertionError("scanned the lease directory")

    monkeypatch.setattr(DiskStore, "all_leases", no_scan)
    monkeypatch.setattr(DiskStore, "rebuild_index", no_scan)
    assert net.add("c1") == ["10.1.0.2/24", "fd00:1::2/64"]   # found by lookup, not re-allocated
    assert net.add("c3") == ["10.1.0.4/24", "fd00:1::4/64"]
    VERBS.check(net.args("CHECK", "c2"))
    net.delete("c1")
    assert sorted(net.leases()) == ["10.1.0.3", "10.1.0.4", "fd00:1::3", "fd00:1::4"]


def test_migration_from_a_host_local_directory(net):
    net.dir.mkdir(parents=True)
    write_host_local_lease(net.dir, "10.1.0.2", "old1")
    write_host_local_lease(net.dir, "fd00:1::2", "old1", cursor=1)
    write_host_local_lease(net.dir, "10.1.0.3", "old2")
    (net.dir / "lock").touch()
    assert net.add("old1") == ["10.1.0.2/24", "fd00:1::2/64"]  # found through the migrated index
    assert net.add("new") == ["10.1.0.4/24", "fd00:1::3/64"]   # the cursor carries on after .3
    net.delete("old2")
    assert "10.1.0.3" not in net.leases()


def test_leases_host_local_writes_after_migration_are_found(net):
    net.add("c1")
    state = (net.dir / disk.INDEX_DIR / "state").read_text()
    write_host_local_lease(net.dir, "10.1.0.9", "hl1")
    net.delete("hl1")
    assert "10.1.0.9" not in net.leases()
    # Even within one mtime tick: host-local also rewrites the cursor file.
    mtime = os.stat(net.dir).st_mtime_ns
    write_host_local_lease(net.dir, "10.1.0.10", "hl2")
    os.utime(net.dir, ns=(mtime, mtime))
    net.delete("hl2")
    assert "10.1.0.10" not in net.leases()
    assert state  # the fingerprint existed before host-local's writes


def test_a_stale_temp_file_neither_blocks_nor_duplicates(net):
    net.add("c1")
    tmp = net.dir / disk.INDEX_DIR / "tmp"
    (tmp / "lease-10.1.0.3.99999").write_bytes(b"ghost\r\neth0")
    assert net.add("c2") == ["10.1.0.3/24", "fd00:1::3/64"]
    assert list(tmp.iterdir()) == []


def test_an_index_entry_without_its_lease_is_harmless(net):
    entries = net.dir / disk.INDEX_DIR / "attachments"
    net.add("c0")
    (entries / "c1@eth0").write_text("podwire-index 1\nc1\neth0\n10.1.0.3\n")
    assert net.add("c2") == ["10.1.0.3/24", "fd00:1::3/64"]  # not blocked by c1's entry
    assert net.add("c1") == ["10.1.0.4/24", "fd00:1::4/64"]  # c1 does not get c2's address
    assert net.leases()["10.1.0.3"] == b"c2\r\neth0"


def test_an_unparseable_lease_is_skipped_and_collected(net):
    net.dir.mkdir(parents=True)
    (net.dir / "10.1.0.2").write_bytes(b"")           # host-local killed between create and write
    (net.dir / "10.1.0.3").write_bytes(b"\xff\xfe{}")
    (net.dir / "not-an-ip").write_bytes(b"c1\r\neth0")
    assert net.add("c1") == ["10.1.0.4/24", "fd00:1::2/64"]
    VERBS.gc(net.args("GC", "", **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}))
    assert sorted(net.leases()) == ["10.1.0.4", "fd00:1::2"]


def test_gc_releases_leases_and_index_entries_not_in_the_list(net):
    for cid in ("c1", "c2", "c3"):
        net.add(cid)
    write_host_local_lease(net.dir, "10.1.0.50", "hl")
    (net.dir / disk.INDEX_DIR / "attachments" / "ghost@eth0").write_text("podwire-index 1\nghost\neth0\n")
    VERBS.gc(net.args("GC", "", **{"cni.dev/attachments": [{"containerID": "c2", "ifname": "eth0"}]}))
    assert net.leases() == {"10.1.0.3": b"c2\r\neth0", "fd00:1::3": b"c2\r\neth0"}
    assert os.listdir(net.dir / disk.INDEX_DIR / "attachments") == ["c2@eth0"]


def test_release_only_what_the_owner_holds(net):
    net.add("c1")
    with DiskStore.locked(str(net.dir)) as store:
        assert not store.release(ip("10.1.0.2"), Attachment("c2", "eth0"))
        assert store.leases_of(Attachment("c1", "eth0")) == [ip("10.1.0.2"), ip("fd00:1::2")]


def test_unusable_store_is_an_io_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CniError) as info:
        with DiskStore.locked(str(tmp_path / "file" / "net1")):
            pass
    assert info.value.code == Code.IO_FAILURE


# --- crash at every step of an ADD -----------------------------------------------

_STEPS = ("open", "write", "replace", "link", "unlink")  # every os-level mutation DiskStore makes


def _count_steps(monkeypatch, net) -> int:
    calls = []
    for name in _STEPS:
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _real=real, **k: (calls.append(1), _real(*a, **k))[1])
    net.add("victim")
    monkeypatch.undo()
    return len(calls)


def _add_and_die_after(net, step: int) -> None:
    """Run ADD in a child that is killed right after its ``step``-th write-ish syscall."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        calls = [0]
        for name in _STEPS:
            real = getattr(os, name)

            def wrapped(*a, _real=real, **k):
                out = _real(*a, **k)
                calls[0] += 1
                if calls[0] == step:
                    os._exit(0)
                return out
            setattr(os, name, wrapped)
        try:
            net.add("victim")
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 3)


def test_a_crash_at_any_step_leaves_no_half_lease(tmp_path, monkeypatch):
    probe = Net(tmp_path / "probe")
    probe.add("other")
    total = _count_steps(monkeypatch, probe)
    assert total >= 8  # entry, lease and cursor for two sets, plus the state
    for step in range(1, total + 1):
        net = Net(tmp_path / f"crash{step}")
        net.add("other")
        _add_and_die_after(net, step)
        victim = net.add("victim")  # the runtime retries the ADD
        other2 = net.add("other2")
        owners = sorted(net.leases().values())
        assert owners == sorted([b"other\r\neth0", b"victim\r\neth0", b"other2\r\neth0"] * 2), step
        assert set(victim).isdisjoint(other2)
        assert os.listdir(net.dir / disk.INDEX_DIR / "tmp") == []
        for cid in ("victim", "other", "other2"):
            net.delete(cid)
        assert net.leases() == {}, step


def test_allocator_runs_unchanged_on_the_disk_store(net):
    net.add("seed")  # the store dir exists
    with DiskStore.locked(str(net.dir)) as store:
        sets = config.load(net.args("ADD", "x")).range_sets
        got = allocator.allocate(store, sets, Attachment("x", "eth0"), [ip("10.1.0.77")])
    assert [str(a.ip) for a in got] == ["10.1.0.77", "fd00:1::3"]


def test_a_damaged_index_entry_is_rebuilt_not_trusted(net):
    first = net.add("c1")
    (net.dir / disk.INDEX_DIR / "attachments" / "c1@eth0").write_text("garbage")
    assert net.add("c1") == first  # no second lease for c1
    assert len(net.leases()) == 2


def test_names_that_cannot_index_are_refused(net):
    net.add("c1")
    with pytest.raises(CniError) as info:
        VERBS.add(net.args("ADD", "bad@cid"))
    assert info.value.code == Code.INVALID_ENVIRONMENT
    assert len(net.leases()) == 2
