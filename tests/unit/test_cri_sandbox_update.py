"""UpdatePodSandboxResources without root: the pod cgroup's values from the kubelet's request
(overhead added back), the files for cgroup v1 and v2, which values already hold, the pod cgroup
path, and apply() against a fake cgroup tree (what it writes, skips and refuses)."""
from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.sandbox import cgroup
from cri.sandbox.cgroup import Setting
from cri.store.records import PodRecord

MiB = 1 << 20
PAGE = 4096


def _res(**kw) -> api.LinuxContainerResources:
    return api.LinuxContainerResources(**kw)


# --- pod_totals ---------------------------------------------------------------------------------

def test_no_resources_means_nothing_to_apply_even_with_an_overhead():
    assert cgroup.pod_totals(_res(memory_limit_in_bytes=MiB), None) is None


def test_without_overhead_the_values_pass_through():
    res = _res(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_limit_in_bytes=64 * MiB)
    assert cgroup.pod_totals(None, res) == res
    assert cgroup.pod_totals(_res(), res) == res          # the kubelet sends an empty overhead


def test_the_overhead_is_added_back_as_the_kubelet_subtracted_it():
    # The kubelet's pod cgroup for 333m of requests + 100m of overhead holds 443 shares; it
    # sends MilliCPUToShares(433 - 100) = 340 and MilliCPUToShares(100) = 102 (whose plain sum,
    # 442, would be off by one).  Quota and memory were plain subtractions.
    total = cgroup.pod_totals(
        _res(cpu_shares=102, cpu_quota=10000, cpu_period=100000, memory_limit_in_bytes=16 * MiB),
        _res(cpu_shares=340, cpu_quota=150000, cpu_period=100000, memory_limit_in_bytes=64 * MiB))
    assert (total.cpu_shares, total.cpu_quota, total.cpu_period, total.memory_limit_in_bytes) == \
        (443, 160000, 100000, 80 * MiB)


def test_a_pod_without_requests_is_sized_by_its_overhead_alone():
    # No requests: the kubelet sends the minimum, 2 shares, which must add nothing.
    assert cgroup.pod_totals(_res(cpu_shares=102), _res(cpu_shares=2)).cpu_shares == 102


@pytest.mark.parametrize("quota", [-1, -1 - 10000])     # the second: a kubelet before its fix
def test_an_unlimited_quota_stays_unlimited(quota):
    assert cgroup.pod_totals(_res(cpu_quota=10000), _res(cpu_quota=quota)).cpu_quota == -1


def test_an_overhead_does_not_invent_a_limit_the_pod_does_not_have():
    total = cgroup.pod_totals(_res(memory_limit_in_bytes=16 * MiB, cpu_quota=10000), _res(cpu_shares=2))
    assert (total.memory_limit_in_bytes, total.cpu_quota) == (0, 0)


# --- settings -----------------------------------------------------------------------------------

def test_v1_files():
    total = _res(cpu_shares=512, cpu_quota=-1, cpu_period=100000, memory_limit_in_bytes=64 * MiB,
                 cpuset_cpus="0-1", cpuset_mems="0", memory_swap_limit_in_bytes=64 * MiB,
                 oom_score_adj=100)
    assert cgroup.settings(total, v2=False) == [
        Setting("cpu", "cpu.shares", "512"), Setting("cpu", "cpu.cfs_period_us", "100000"),
        Setting("cpu", "cpu.cfs_quota_us", "-1"), Setting("cpuset", "cpuset.cpus", "0-1"),
        Setting("cpuset", "cpuset.mems", "0"), Setting("memory", "memory.limit_in_bytes", str(64 * MiB))]


def test_v2_files():
    total = _res(cpu_shares=1024, cpu_quota=50000, cpu_period=100000, memory_limit_in_bytes=64 * MiB)
    assert cgroup.settings(total, v2=True) == [
        Setting("cpu", "cpu.weight", "39"), Setting("cpu", "cpu.max", "50000 100000"),
        Setting("memory", "memory.max", str(64 * MiB))]
    assert cgroup.settings(_res(cpu_quota=-1), v2=True) == [Setting("cpu", "cpu.max", "max")]
    # cpu.max cannot take a period alone.
    assert cgroup.settings(_res(cpu_period=100000), v2=True) == []


def test_zero_means_not_set():
    assert cgroup.settings(_res(), v2=False) == cgroup.settings(_res(), v2=True) == []


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (262144, 10000)])
def test_shares_to_weight_is_runcs_mapping(shares, weight):
    assert cgroup.shares_to_weight(shares) == weight


# --- same: values as the kernel reads them back -------------------------------------------------

