"""build_spec and its parts, on a fake rootfs (no root, no runc)."""
from __future__ import annotations

import os

import pytest
from cri_api.v1 import api_pb2

from cri.errors import CriError
from cri.oci import caps, spec as oci_spec
from cri.oci.namespaces import linux_namespaces
from cri.oci.spec import PodContext, build_spec, process_args, process_env

NS = api_pb2.NamespaceMode


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:alice\nalice:x:1000:\n")
    return str(tmp_path)


def pod(**kw) -> PodContext:
    cfg = kw.pop("config", None) or api_pb2.PodSandboxConfig(hostname="h")
    return PodContext(id="pod1", config=cfg, netns_path="/run/netns/x", **kw)


def ctr(**kw) -> api_pb2.ContainerConfig:
    kw.setdefault("command", ["sh"])
    return api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"), **kw)


@pytest.mark.parametrize("command, args, entrypoint, cmd, expected", [
    ([], [], ["/ep"], ["c1", "c2"], ["/ep", "c1", "c2"]),
    ([], ["a"], ["/ep"], ["c1"], ["/ep", "a"]),          # args replace Cmd
    (["/cmd"], [], ["/ep"], ["c1"], ["/cmd"]),           # command replaces Entrypoint, drops Cmd
    (["/cmd"], ["a"], ["/ep"], ["c1"], ["/cmd", "a"]),
    ([], [], [], ["c1"], ["c1"]),
    ([], ["a"], [""], [], ["a"]),                        # Entrypoint [""] means none
])
def test_process_args(command, args, entrypoint, cmd, expected):
    config = api_pb2.ContainerConfig(command=command, args=args)
    assert process_args(config, {"Entrypoint": entrypoint, "Cmd": cmd}) == expected


def test_no_command_is_invalid():
    with pytest.raises(CriError, match="no command"):
        process_args(api_pb2.ContainerConfig(), {})


def test_env_merge_and_default_path():
    config = api_pb2.ContainerConfig(envs=[api_pb2.KeyValue(key="A", value="req"),
                                           api_pb2.KeyValue(key="C", value="c")])
    env = process_env(config, {"Env": ["A=img", "B=b"]}, "host")
    assert env == [f"{oci_spec.DEFAULT_PATH}", "A=req", "B=b", "HOSTNAME=host", "C=c"]
    assert process_env(api_pb2.ContainerConfig(), {"Env": ["PATH=/x"]}, "")[0] == "PATH=/x"


def test_basic_spec(rootfs):
    s = build_spec("c1", ctr(working_dir="/w", tty=True), pod(), {"Env": ["X=1"]}, rootfs)
    assert s["root"] == {"path": rootfs, "readonly": False}
    p = s["process"]
    assert p["terminal"] and p["cwd"] == "/w" and p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert p["capabilities"]["bounding"] == caps.DEFAULT_CAPS and p["capabilities"]["inheritable"] == []
    assert s["hostname"] == "h"
    assert s["linux"]["cgroupsPath"] == "/podwire/pod1/c1"
    assert s["annotations"][oci_spec.OWNED_CGROUP_PARENT] == "/podwire/pod1"
    assert s["linux"]["maskedPaths"] == oci_spec.DEFAULT_MASKED_PATHS
    assert s["linux"]["readonlyPaths"] == oci_spec.DEFAULT_READONLY_PATHS
    assert "seccomp" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.index("/dev") < dests.index("/dev/pts") and "/run" not in dests


def test_cgroup_parent_from_kubelet(rootfs):
    cfg = api_pb2.PodSandboxConfig()
    cfg.linux.cgroup_parent = "/kubepods/besteffort/podabc"
    s = build_spec("c1", ctr(), pod(config=cfg), {}, rootfs)
    assert s["linux"]["cgroupsPath"] == "/kubepods/besteffort/podabc/c1"
    assert oci_spec.OWNED_CGROUP_PARENT not in s["annotations"]


def test_user_from_security_context(rootfs):
    c = ctr()
    c.linux.security_context.run_as_user.value = 1000
    c.linux.security_context.supplemental_groups.append(7)
    user = build_spec("c1", c, pod(), {"User": "root"}, rootfs)["process"]["user"]
    assert user == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50, 7]}


def test_privileged(rootfs):
    p_cfg = api_pb2.PodSandboxConfig()
    p_cfg.linux.security_context.privileged = True
    c = ctr()
    c.linux.security_context.privileged = True
    c.linux.security_context.seccomp.profile_type = 0  # RuntimeDefault: ignored when privileged
    s = build_spec("c1", c, pod(config=p_cfg), {}, rootfs)
    assert s["process"]["capabilities"]["bounding"] == caps.host_caps()
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    assert "seccomp" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


def test_privileged_container_needs_privileged_pod(rootfs):
    c = ctr()
    c.linux.security_context.privileged = True
    with pytest.raises(CriError, match="privileged"):
        build_spec("c1", c, pod(), {}, rootfs)


