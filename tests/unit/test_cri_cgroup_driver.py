"""The cgroup drivers without root or systemd: slice names and their expansion, cgroup parents per
driver, the cgroupsPath a container gets, cri.toml's cgroup_driver and its default, what runc and
conmon are started with, and what RuntimeConfig reports."""
from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc

from cri import config
from cri.errors import CriError
from cri.monitor import conmon
from cri.oci import cgroupdriver as cd
from cri.oci import cgroups
from cri.oci.runc import Runc
from cri.oci.spec import PodContext, cgroups_path
from cri.rpc import sandbox_run
from cri.sandbox import cgroup as pod_cgroup

POD_UID = "kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice"
EXPANDED = ("/kubepods.slice/kubepods-burstable.slice/"
            "kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice")


# --- slice names -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, path", [
    ("kubepods.slice", "/kubepods.slice"),
    ("kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice"),
    (POD_UID, EXPANDED),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("system.slice", "/system.slice"),
    ("-.slice", "/"),
    ("podwire.slice", "/podwire.slice"),
])
def test_expand_slice(name, path):
    assert cd.expand_slice(name) == path


@pytest.mark.parametrize("name", [
    "kubepods", "kubepods.scope", ".slice", "-a.slice", "a-.slice", "a--b.slice",
    "kubepods.slice/x.slice", "/kubepods.slice",
])
def test_expand_slice_refuses_what_systemd_refuses(name):
    with pytest.raises(ValueError):
        cd.expand_slice(name)


@pytest.mark.parametrize("parent, name", [
    (EXPANDED, POD_UID),                                   # the kubelet's form
    (EXPANDED + "/", POD_UID),
    (POD_UID, POD_UID),                                    # the unit name alone
    ("/test.slice", "test.slice"),                          # critest's
    ("kubepods.slice", "kubepods.slice"),
])
def test_slice_of(parent, name):
    assert cd.slice_of(parent) == name


