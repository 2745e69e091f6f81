"""Each security-context field and namespace option, observed from inside the container."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from cri_api.v1 import api_pb2

from cri.errors import CriError
from cri.oci import caps
from rtfixtures import busybox_rootfs, env, needs_runc, sc  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, needs_runc]

NS = api_pb2.NamespaceMode
STATUS = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"


def status_fields(env, **kw) -> dict[str, str]:
    out = env.output(["sh", "-c", STATUS], **kw)
    return dict(line.split(":\t") for line in out.splitlines())


def cap_mask(names) -> str:
    return f"{sum(1 << caps.ALL_CAPS.index(n) for n in names):016x}"


@pytest.mark.parametrize("ctx, expected", [
    ({"run_as_user": api_pb2.Int64Value(value=1000)}, "1000 1000 1000 50 10"),
    ({"run_as_username": "bob"}, "1001 1001 1001 50"),
    ({"run_as_user": api_pb2.Int64Value(value=1000), "run_as_group": api_pb2.Int64Value(value=2000),
      "supplemental_groups": [3000]}, "1000 2000 2000 50 10 3000"),
    ({"run_as_user": api_pb2.Int64Value(value=1000), "supplemental_groups": [3000],
      "supplemental_groups_policy": 1}, "1000 1000 1000 3000"),  # Strict: no /etc/group
    ({"run_as_user": api_pb2.Int64Value(value=4242)}, "4242 0 0"),  # not in /etc/passwd
])
def test_user_and_groups(env, ctx, expected):
    out = env.output(["sh", "-c", "echo $(id -u) $(id -g) $(id -G)"], linux=sc(**ctx)).split()
    want = expected.split()
    assert out[:2] == want[:2] and sorted(out[2:]) == sorted(want[2:])  # the kernel sorts groups


@pytest.mark.parametrize("user, expected", [("alice", "1000 1000"), ("1001:50", "1001 50"),
                                            ("bob:wheel", "1001 10"), ("", "0 0")])
def test_image_user(env, user, expected):
    out = env.output(["sh", "-c", "echo $(id -u) $(id -g)"], linux=sc(), image={"User": user})
    assert out.split() == expected.split()


def test_unknown_user_name_is_invalid(env):
    with pytest.raises(CriError, match="not found"):
        env.create(env.config(["true"], linux=sc(run_as_username="mallory")))


def test_capabilities(env):
    assert status_fields(env, linux=sc())["CapEff"] == cap_mask(caps.DEFAULT_CAPS)
    added = status_fields(env, linux=sc(capabilities=api_pb2.Capability(
        add_capabilities=["NET_ADMIN"], drop_capabilities=["CHOWN", "KILL"])))["CapEff"]
    assert added == cap_mask([c for c in caps.DEFAULT_CAPS if c not in ("CAP_CHOWN", "CAP_KILL")]
                             + ["CAP_NET_ADMIN"])
    none = status_fields(env, linux=sc(capabilities=api_pb2.Capability(drop_capabilities=["ALL"])))
    assert none["CapEff"] == "0" * 16
    everything = status_fields(env, linux=sc(capabilities=api_pb2.Capability(add_capabilities=["ALL"])))
    assert everything["CapEff"] == cap_mask(caps.host_caps())


def test_no_new_privs_and_seccomp(env):
    plain = status_fields(env, linux=sc())
    assert (plain["NoNewPrivs"], plain["Seccomp"]) == ("0", "0")  # no profile asked: unconfined
    strict = status_fields(env, linux=sc(no_new_privs=True, seccomp=api_pb2.SecurityProfile(
        profile_type=api_pb2.SecurityProfile.ProfileType.Value("RuntimeDefault"))))
    assert (strict["NoNewPrivs"], strict["Seccomp"]) == ("1", "2")
    legacy = status_fields(env, linux=sc(seccomp_profile_path="runtime/default"))
    assert legacy["Seccomp"] == "2"


def test_runtime_default_seccomp_blocks_namespace_creation(env):
    out = env.output(["sh", "-c", "unshare -U true 2>/dev/null && echo allowed || echo denied"],
                     linux=sc(seccomp=api_pb2.SecurityProfile(profile_type=0)))
    assert out == "denied\n"


def test_localhost_seccomp_profile(env, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = env.output(["sh", "-c", "mkdir /tmp/d 2>/dev/null && echo made || echo blocked"],
                     linux=sc(seccomp=api_pb2.SecurityProfile(
                         profile_type=api_pb2.SecurityProfile.ProfileType.Value("Localhost"),
                         localhost_ref=str(path))))
    assert out == "blocked\n"


def test_readonly_rootfs(env):
    out = env.output(["sh", "-c", "touch /x 2>/dev/null && echo wrote || echo ro;"
                      " touch /dev/shm/x && echo shm-ok"], linux=sc(readonly_rootfs=True))
    assert out == "ro\nshm-ok\n"


def test_masked_and_readonly_paths(env):
    script = ("wc -c < /proc/timer_list; echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null"
              " && echo wrote || echo ro")
    default = env.output(["sh", "-c", script], linux=sc())
    assert default.split() == ["0", "ro"]
    custom = env.output(["sh", "-c", "wc -c < /proc/cpuinfo; wc -c < /proc/timer_list"],
                        linux=sc(masked_paths=["/proc/cpuinfo"], readonly_paths=["/proc/sys"]))
    assert custom.split()[0] == "0" and custom.split()[1] != "0"


def test_privileged(env):
    pod_cfg = api_pb2.PodSandboxConfig(hostname="p")
    pod_cfg.linux.security_context.privileged = True
    out = env.output(["sh", "-c", STATUS + "; wc -c < /proc/timer_list; ls /dev | wc -l"],
                     linux=sc(privileged=True, seccomp=api_pb2.SecurityProfile(profile_type=0)),
                     pod=env.pod(config=pod_cfg))
    lines = out.splitlines()
    assert lines[0] == "CapEff:\t" + cap_mask(caps.host_caps())
    assert lines[2] == "Seccomp:\t0"            # no seccomp even though RuntimeDefault was asked
    assert int(lines[3]) > 0                    # nothing masked
    assert int(lines[4]) > 20                   # the host's devices


def test_privileged_needs_privileged_pod(env):
    with pytest.raises(CriError, match="privileged"):
        env.create(env.config(["true"], linux=sc(privileged=True)))


def test_oom_score_adj_is_clamped(env):
    def score(value: int) -> str:
        linux = sc()
        linux.resources.oom_score_adj = value
        return env.output(["cat", "/proc/self/oom_score_adj"], linux=linux).strip()
    with open("/proc/self/oom_score_adj") as f:
        floor = int(f.read())
    assert score(-998) == str(max(floor, -998))
    assert score(500) == "500"


def test_namespaces_hostname_and_sysctls(env, netns, tmp_path):
    ipc_pin = tmp_path / "ipc"
    ipc_pin.touch()
    subprocess.run(["unshare", f"--ipc={ipc_pin}", "true"], check=True)
    try:
        pod_cfg = api_pb2.PodSandboxConfig(hostname="pod-host")
        pod_cfg.linux.sysctls["kernel.shm_rmid_forced"] = "1"
        # The IPC half of the pod's sysctls, as CreateContainer passes it (sysctl.split).
        pod = env.pod(config=pod_cfg, netns_path=netns, ipc_ns_path=str(ipc_pin),
                      sysctls={"kernel.shm_rmid_forced": "1"})
        linux = api_pb2.LinuxContainerConfig()
        linux.security_context.namespace_options.pid = NS.Value("CONTAINER")
        out = env.output(["sh", "-c", "hostname; echo $$; cat /proc/sys/kernel/shm_rmid_forced;"
                          " readlink /proc/self/ns/net; readlink /proc/self/ns/ipc"], linux=linux, pod=pod)
        hostname, pid, rmid, net, ipc = out.split()
        assert (hostname, pid, rmid) == ("pod-host", "1", "1")
        assert net == f"net:[{os.stat(netns).st_ino}]" and ipc == f"ipc:[{os.stat(ipc_pin).st_ino}]"
    finally:
        subprocess.run(["umount", str(ipc_pin)], check=False)


def test_host_pid_namespace(env):
    linux = sc()
    linux.security_context.namespace_options.pid = NS.Value("NODE")
    out = env.output(["sh", "-c", "echo $$; readlink /proc/self/ns/pid"], linux=linux)
    pid, ns = out.split()
    assert pid != "1" and ns == os.readlink("/proc/self/ns/pid")


def test_pod_pid_namespace_joins_first_container(env):
    pod = env.pod()
    first, _ = env.create(env.config(["sleep", "100"]), pod)
    env.rt.start(first)
    linux = sc()
    linux.security_context.namespace_options.pid = NS.Value("POD")
    shared = env.pod(id=pod.id, config=pod.config, pid_ns_path=env.rt.pid_namespace(first))
    out = env.output(["sh", "-c", "ps -o comm | grep -c sleep"], linux=linux, pod=shared)
    assert out.strip() == "1"


def test_bind_mounts_readonly_symlinked_and_devices(env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("from host\n")
    link = tmp_path / "link"
    link.symlink_to(data)
    mounts = [api_pb2.Mount(container_path="/ro", host_path=str(link), readonly=True),
              api_pb2.Mount(container_path="/rw", host_path=str(data))]
    devices = [api_pb2.Device(container_path="/dev/xzero", host_path="/dev/zero", permissions="r")]
    out = env.output(["sh", "-c", "cat /ro/f; touch /ro/x 2>/dev/null || echo ro-denied;"
                      " echo new > /rw/g; head -c 3 /dev/xzero | wc -c"],
                     mounts=mounts, devices=devices, linux=sc())
    assert out.split("\n")[:3] == ["from host", "ro-denied", "3"]
    assert (data / "g").read_text() == "new\n"


def test_host_to_container_propagation(env, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        m = api_pb2.Mount(container_path="/prop", host_path=str(shared),
                          propagation=api_pb2.MountPropagation.Value("PROPAGATION_HOST_TO_CONTAINER"))
        cid, log = env.create(env.config(
            ["sh", "-c", "while [ ! -e /prop/sub/marker ]; do sleep 0.05; done; echo seen"],
            mounts=[m], linux=sc()))
        env.rt.start(cid)
        (shared / "sub").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(shared / "sub")], check=True)
        (shared / "sub" / "marker").touch()
        assert env.rt.wait_exit(cid, 10).exit_code == 0
    finally:
        subprocess.run(["umount", "-R", str(shared)], check=False)


@pytest.fixture
def private_mount(tmp_path):
    """tmp_path as a mount point of its own, private whatever the host's / is (systemd makes
    it shared, a container host often private)."""
    path = str(tmp_path)
    subprocess.run(["mount", "--bind", path, path], check=True)
    try:
        subprocess.run(["mount", "--make-private", path], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def test_propagation_from_a_private_mount_is_refused(env, private_mount):
    m = api_pb2.Mount(container_path="/prop", host_path=private_mount,
                      propagation=api_pb2.MountPropagation.Value("PROPAGATION_BIDIRECTIONAL"))
    with pytest.raises(CriError, match="not shared"):
        env.create(env.config(["true"], mounts=[m], linux=sc()))


def test_image_config_process(env):
    image = {"Entrypoint": ["sh", "-c"], "Cmd": ["echo image-cmd"], "Env": ["A=image", "B=b"],
             "WorkingDir": "/tmp"}
    assert env.output([], image=image, linux=sc()) == "image-cmd\n"
    out = env.output([], args=["echo $A $B $(pwd)"], envs=[api_pb2.KeyValue(key="A", value="req")],
                     image=image, linux=sc())
    assert out == "req b /tmp\n"