@pytest.mark.parametrize("file, want, have, expected", [
    ("memory.limit_in_bytes", "1000001", "999424\n", True),         # rounded down to pages
    ("memory.limit_in_bytes", "1000001", "995328\n", False),
    ("memory.limit_in_bytes", "-1", "9223372036854771712\n", True),
    ("memory.max", "max", "max\n", True),
    ("memory.max", str(64 * MiB), "max\n", False),
    ("cpu.cfs_quota_us", "-1", "-1\n", True),
    ("cpu.cfs_quota_us", "50000", "-1\n", False),
    ("cpu.max", "max", "max 100000\n", True),                        # the period is left as it is
    ("cpu.max", "50000 100000", "50000 100000\n", True),
    ("cpu.max", "50000 200000", "50000 100000\n", False),
    ("cpuset.cpus", "0,1,2,4", "0-2,4\n", True),
    ("cpuset.cpus", "0-1", "0\n", False),
    ("cpu.shares", "512", "512\n", True),
    ("cpu.shares", "512", "1024\n", False),
])
def test_same(file, want, have, expected):
    assert cgroup.same(Setting("x", file, want), have, PAGE) is expected


@pytest.mark.parametrize("parent, path", [
    ("", None), ("/", None), ("/kubepods/burstable/pod1", "/kubepods/burstable/pod1"),
    ("kubepods/pod1", "/kubepods/pod1"), ("//kubepods//pod1/", "/kubepods/pod1"),
    ("/kubepods/../../etc", None), ("..", None),
])
def test_pod_cgroup_path(parent, path):
    assert cgroup.pod_cgroup_path(parent) == path


# --- apply against a fake cgroup tree -----------------------------------------------------------

@pytest.fixture
def fake_v1(tmp_path, monkeypatch):
    """cpu and memory hierarchies under tmp_path with a pod cgroup /kubepods/pod1 in both; the
    cpuset hierarchy has no pod cgroup (the kubelet did not make one there)."""
    roots = {c: tmp_path / c for c in ("cpu", "memory", "cpuset")}
    files = {"cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"},
             "memory": {"memory.limit_in_bytes": "9223372036854771712",
                        "memory.usage_in_bytes": str(10 * MiB)}}
    for ctrl, content in files.items():
        pod = roots[ctrl] / "kubepods" / "pod1"
        pod.mkdir(parents=True)
        for name, value in content.items():
            (pod / name).write_text(value + "\n")
    roots["cpuset"].mkdir()
    monkeypatch.setattr(cgroup.cgroups, "is_v2", lambda: False)
    monkeypatch.setattr(cgroup.cgroups, "controller_dir",
                        lambda c, p: str(roots[c]) + p if c in roots else None)
    return lambda ctrl, name: (roots[ctrl] / "kubepods" / "pod1" / name).read_text().strip()


def test_apply_writes_what_differs_and_skips_missing_cgroups(fake_v1):
    total = _res(cpu_shares=1024, cpu_quota=50000, cpu_period=100000, memory_limit_in_bytes=64 * MiB,
                 cpuset_cpus="0")
    written = cgroup.apply("/kubepods/pod1", total)
    assert [w.rsplit("/", 1)[1] for w in written] == ["cpu.cfs_quota_us", "memory.limit_in_bytes"]
    assert fake_v1("cpu", "cpu.cfs_quota_us") == "50000"
    assert fake_v1("memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert cgroup.apply("/kubepods/pod1", total) == []                  # all in place now
    assert cgroup.apply("/kubepods/gone", total) == []
    assert cgroup.apply("", total) == []


def test_apply_refuses_a_memory_limit_below_usage_and_writes_nothing(fake_v1):
    with pytest.raises(CriError) as err:
        cgroup.apply("/kubepods/pod1", _res(cpu_shares=512, memory_limit_in_bytes=8 * MiB))
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "current usage" in err.value.message
    assert fake_v1("cpu", "cpu.shares") == "1024"                       # nothing half applied
    assert fake_v1("memory", "memory.limit_in_bytes") == "9223372036854771712"
    cgroup.apply("/kubepods/pod1", _res(memory_limit_in_bytes=-1))      # no limit: no usage check


def test_a_limit_already_in_place_is_not_written_or_checked_again(fake_v1, tmp_path):
    # The kubelet applied 64 MiB and the pod has grown to it since: the same request again must
    # not be refused (nor rewritten), it is what the cgroup holds.
    pod = tmp_path / "memory" / "kubepods" / "pod1"
    (pod / "memory.limit_in_bytes").write_text(f"{64 * MiB}\n")
    (pod / "memory.usage_in_bytes").write_text(f"{64 * MiB}\n")
    assert cgroup.apply("/kubepods/pod1", _res(memory_limit_in_bytes=64 * MiB)) == []


# --- the record ---------------------------------------------------------------------------------

def test_a_record_from_before_the_fields_loads_without_resources():
    old = PodRecord(id="p", name="n", config=api.PodSandboxConfig()).to_dict()
    del old["overhead"], old["resources"]
    rec = PodRecord.from_dict(old)
    assert (rec.overhead, rec.resources) == (None, None)
    new = PodRecord.from_dict({**old, "resources": {"cpu_shares": "512"}})
    assert new.resources == {"cpu_shares": "512"}