@pytest.mark.parametrize("parent, words", [
    ("/kubepods/burstable/pod1", "not a systemd slice"),
    ("/a.slice/b.slice", "not where systemd puts slice b.slice (/b.slice)"),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod1.slice", "not where systemd"),
    ("/", "not a systemd slice"),
    ("a--b.slice", "empty part"),
])
def test_slice_of_refuses(parent, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        cd.slice_of(parent)


# --- parents per driver ------------------------------------------------------------------------

def test_check_parent_systemd_takes_slices_and_names_the_driver_for_paths():
    assert cd.check_parent(EXPANDED, cd.SYSTEMD) == POD_UID
    with pytest.raises(ValueError) as err:
        cd.check_parent("/kubepods/burstable/pod1", cd.SYSTEMD)
    assert "systemd cgroup driver" in str(err.value) and "cgroup_driver in cri.toml" in str(err.value)


def test_check_parent_cgroupfs_takes_paths_and_names_the_driver_for_slices():
    assert cd.check_parent("kubepods/pod1", cd.CGROUPFS) == "/kubepods/pod1"
    assert cd.check_parent("/kubepods/burstable/pod1", cd.CGROUPFS) == "/kubepods/burstable/pod1"
    for parent in (EXPANDED, POD_UID, "/test.slice"):
        with pytest.raises(ValueError) as err:
            cd.check_parent(parent, cd.CGROUPFS)
        assert "cgroupfs cgroup driver" in str(err.value) and "systemd slice" in str(err.value)


@pytest.mark.parametrize("parent, driver, path", [
    ("", cd.CGROUPFS, None), ("/", cd.CGROUPFS, None),
    ("/kubepods/burstable/pod1", cd.CGROUPFS, "/kubepods/burstable/pod1"),
    ("/kubepods/../../etc", cd.CGROUPFS, None),
    (EXPANDED, cd.CGROUPFS, None),                          # the other driver's: nothing touched
    (EXPANDED, cd.SYSTEMD, EXPANDED), (POD_UID, cd.SYSTEMD, EXPANDED),
    ("/test.slice", cd.SYSTEMD, "/test.slice"), ("-.slice", cd.SYSTEMD, None),
    ("/kubepods/burstable/pod1", cd.SYSTEMD, None), ("", cd.SYSTEMD, None),
])
def test_pod_cgroup_dir(parent, driver, path):
    assert cd.pod_cgroup_dir(parent, driver) == path
    assert pod_cgroup.pod_cgroup_path(parent, driver) == path


# --- a container's cgroupsPath and its directory ----------------------------------------------

def _pod(parent: str = "", driver: str = cd.CGROUPFS, root: str = "") -> PodContext:
    cfg = api.PodSandboxConfig()
    cfg.linux.cgroup_parent = parent
    return PodContext(id="pod1", config=cfg, cgroup_driver=driver,
                      cgroup_root=root or cd.default_parent(driver))


@pytest.mark.parametrize("parent, driver, expected", [
    ("", cd.CGROUPFS, ("/podwire/pod1/c1", "/podwire/pod1")),
    ("/kubepods/burstable/pod1", cd.CGROUPFS, ("/kubepods/burstable/pod1/c1", "")),
    (EXPANDED, cd.SYSTEMD, (f"{POD_UID}:cri-podwire:c1", "")),
    ("/test.slice", cd.SYSTEMD, ("test.slice:cri-podwire:c1", "")),
    ("", cd.SYSTEMD, ("podwire.slice:cri-podwire:c1", "")),
])
def test_cgroups_path(parent, driver, expected):
    assert cgroups_path(_pod(parent, driver), "c1") == expected


@pytest.mark.parametrize("parent, driver", [
    (EXPANDED, cd.CGROUPFS), ("/test.slice", cd.CGROUPFS),
    ("/kubepods/burstable/pod1", cd.SYSTEMD), ("/a.slice/b.slice", cd.SYSTEMD),
])
def test_cgroups_path_refuses_the_other_drivers_parent(parent, driver):
    with pytest.raises(CriError) as err:
        cgroups_path(_pod(parent, driver), "c1")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{driver} cgroup driver" in err.value.message


@pytest.mark.parametrize("path, directory", [
    ("/kubepods/burstable/pod1/c1", "/kubepods/burstable/pod1/c1"),
    (f"{POD_UID}:cri-podwire:c1", EXPANDED + "/cri-podwire-c1.scope"),
    ("podwire.slice:cri-podwire:c1", "/podwire.slice/cri-podwire-c1.scope"),
    (":cri-podwire:c1", "/system.slice/cri-podwire-c1.scope"),        # runc's default slice
    ("-.slice:p:n", "/p-n.scope"),
])
def test_cgroup_dir(path, directory):
    assert cd.cgroup_dir(path) == directory


def test_controller_dir_finds_a_systemd_scope_in_every_hierarchy(monkeypatch):
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"memory": "/sys/fs/cgroup/memory"})
    assert cgroups.controller_dir("memory", f"{POD_UID}:cri-podwire:c1") == \
        "/sys/fs/cgroup/memory" + EXPANDED + "/cri-podwire-c1.scope"
    assert cgroups.controller_dir("memory", "bad--x.slice:p:n") is None
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {"": "/sys/fs/cgroup"})
    assert cgroups.controller_dir("memory", "podwire.slice:cri-podwire:c1") == \
        "/sys/fs/cgroup/podwire.slice/cri-podwire-c1.scope"


# --- RunPodSandbox's early check ---------------------------------------------------------------

def _sandbox(parent: str) -> api.PodSandboxConfig:
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="p", namespace="ns"))
    cfg.linux.cgroup_parent = parent
    return cfg


def test_run_pod_sandbox_refuses_a_parent_of_the_other_driver():
    sandbox_run.validate(_sandbox(EXPANDED), "", cd.SYSTEMD)
    sandbox_run.validate(_sandbox("/kubepods/pod1"), "", cd.CGROUPFS)
    sandbox_run.validate(_sandbox(""), "", cd.SYSTEMD)
    for parent, driver in ((EXPANDED, cd.CGROUPFS), ("/kubepods/pod1", cd.SYSTEMD)):
        with pytest.raises(CriError) as err:
            sandbox_run.validate(_sandbox(parent), "", driver)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "cgroup_driver in cri.toml" in err.value.message


# --- cri.toml ----------------------------------------------------------------------------------

@pytest.mark.parametrize("comm, driver", [("systemd", "systemd"), ("init", "cgroupfs"),
                                          ("bash", "cgroupfs"), ("", "cgroupfs")])
def test_default_driver_follows_pid1(monkeypatch, comm, driver):
    monkeypatch.setattr(config, "_pid1_comm", lambda: comm)
    assert config.default_cgroup_driver() == driver
    resolved = config.Config().resolved()
    assert resolved.cgroup_driver == driver
    assert resolved.cgroup_parent == ("podwire.slice" if driver == "systemd" else "/podwire")


def test_pid1_comm_reads_proc(monkeypatch, tmp_path):
    (tmp_path / "comm").write_text("systemd\n")
    monkeypatch.setattr(config, "PID1_COMM", str(tmp_path / "comm"))
    assert config.default_cgroup_driver() == "systemd"
    monkeypatch.setattr(config, "PID1_COMM", str(tmp_path / "missing"))
    assert config.default_cgroup_driver() == "cgroupfs"


