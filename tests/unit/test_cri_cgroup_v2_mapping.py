"""cgroup v2 without a v2 host: the CRI -> OCI resource mapping for v2 (unified, swap, hugetlb)
next to the unchanged v1 one, and stats, PSI and OOM kills read from fake v2 files in a temporary
directory standing in for /sys/fs/cgroup."""
from __future__ import annotations

import os

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.monitor import files
from cri.oci import cgroups, resources, stats
from cri.oci.state import State, read_state
from cri.rpc import stats as rpc_stats

MiB = 1 << 20
V2 = {"v2": True, "swap_controller": True,
      "controllers": frozenset({"cpuset", "cpu", "io", "memory", "hugetlb", "pids"})}


def _res(**kw) -> api.LinuxContainerResources:
    unified = kw.pop("unified", {})
    hugepages = kw.pop("hugepages", [])
    r = api.LinuxContainerResources(**kw)
    r.unified.update(unified)
    r.hugepage_limits.extend(api.HugepageLimit(page_size=s, limit=n) for s, n in hugepages)
    return r


# --- resources ---------------------------------------------------------------------------------

def test_v1_mapping_is_unchanged():
    r = _res(cpu_shares=512, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0-1",
             memory_limit_in_bytes=64 * MiB, hugepages=[("2MB", 0)],
             unified={"memory.oom.group": "1"})
    assert resources.linux_resources(r, v2=False) == {
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1"},
        "memory": {"limit": 64 * MiB},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
    }
    assert resources.linux_resources(_res(memory_swap_limit_in_bytes=MiB), v2=False) == \
        {"memory": {"swap": MiB}}
    assert resources.linux_resources(None, v2=True) == {}


def test_v2_kubelet_container():
    """What a kubelet sends to a v2 node (KR generateLinuxContainerResources): OCI fields runc
    converts (shares -> cpu.weight, quota/period -> cpu.max, limit -> memory.max), swap = limit
    so that memory.swap.max is 0, and its unified keys passed through."""
    r = _res(cpu_shares=102, cpu_quota=20000, cpu_period=100000, memory_limit_in_bytes=128 * MiB,
             oom_score_adj=1000, hugepages=[("2MB", 0), ("1GB", 0)],
             unified={"memory.oom.group": "1", "memory.swap.max": "0"})
    assert resources.linux_resources(r, **V2) == {
        "cpu": {"shares": 102, "quota": 20000, "period": 100000},
        "memory": {"limit": 128 * MiB, "swap": 128 * MiB},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}, {"pageSize": "1GB", "limit": 0}],
        "unified": {"memory.oom.group": "1", "memory.swap.max": "0"},
    }


def test_v2_cpuset_and_unlimited_quota():
    r = _res(cpu_period=100000, cpu_quota=-1, cpuset_cpus="0,2", cpuset_mems="0")
    assert resources.linux_resources(r, **V2) == {
        "cpu": {"quota": -1, "period": 100000, "cpus": "0,2", "mems": "0"}}


def test_v2_pids_limit_through_unified():
    """The CRI has no pids field: a pids.max is a unified key, written as given."""
    out = resources.linux_resources(_res(unified={"pids.max": "64"}), **V2)
    assert out == {"unified": {"pids.max": "64"}}


@pytest.mark.parametrize("limit, swap, expected", [
    (64 * MiB, 0, {"limit": 64 * MiB, "swap": 64 * MiB}),       # no swap (memory.swap.max 0)
    (64 * MiB, 96 * MiB, {"limit": 64 * MiB, "swap": 96 * MiB}),  # runc: swap.max = 32 MiB
    (64 * MiB, -1, {"limit": 64 * MiB, "swap": -1}),            # unlimited swap
    (0, 0, None),
    (0, -1, {"swap": -1}),
])
def test_v2_swap(limit, swap, expected):
    out = resources.linux_resources(_res(memory_limit_in_bytes=limit,
                                         memory_swap_limit_in_bytes=swap), **V2)
    assert out.get("memory") == expected


def test_v2_swap_without_swap_accounting_is_left_out():
    out = resources.linux_resources(_res(memory_limit_in_bytes=64 * MiB,
                                         memory_swap_limit_in_bytes=96 * MiB),
                                    **{**V2, "swap_controller": False})
    assert out["memory"] == {"limit": 64 * MiB}