def test_security_fields(rootfs):
    c = ctr()
    sc = c.linux.security_context
    sc.readonly_rootfs = True
    sc.no_new_privs = True
    sc.masked_paths.append("/proc/x")
    sc.readonly_paths.append("/proc/y")
    sc.seccomp.profile_type = api_pb2.SecurityProfile.ProfileType.Value("RuntimeDefault")
    c.linux.resources.oom_score_adj = -500
    cfg = api_pb2.PodSandboxConfig(hostname="h")
    cfg.linux.sysctls["net.core.somaxconn"] = "1024"      # set once in the pod netns, not here
    s = build_spec("c1", c, pod(config=cfg, hosts_path="/p/hosts", sysctls={"kernel.shmmax": "1"}), {},
                   rootfs, oom_score_adj_floor=0)
    assert s["root"]["readonly"] and s["process"]["noNewPrivileges"]
    assert s["linux"]["maskedPaths"] == ["/proc/x"] and s["linux"]["readonlyPaths"] == ["/proc/y"]
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert s["process"]["oomScoreAdj"] == 0
    assert s["linux"]["sysctl"] == {"kernel.shmmax": "1"}
    hosts = next(m for m in s["mounts"] if m["destination"] == "/etc/hosts")
    assert hosts["source"] == "/p/hosts" and "ro" in hosts["options"]  # ro with a ro rootfs


def test_cri_mount_overrides_pod_file_and_sorted(rootfs, tmp_path):
    host = tmp_path / "h"
    c = ctr(mounts=[api_pb2.Mount(container_path="/a/b", host_path=str(host / "deep")),
                    api_pb2.Mount(container_path="/etc/hosts", host_path=str(host), readonly=True),
                    api_pb2.Mount(container_path="/a", host_path=str(host))])
    s = build_spec("c1", c, pod(hosts_path="/p/hosts"), {}, rootfs)
    by_dest = {m["destination"]: m for m in s["mounts"]}
    assert by_dest["/etc/hosts"]["source"] == str(host)
    assert by_dest["/etc/hosts"]["options"] == ["rbind", "rprivate", "ro"]
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.index("/a") < dests.index("/a/b")
    assert os.path.isdir(host / "deep"), "missing host paths are created, as containerd does"


def test_host_path_symlink_is_resolved(rootfs, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    c = ctr(mounts=[api_pb2.Mount(container_path="/m", host_path=str(tmp_path / "link"))])
    s = build_spec("c1", c, pod(), {}, rootfs)
    assert next(m for m in s["mounts"] if m["destination"] == "/m")["source"] == str(tmp_path / "real")


def test_recursive_readonly_needs_readonly(rootfs, tmp_path):
    c = ctr(mounts=[api_pb2.Mount(container_path="/m", host_path=str(tmp_path),
                                  recursive_read_only=True)])
    with pytest.raises(CriError, match="recursive"):
        build_spec("c1", c, pod(), {}, rootfs)


@pytest.mark.parametrize("opts, expected", [
    (dict(), {"mount", ("network", "/run/netns/x"), ("uts", "/p/uts"), ("ipc", "/p/ipc"), "pid"}),
    (dict(network=NS.Value("NODE"), ipc=NS.Value("NODE"), pid=NS.Value("NODE")), {"mount"}),
    (dict(pid=NS.Value("POD")), {"mount", ("network", "/run/netns/x"), ("uts", "/p/uts"),
                                 ("ipc", "/p/ipc"), ("pid", "/proc/9/ns/pid")}),
    (dict(ipc=NS.Value("CONTAINER"), pid=NS.Value("CONTAINER")),
     {"mount", ("network", "/run/netns/x"), ("uts", "/p/uts"), "ipc", "pid"}),
])
def test_namespaces_per_mode(opts, expected):
    opts.setdefault("pid", NS.Value("CONTAINER"))
    p = pod(ipc_ns_path="/p/ipc", uts_ns_path="/p/uts", pid_ns_path="/proc/9/ns/pid")
    got = linux_namespaces(api_pb2.NamespaceOption(**opts), p)
    assert {(n["type"], n["path"]) if "path" in n else n["type"] for n in got} == expected


def test_containers_of_a_host_network_and_host_ipc_pod_follow_the_pod():
    """A minimal container config (no namespace options, as crictl and critest send) in a pod on
    the node's network and IPC: the container gets the node's, as the sandbox's in containerd."""
    host_pod = PodContext(id="pod1", config=api_pb2.PodSandboxConfig(), netns_path="", uts_ns_path="",
                          ipc_ns_path="")
    got = linux_namespaces(api_pb2.NamespaceOption(), host_pod)
    assert got == [{"type": "mount"}, {"type": "pid"}]    # pid POD, no pod-wide one yet: fresh


def test_pod_pid_without_a_pinned_namespace_gets_a_fresh_one():
    got = linux_namespaces(api_pb2.NamespaceOption(pid=NS.Value("POD")), pod())
    assert {"type": "pid"} in got


def test_target_pid_namespace():
    opts = api_pb2.NamespaceOption(pid=NS.Value("TARGET"), target_id="other")
    assert {"type": "pid", "path": "/proc/5/ns/pid"} in linux_namespaces(opts, pod(), "/proc/5/ns/pid")
    with pytest.raises(CriError):
        linux_namespaces(opts, pod())


def test_host_network_has_no_hostname_but_env(rootfs):
    c = ctr()
    c.linux.security_context.namespace_options.network = NS.Value("NODE")
    s = build_spec("c1", c, pod(), {}, rootfs)
    assert "hostname" not in s and "HOSTNAME=h" in s["process"]["env"]