def test_explicit_driver_wins_over_pid1(monkeypatch):
    monkeypatch.setattr(config, "_pid1_comm", lambda: "systemd")
    assert config.Config(cgroup_driver="cgroupfs").resolved().cgroup_driver == "cgroupfs"
    monkeypatch.setattr(config, "_pid1_comm", lambda: "init")
    cfg = config.from_dict({"cgroup_driver": "systemd", "cgroup_parent": "kube.slice"})
    assert (cfg.resolved().cgroup_driver, cfg.resolved().cgroup_parent) == ("systemd", "kube.slice")


@pytest.mark.parametrize("data, words", [
    ({"cgroup_driver": "systemd-cgroup"}, "is not one of systemd, cgroupfs"),
    ({"cgroup_driver": "systemd", "cgroup_parent": "/podwire"}, "systemd cgroup driver"),
    ({"cgroup_driver": "cgroupfs", "cgroup_parent": "podwire.slice"}, "cgroupfs cgroup driver"),
])
def test_config_refuses_a_driver_or_parent_that_does_not_fit(data, words):
    with pytest.raises(config.ConfigError, match=words):
        config.from_dict(data)


# --- runc and conmon ---------------------------------------------------------------------------

def test_runc_gets_systemd_cgroup_as_a_global_option():
    assert Runc("/r", "/bin/true").argv("state", "x") == ["/bin/true", "--root", "/r", "state", "x"]
    assert Runc("/r", "/bin/true", systemd_cgroup=True).argv("state", "x") == \
        ["/bin/true", "--root", "/r", "--systemd-cgroup", "state", "x"]


def _conmon_args(**kw) -> conmon.ConmonArgs:
    return conmon.ConmonArgs("c1", "/b", "/s", "/a", "/usr/bin/conmon", "/usr/sbin/runc", "/r", "", **kw)


def test_conmon_unchanged_with_cgroupfs():
    argv = _conmon_args().argv()
    assert argv[0] == "/usr/bin/conmon" and "--systemd-cgroup" not in argv
    assert "systemd-run" not in argv


def test_conmon_in_its_own_scope_with_systemd():
    argv = _conmon_args(systemd_cgroup=True,
                        scope=tuple(cd.conmon_scope_argv("c1", "system.slice"))).argv()
    split = argv.index("--")
    assert argv[:split] == ["systemd-run", "--scope", "--quiet", "--collect",
                            "--unit=podwire-conmon-c1", "--slice=system.slice",
                            "--description=podwire-cri container monitor (conmon) of c1"]
    rest = argv[split + 1:]
    assert rest[0] == "/usr/bin/conmon"
    # runc's global flag through conmon, right after --root (runc create must see it).
    i = rest.index("--root=/r")
    assert rest[i + 1:i + 3] == ["--runtime-arg", "--systemd-cgroup"]


def test_pid_holder_scope():
    assert cd.holder_scope_argv("p1", "system.slice")[-4:-2] == \
        ["--unit=podwire-pidns-p1", "--slice=system.slice"]


# --- RuntimeConfig -----------------------------------------------------------------------------

class _Runtime:
    def lookup(self, cid):
        return None

    def recover(self):
        return []


@pytest.mark.parametrize("driver, parent, reported", [
    ("systemd", "", api.SYSTEMD), ("cgroupfs", "", api.CGROUPFS),
    ("systemd", "kube.slice", api.SYSTEMD),
])
def test_runtime_config_reports_the_driver(tmp_path, driver, parent, reported):
    from cri.server.server import create_server
    cfg = config.Config(listen=str(tmp_path / "cri.sock"), state_dir=str(tmp_path / "state"),
                        run_dir=str(tmp_path / "run"), cni_conf_dir=str(tmp_path / "net.d"),
                        runc="true", cgroup_driver=driver, cgroup_parent=parent)
    server, svc = create_server(cfg, images=object(), runtime=_Runtime())
    server.start()
    channel = grpc.insecure_channel("unix://" + cfg.socket_path)
    try:
        rt = api_pb2_grpc.RuntimeServiceStub(channel)
        resp = rt.RuntimeConfig(api.RuntimeConfigRequest())
        assert resp.HasField("linux") and resp.linux.cgroup_driver == reported
        assert svc.config.cgroup_parent == (parent or cd.default_parent(driver))
    finally:
        channel.close()
        server.stop(0).wait()
        svc.close()