@pytest.mark.parametrize("limit, swap, words", [
    (0, 32 * MiB, "without memory_limit_in_bytes"),
    (64 * MiB, 32 * MiB, "below memory_limit_in_bytes"),
])
def test_v2_swap_runc_would_refuse_is_invalid(limit, swap, words):
    with pytest.raises(CriError, match=words) as err:
        resources.linux_resources(_res(memory_limit_in_bytes=limit,
                                       memory_swap_limit_in_bytes=swap), **V2)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_v2_hugepages_dropped_without_hugetlb_controller():
    r = _res(hugepages=[("2MB", 0)])
    assert "hugepageLimits" in resources.linux_resources(r, **V2)
    assert resources.linux_resources(r, **{**V2, "controllers": frozenset({"cpu", "memory"})}) == {}


@pytest.mark.parametrize("key, words", [
    ("memory/oom.group", "must be a cgroup v2 file name"),
    ("oomgroup", "must be a cgroup v2 file name"),
    (".max", "must be a cgroup v2 file name"),
    ("memory.", "must be a cgroup v2 file name"),
    ("rdma.max", "no 'rdma' controller"),
])
def test_v2_bad_unified_keys_are_invalid(key, words):
    with pytest.raises(CriError, match=words) as err:
        resources.linux_resources(_res(unified={key: "1"}), **V2)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_v2_core_unified_keys_and_unknown_controllers():
    assert resources.linux_resources(_res(unified={"cgroup.max.depth": "3"}), **V2) == \
        {"unified": {"cgroup.max.depth": "3"}}
    # Controllers unknown (no cgroup.controllers read): runc is left to judge.
    assert resources.linux_resources(_res(unified={"rdma.max": "x"}),
                                     **{**V2, "controllers": frozenset()}) == {"unified": {"rdma.max": "x"}}


def test_pod_settings_keep_the_plain_mapping(monkeypatch):
    """UpdatePodSandboxResources' settings: no swap defaults or unified checks on a v2 host."""
    from cri.sandbox import cgroup as pod_cgroup
    monkeypatch.setattr(cgroups, "is_v2", lambda: True)
    total = _res(memory_limit_in_bytes=64 * MiB, unified={"bad/key": "1"})
    assert [s.file for s in pod_cgroup.settings(total, v2=True)] == ["memory.max"]


# --- a fake v2 tree ----------------------------------------------------------------------------

CTR = "/kubepods/burstable/pod1/c1"


@pytest.fixture
def v2(tmp_path, monkeypatch):
    """tmp_path as the v2 root, with the container cgroup CTR in it."""
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"": str(tmp_path)})
    d = tmp_path / CTR.lstrip("/")
    d.mkdir(parents=True)
    return d


def _write(d, **contents):
    for name, text in contents.items():
        (d / name.replace("_", ".", 1)).write_text(text)


MEMORY_STAT = "anon 4096000\nfile 8192000\ninactive_file 2048000\nactive_file 6144000\n" \
              "pgfault 1234\npgmajfault 5\n"
CPU_PRESSURE = "some avg10=1.50 avg60=0.75 avg300=0.10 total=123456\n" \
               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
MEMORY_PRESSURE = "some avg10=0.00 avg60=0.00 avg300=0.00 total=10\n" \
                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"


def test_stats_from_v2_files(v2):
    _write(v2, cpu_stat="usage_usec 250000\nuser_usec 200000\nsystem_usec 50000\n",
           memory_current="16384000\n", memory_stat=MEMORY_STAT, memory_max="67108864\n",
           **{"memory.swap.current": "4096\n", "memory.swap.max": "max\n"},
           cpu_pressure=CPU_PRESSURE, memory_pressure=MEMORY_PRESSURE)
    st = stats.read_stats(CTR)
    assert st.cpu_usage_ns == 250000 * 1000
    assert st.memory_usage_bytes == 16384000
    assert st.memory_working_set_bytes == 16384000 - 2048000      # current - inactive_file
    assert st.memory_rss_bytes == 4096000                          # anon
    assert (st.page_faults, st.major_page_faults) == (1234, 5)
    assert st.memory_available_bytes == 67108864 - (16384000 - 2048000)
    assert (st.swap_usage_bytes, st.swap_available_bytes) == (4096, None)
    assert set(st.psi) == {"cpu", "memory"}                        # no io.pressure file
    assert st.psi["cpu"]["some"] == {"avg10": 1.5, "avg60": 0.75, "avg300": 0.1, "total": 123456.0}


def test_stats_without_limits_or_psi(v2):
    _write(v2, cpu_stat="usage_usec 1\n", memory_current="100\n", memory_stat="anon 10\n",
           memory_max="max\n")
    st = stats.read_stats(CTR)
    assert (st.memory_working_set_bytes, st.memory_available_bytes, st.swap_usage_bytes, st.psi) == \
        (100, None, None, {})


