"""Capabilities (ALL/add/drop), seccomp profile selection and the runtime default profile,
resources and the OOM score clamp, stop signals."""
from __future__ import annotations

import json
import signal

import pytest
from cri_api.v1 import api_pb2

from cri.errors import CriError
from cri.oci import caps, resources, seccomp, signals

EVERYTHING = caps.ALL_CAPS


@pytest.mark.parametrize("add, drop, expected", [
    ([], [], caps.DEFAULT_CAPS),
    (["NET_ADMIN"], ["CHOWN"], [c for c in caps.DEFAULT_CAPS if c != "CAP_CHOWN"] + ["CAP_NET_ADMIN"]),
    (["ALL"], [], EVERYTHING),
    (["ALL"], ["CHOWN"], [c for c in EVERYTHING if c != "CAP_CHOWN"]),
    ([], ["ALL"], []),
    (["CAP_KILL", "sys_time"], ["ALL"], ["CAP_KILL", "CAP_SYS_TIME"]),
    (["ALL"], ["ALL"], []),
])
def test_capability_set(add, drop, expected):
    assert caps.capability_set(add, drop, False, EVERYTHING) == expected


def test_privileged_gets_everything_the_runtime_has():
    assert caps.capability_set([], ["ALL"], True, ["CAP_A", "CAP_B"]) == ["CAP_A", "CAP_B"]


def test_ambient_caps_are_inheritable():
    got = caps.process_capabilities(["CAP_NET_BIND_SERVICE"], ["net_bind_service"])
    assert got["ambient"] == got["inheritable"] == ["CAP_NET_BIND_SERVICE"]


def _allowed(profile) -> set[str]:
    return {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and
            not rule.get("args") for n in rule["names"]}


def test_default_profile_depends_on_caps():
    plain = seccomp.default_profile(caps.DEFAULT_CAPS, "x86_64")
    assert plain["defaultAction"] == "SCMP_ACT_ERRNO"
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(plain)
    assert {"read", "write", "execve", "arch_prctl", "chroot"} <= allowed  # SYS_CHROOT default
    assert not {"mount", "unshare", "setns", "bpf", "reboot"} & allowed
    assert "ptrace" in allowed  # kernels >= 4.8 no longer let ptrace bypass seccomp
    clone = next(r for r in plain["syscalls"] if r["names"] == ["clone"])
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    clone3 = next(r for r in plain["syscalls"] if r["names"] == ["clone3"])
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38
    admin = seccomp.default_profile(caps.DEFAULT_CAPS + ["CAP_SYS_ADMIN"], "x86_64")
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= _allowed(admin)
    assert not any(r["names"] == ["clone3"] and r["action"] != "SCMP_ACT_ALLOW"
                   for r in admin["syscalls"])


def sc(**kw):
    return api_pb2.LinuxContainerSecurityContext(**kw)


def profile(kind: str, ref: str = ""):
    return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.ProfileType.Value(kind),
                                   localhost_ref=ref)


def test_select_profile(tmp_path):
    assert seccomp.select_profile(sc(), False, []) is None                       # unset
    assert seccomp.select_profile(sc(seccomp=profile("Unconfined")), False, []) is None
    assert seccomp.select_profile(sc(seccomp=profile("RuntimeDefault")), True, []) is None
    assert seccomp.select_profile(sc(seccomp=profile("RuntimeDefault")), False, [])
    assert seccomp.select_profile(sc(seccomp_profile_path="runtime/default"), False, [])
    assert seccomp.select_profile(sc(seccomp_profile_path="unconfined"), False, []) is None
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_LOG", "syscalls": []}))
    assert seccomp.select_profile(sc(seccomp=profile("Localhost", str(path))), False, [])[
        "defaultAction"] == "SCMP_ACT_LOG"
    assert seccomp.select_profile(sc(seccomp_profile_path=f"localhost/{path}"), False, [])
    with pytest.raises(CriError):
        seccomp.select_profile(sc(seccomp=profile("Localhost", str(tmp_path / "nope"))), False, [])
    with pytest.raises(CriError):
        seccomp.select_profile(sc(seccomp=profile("Localhost", "relative.json")), False, [])


def test_docker_format_profile():
    data = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                         {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                          "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
                         {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"arches": ["arm64"]}}]}
    got = seccomp.from_docker_format(data, ["CAP_SYS_PTRACE"], "x86_64")
    assert got["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert [r["names"] for r in got["syscalls"]] == [["read"]]
    assert got["defaultErrnoRet"] == 1


def test_resources():
    r = api_pb2.LinuxContainerResources(cpu_shares=512, cpu_quota=50000, cpu_period=100000,
                                        memory_limit_in_bytes=1 << 20, cpuset_cpus="0")
    assert resources.linux_resources(r) == {
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "memory": {"limit": 1 << 20}}
    assert resources.linux_resources(api_pb2.LinuxContainerResources()) == {}


@pytest.mark.parametrize("requested, floor, expected", [
    (-998, 0, 0), (-998, -999, -998), (500, 0, 500), (2000, 0, 1000), (0, 100, 100)])
def test_oom_score_adj_clamp(requested, floor, expected):
    assert resources.clamp_oom_score_adj(requested, floor) == expected


def test_signals():
    assert signals.parse_signal("SIGTERM") == signals.parse_signal("term") == signal.SIGTERM
    assert signals.parse_signal("9") == 9
    with pytest.raises(CriError):
        signals.parse_signal("SIGNOPE")
    cfg = api_pb2.ContainerConfig()
    assert signals.stop_signal(cfg, {}) == signal.SIGTERM
    assert signals.stop_signal(cfg, {"StopSignal": "SIGQUIT"}) == signal.SIGQUIT
    assert signals.stop_signal(cfg, {"config": {"StopSignal": "SIGINT"}, "rootfs": {}}) == signal.SIGINT
    cfg.stop_signal = api_pb2.Signal.Value("SIGUSR1")
    assert signals.stop_signal(cfg, {"StopSignal": "SIGQUIT"}) == signal.SIGUSR1