def test_stats_of_a_gone_cgroup_are_none(v2):
    assert stats.read_stats(CTR) is None                           # no files
    assert stats.read_stats("/nowhere") is None


def test_stats_of_a_systemd_scope(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"": str(tmp_path)})
    d = tmp_path / "kubepods.slice" / "kubepods-pod1.slice" / "cri-podwire-c1.scope"
    d.mkdir(parents=True)
    _write(d, cpu_stat="usage_usec 7\n", memory_current="70\n", memory_stat="inactive_file 20\n")
    st = stats.read_stats("kubepods-pod1.slice:cri-podwire:c1")
    assert (st.cpu_usage_ns, st.memory_working_set_bytes) == (7000, 50)


@pytest.mark.parametrize("text, expected", [
    (CPU_PRESSURE, {"some": {"avg10": 1.5, "avg60": 0.75, "avg300": 0.1, "total": 123456.0},
                    "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0.0}}),
    ("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n",               # an older kernel's cpu
     {"some": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 5.0}}),
])
def test_read_psi(tmp_path, text, expected):
    (tmp_path / "cpu.pressure").write_text(text)
    assert cgroups.read_psi(str(tmp_path / "cpu.pressure")) == expected
    assert cgroups.read_psi(str(tmp_path / "io.pressure")) == {}


def test_psi_into_the_cri_fields():
    st = api.ContainerStats()
    psi = {"cpu": {"some": {"avg10": 1.5, "avg60": 0.75, "avg300": 0.1, "total": 123456.0}},
           "io": {"some": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 3.0},
                  "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 2.0}}}
    rpc_stats.fill_psi(st.cpu, st.memory, st.io, psi, 99)
    assert st.cpu.psi.Some.Total == 123456 * 1000                   # us -> ns
    assert (st.cpu.psi.Some.Avg10, st.cpu.psi.Some.Avg60, st.cpu.psi.Some.Avg300) == (1.5, 0.75, 0.1)
    assert not st.cpu.psi.HasField("Full") and not st.memory.HasField("psi")
    assert (st.io.timestamp, st.io.psi.Full.Total) == (99, 2000)


def test_v1_stats_fill_no_v2_fields():
    st = api.ContainerStats()
    cg = stats.CgroupStats(1, 2, 3, 4, 5, 6, 7)
    rpc_stats._fill_cpu_mem(st.cpu, st.memory, 1, 2, cg)
    rpc_stats._fill_v2_extras(st, cg)
    assert not st.memory.HasField("available_bytes") and not st.HasField("swap")
    assert not st.cpu.HasField("psi") and not st.HasField("io")


# --- OOM from memory.events --------------------------------------------------------------------

EVENTS = "low 0\nhigh 0\nmax {max}\noom {oom}\noom_kill {kill}\noom_group_kill 0\n"


def test_oom_killed_reads_oom_kill_not_oom(v2):
    assert not cgroups.oom_killed(CTR)                              # no file
    _write(v2, memory_events=EVENTS.format(max=3, oom=1, kill=0))   # limit hit, nobody killed
    assert not cgroups.oom_killed(CTR)
    _write(v2, memory_events=EVENTS.format(max=9, oom=2, kill=1))
    assert cgroups.oom_killed(CTR)
    assert cgroups.oom_killed(f"{CTR}:x:y") is False                # not a path anything names


def test_oom_killed_is_v2_only(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"memory": str(tmp_path)})
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "memory.events").write_text(EVENTS.format(max=1, oom=1, kill=1))
    assert not cgroups.oom_killed("/c1")


def _exited(state_dir, code: int = 137) -> None:
    files.write_json(os.path.join(state_dir, files.RUNTIME), {"cgroups_path": CTR})
    files.write_json(os.path.join(state_dir, files.CREATED),
                     {"pid": 2 ** 22 + 1, "start_time": 1, "created_at": 1})
    with open(os.path.join(state_dir, files.EXIT), "w") as f:
        f.write(str(code))


def test_exited_container_is_oomkilled_from_memory_events(v2, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    _exited(str(state))
    _write(v2, memory_events=EVENTS.format(max=1, oom=1, kill=0))
    assert read_state("c1", str(state)).reason == "Error"
    _write(v2, memory_events=EVENTS.format(max=1, oom=1, kill=1))
    st = read_state("c1", str(state))
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 137, "OOMKilled")
    # Written down as conmon does: still OOMKilled once the cgroup is gone.
    assert (state / files.OOM).exists()
    (v2 / "memory.events").unlink()
    v2.rmdir()
    assert read_state("c1", str(state)).reason == "OOMKilled"


def test_exited_container_with_exit_zero_but_an_oom_kill(v2, tmp_path):
    """As containerd and conmon's oom file: an OOM kill in the container's cgroup (a child
    killed, the init exiting 0) still reads OOMKilled."""
    state = tmp_path / "state"
    state.mkdir()
    _exited(str(state), 0)
    _write(v2, memory_events=EVENTS.format(max=1, oom=1, kill=2))
    assert read_state("c1", str(state)).reason == "OOMKilled"


def test_v1_reason_ignores_memory_events(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"memory": str(tmp_path / "mem")})
    d = tmp_path / "mem" / CTR.lstrip("/")
    d.mkdir(parents=True)
    (d / "memory.events").write_text(EVENTS.format(max=1, oom=1, kill=1))
    state = tmp_path / "state"
    state.mkdir()
    _exited(str(state))
    assert read_state("c1", str(state)).reason == "Error"
    assert not (state / files.OOM).exists()


# --- OOM kills seen as they happen (inotify on memory.events) ---------------------------------

def _wait(pred, timeout: float = 5.0) -> bool:
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_oom_watcher_marks_a_kill_when_memory_events_changes(tmp_path):
    import select

    from cri.oci.oomwatch import OomWatcher
    events, marker = tmp_path / "memory.events", tmp_path / "oom"
    events.write_text(EVENTS.format(max=0, oom=0, kill=0))
    w = OomWatcher()
    try:
        assert w.add("c1", str(events), str(marker)) and w.watched() == {"c1"}
        events.write_text(EVENTS.format(max=1, oom=1, kill=0))     # limit hit, nobody killed
        assert select.select([w.fd], [], [], 5)[0]
        w.handle()
        assert not marker.exists()
        events.write_text(EVENTS.format(max=2, oom=2, kill=1))
        assert select.select([w.fd], [], [], 5)[0]
        w.handle()
        assert marker.exists()
        # The file goes with its cgroup: the kernel drops the watch, and so do we.
        events.unlink()
        assert select.select([w.fd], [], [], 5)[0]
        w.handle()
        assert w.watched() == set()
        assert not w.add("c2", str(tmp_path / "gone" / "memory.events"), str(marker))
    finally:
        w.close()


def test_oom_watcher_counts_a_kill_before_the_watch(tmp_path):
    from cri.oci.oomwatch import OomWatcher
    events, marker = tmp_path / "memory.events", tmp_path / "oom"
    events.write_text(EVENTS.format(max=1, oom=1, kill=1))
    w = OomWatcher()
    try:
        w.add("c1", str(events), str(marker))
        assert marker.exists()
        w.remove("c1")
        w.remove("c1")                                              # idempotent
        assert w.watched() == set()
    finally:
        w.close()


class _Runtime:
    def __init__(self, paths):
        self.paths = paths

    def oom_watch_paths(self, cid):
        return self.paths

    def lookup(self, cid):
        return None


def test_exit_watcher_watches_memory_events_in_its_thread(tmp_path):
    from cri.oci.watch import ExitWatcher
    events, marker = tmp_path / "memory.events", tmp_path / "oom"
    events.write_text(EVENTS.format(max=0, oom=0, kill=0))
    # Only the inotify path (handle(), when the fd is readable) writes the marker, never the exit
    # poll; a loaded machine (a VM beside the tests) gets 20 s to schedule the thread.
    w = ExitWatcher(_Runtime((str(events), str(marker))), lambda st: None, watch_oom=True)
    assert w.oom is not None
    w.start()
    try:
        w.watch("c1")
        events.write_text(EVENTS.format(max=1, oom=1, kill=1))
        assert _wait(marker.exists, 20)
        w.unwatch("c1")
        assert w.oom.watched() == set()
    finally:
        w.close()


def test_exit_watcher_on_v1_has_no_oom_watch(monkeypatch):
    from cri.oci.watch import ExitWatcher
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"memory": "/sys/fs/cgroup/memory"})
    w = ExitWatcher(_Runtime(None), lambda st: None)
    assert w.oom is None
    w.watch("c1")
    w.unwatch("c1")


def test_runtime_oom_watch_paths(v2, tmp_path):
    from cri.oci.runtime import ContainerRuntime
    rt = ContainerRuntime(str(tmp_path / "b"), str(tmp_path / "r"), str(tmp_path / "s"))
    os.makedirs(rt.monitor_dir("c1"))
    files.write_json(os.path.join(rt.monitor_dir("c1"), files.RUNTIME), {"cgroups_path": CTR})
    assert rt.oom_watch_paths("c1") == (str(v2 / "memory.events"),
                                        os.path.join(rt.monitor_dir("c1"), files.OOM))
