"""podwire-cri containers end to end: real registry, real runc, real CNI, over the socket."""
from __future__ import annotations

import json
import os
import signal
import sys
import subprocess
import time

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root


def _pull(shim, ref: str) -> str:
    return shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=ref)), timeout=120).image_ref


def _pod(shim, tmp_path, **kw) -> tuple[str, api.PodSandboxConfig]:
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"), **kw)
    os.makedirs(cfg.log_directory, exist_ok=True)
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id, cfg


def _ctr_config(image: str, name: str = "", cmd=(), **kw) -> api.ContainerConfig:
    name = name or "c" + str(time.monotonic_ns())[-6:]
    return api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                               command=list(cmd), log_path=f"{name}/0.log", **kw)


def _create(shim, pod_id, pod_cfg, cfg) -> str:
    return shim.rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg), timeout=120).container_id


def _status(shim, cid) -> api.ContainerStatus:
    return shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status


def _wait_state(shim, cid, state, timeout=10) -> api.ContainerStatus:
    assert h.wait_for(lambda: _status(shim, cid).state == state, timeout), _status(shim, cid)
    return _status(shim, cid)


def _log_lines(path: str) -> list[tuple[str, str, str]]:
    with open(path) as f:
        return [tuple(line.rstrip("\n").split(" ", 3)[1:]) for line in f]


def test_container_lifecycle(shim, tmp_path, test_images):
    image_ref = _pull(shim, test_images.busybox)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    labels = {"io.kubernetes.container.name": "main", "x/y": "z w"}
    annotations = {"io.kubernetes.container.hash": "1234", "multi": "a\nb"}
    cfg = _ctr_config(test_images.busybox, "main", ["sh", "-c", "echo hello; echo oops >&2; trap 'exit 143' TERM; sleep 3600 & wait"],
                      labels=labels, annotations=annotations)
    cid = _create(shim, pod_id, pod_cfg, cfg)
    st = _status(shim, cid)
    assert st.state == api.CONTAINER_CREATED and st.created_at > 0 and st.started_at == 0
    assert dict(st.labels) == labels and dict(st.annotations) == annotations
    assert st.image.image == test_images.busybox and st.image_id == image_ref
    assert st.log_path == os.path.join(pod_cfg.log_directory, "main/0.log")

    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    st = _status(shim, cid)
    assert st.state == api.CONTAINER_RUNNING and st.started_at >= st.created_at
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert h.wait_for(lambda: len(_log_lines(st.log_path)) == 2)
    assert sorted(_log_lines(st.log_path)) == [("stderr", "F", "oops"), ("stdout", "F", "hello")]

    listed = shim.rt.ListContainers(api.ListContainersRequest(filter=api.ContainerFilter(
        pod_sandbox_id=pod_id[:10], label_selector={"x/y": "z w"}))).containers
    assert [c.id for c in listed] == [cid]

    res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"],
                                               timeout=10))
    assert (res.stdout, res.stderr, res.exit_code) == (b"out\n", b"err\n", 3)
    t0 = time.monotonic()
    res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "sleep 100 & echo bg"],
                                               timeout=10))
    assert res.stdout == b"bg\n" and time.monotonic() - t0 < 5     # a background child holds the pipe
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["sleep", "10"], timeout=1))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    stats = shim.rt.ContainerStats(api.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid and stats.memory.working_set_bytes.value > 0
    assert stats.cpu.usage_core_nano_seconds.value > 0
    pstats = shim.rt.PodSandboxStats(api.PodSandboxStatsRequest(pod_sandbox_id=pod_id)).stats
    assert [c.attributes.id for c in pstats.linux.containers] == [cid]
    assert pstats.linux.network.default_interface.name == "eth0"

    upd = api.UpdateContainerResourcesRequest(container_id=cid, linux=api.LinuxContainerResources(
        memory_limit_in_bytes=64 << 20, cpu_shares=512))
    shim.rt.UpdateContainerResources(upd)
    assert _status(shim, cid).resources.linux.memory_limit_in_bytes == 64 << 20

    t0 = time.monotonic()
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=10))
    assert time.monotonic() - t0 < 5           # the shell's TERM trap ends it at once
    st = _status(shim, cid)
    assert st.state == api.CONTAINER_EXITED and st.exit_code == 128 + signal.SIGTERM
    assert st.reason == "Error" and st.finished_at >= st.started_at
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=10))      # idempotent
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))              # idempotent
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid))                  # unknown: fine
    with pytest.raises(grpc.RpcError) as err:
        _status(shim, cid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert shim.rt.ListContainers(api.ListContainersRequest()).containers == []


def test_exit_codes_stop_signal_and_kill_after_timeout(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    _pull(shim, test_images.configured)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    done = _create(shim, pod_id, pod_cfg, _ctr_config(test_images.busybox, "done", ["true"]))
    fail = _create(shim, pod_id, pod_cfg, _ctr_config(test_images.busybox, "fail", ["sh", "-c", "exit 7"]))
    # The image's STOPSIGNAL is SIGUSR1, which this shell ignores: only SIGKILL ends it.
    stubborn = _create(shim, pod_id, pod_cfg, _ctr_config(
        test_images.configured, "stubborn", ["sh", "-c", "trap '' USR1 TERM; while :; do sleep 0.1; done"]))
    for cid in (done, fail, stubborn):
        shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    st = _wait_state(shim, done, api.CONTAINER_EXITED)
    assert (st.exit_code, st.reason) == (0, "Completed")
    st = _wait_state(shim, fail, api.CONTAINER_EXITED)
    assert (st.exit_code, st.reason) == (7, "Error")
    assert _status(shim, stubborn).stop_signal == api.SIGUSR1
    t0 = time.monotonic()
    shim.rt.StopContainer(api.StopContainerRequest(container_id=stubborn, timeout=2))
    assert 1.8 < time.monotonic() - t0 < 8
    st = _status(shim, stubborn)
    assert st.state == api.CONTAINER_EXITED and st.exit_code == 128 + signal.SIGKILL


def test_events_stream_life_cycle(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    stream = shim.rt.GetContainerEvents(api.GetEventsRequest(), timeout=60)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cid = _create(shim, pod_id, pod_cfg, _ctr_config(test_images.busybox, "ev", ["true"]))
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    _wait_state(shim, cid, api.CONTAINER_EXITED)
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
    seen = []
    for ev in stream:
        seen.append((ev.container_id, ev.container_event_type))
        if (cid, api.CONTAINER_DELETED_EVENT) in seen:
            break
    stream.cancel()
    assert seen == [(pod_id, api.CONTAINER_CREATED_EVENT), (pod_id, api.CONTAINER_STARTED_EVENT),
                    (cid, api.CONTAINER_CREATED_EVENT), (cid, api.CONTAINER_STARTED_EVENT),
                    (cid, api.CONTAINER_STOPPED_EVENT), (cid, api.CONTAINER_DELETED_EVENT)]


def test_log_rotation_with_reopen(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cid = _create(shim, pod_id, pod_cfg, _ctr_config(
        test_images.busybox, "rot", ["sh", "-c", "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.05; done"]))
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    path = _status(shim, cid).log_path
    assert h.wait_for(lambda: os.path.exists(path) and os.path.getsize(path) > 0)
    os.rename(path, path + ".20240101-000000")
    shim.rt.ReopenContainerLog(api.ReopenContainerLogRequest(container_id=cid))
    assert h.wait_for(lambda: os.path.exists(path) and len(_log_lines(path)) >= 2)
    old = [m for _, _, m in _log_lines(path + ".20240101-000000")]
    new = [m for _, _, m in _log_lines(path)]
    numbers = [int(m[4:]) for m in old + new]
    assert numbers[:len(old)] == list(range(len(old)))    # nothing lost or repeated at the switch
    assert numbers[len(old)] in (len(old), len(old) + 1)
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0))
    with pytest.raises(grpc.RpcError) as err:
        shim.rt.ReopenContainerLog(api.ReopenContainerLogRequest(container_id=cid))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_two_containers_in_two_pods_talk(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    a, a_cfg = _pod(shim, tmp_path)
    b, b_cfg = _pod(shim, tmp_path)
    server = _create(shim, b, b_cfg, _ctr_config(test_images.busybox, "srv",
                                                 ["sh", "-c", "echo pong-from-b | nc -l -p 8080"]))
    shim.rt.StartContainer(api.StartContainerRequest(container_id=server))
    ip_b = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=b)).status.network.ip
    client = _create(shim, a, a_cfg, _ctr_config(test_images.busybox, "cli", ["sleep", "3600"]))
    shim.rt.StartContainer(api.StartContainerRequest(container_id=client))
    res = None
    for _ in range(20):
        res = shim.rt.ExecSync(api.ExecSyncRequest(container_id=client, cmd=["nc", ip_b, "8080"], timeout=5))
        if res.stdout:
            break
        time.sleep(0.2)
    assert res.stdout == b"pong-from-b\n"
    host = shim.rt.ExecSync(api.ExecSyncRequest(container_id=client, cmd=["hostname"], timeout=5))
    assert host.stdout.decode().strip() == a_cfg.hostname


def test_bad_container_requests(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cases = [
        (_ctr_config("podwire-test/not-pulled:1"), grpc.StatusCode.NOT_FOUND),
        (api.ContainerConfig(image=api.ImageSpec(image=test_images.busybox)), grpc.StatusCode.INVALID_ARGUMENT),
        (_ctr_config(test_images.busybox, "esc", ["true"], ), None),
    ]
    cases[2][0].log_path = "../../escape.log"
    cases[2] = (cases[2][0], grpc.StatusCode.INVALID_ARGUMENT)
    for cfg, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            _create(shim, pod_id, pod_cfg, cfg)
        assert err.value.code() == code, err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        _create(shim, "no-such-pod", pod_cfg, _ctr_config(test_images.busybox, "x", ["true"]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    cfg = _ctr_config(test_images.busybox, "twice", ["true"])
    first = _create(shim, pod_id, pod_cfg, cfg)
    with pytest.raises(grpc.RpcError) as err:
        _create(shim, pod_id, pod_cfg, cfg)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and first in err.value.details()
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    with pytest.raises(grpc.RpcError) as err:
        _create(shim, pod_id, pod_cfg, _ctr_config(test_images.busybox, "late", ["true"]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not os.path.exists(str(tmp_path / "escape.log"))


def test_shim_killed_and_restarted_keeps_containers(shim_factory, tmp_path, test_images):
    first = shim_factory(process=True)
    _pull(first, test_images.busybox)
    pod_id, pod_cfg = _pod(first, tmp_path)
    runner = _create(first, pod_id, pod_cfg, _ctr_config(
        test_images.busybox, "runner", ["sh", "-c", "i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.1; done"]))
    quitter = _create(first, pod_id, pod_cfg, _ctr_config(test_images.busybox, "quitter",
                                                          ["sh", "-c", "sleep 1; echo bye; exit 5"]))
    for cid in (runner, quitter):
        first.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    ip = first.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status.network.ip
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    time.sleep(2)                                  # the quitter exits while no shim runs
    second = shim_factory(process=True)
    pods = second.rt.ListPodSandbox(api.ListPodSandboxRequest()).items
    assert [(p.id, p.state) for p in pods] == [(pod_id, api.SANDBOX_READY)]
    assert second.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status.network.ip == ip
    st = _status(second, runner)
    assert st.state == api.CONTAINER_RUNNING
    st = _status(second, quitter)
    assert (st.state, st.exit_code, st.reason) == (api.CONTAINER_EXITED, 5, "Error")
    assert ("stdout", "F", "bye") in _log_lines(st.log_path)
    ticks = [m for _, _, m in _log_lines(_status(second, runner).log_path)]
    assert ticks == [f"tick{i}" for i in range(len(ticks))] and len(ticks) > 20   # no gap while down
    res = second.rt.ExecSync(api.ExecSyncRequest(container_id=runner, cmd=["echo", "still here"], timeout=5))
    assert res.stdout == b"still here\n"
    cfg = _ctr_config(test_images.busybox, "runner", ["true"])
    with pytest.raises(grpc.RpcError) as err:                        # names survived the restart
        _create(second, pod_id, pod_cfg, cfg)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_ctl_drives_the_shim(shim, tmp_path, test_images):
    script = os.path.join(os.path.dirname(sys.executable), "podwire-ctl")
    # The console script where podwire is installed in this venv (make setup's); the VM's venv
    # holds the dependencies only and runs the checkout.
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "cri.ctl.main"]

    def ctl(*argv, check=True):
        proc = subprocess.run([*command, "--runtime-endpoint", "unix://" + shim.cfg.socket_path, *argv],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 or not check, proc.stderr
        return proc.stdout
    assert "RuntimeApiVersion:  v1" in ctl("version")
    assert json.loads(ctl("info"))["status"]["conditions"][0]["type"] == "RuntimeReady"
    pod_json, ctr_json = tmp_path / "pod.json", tmp_path / "ctr.json"
    h.write_json(str(pod_json), {"metadata": {"name": "ctl-pod", "namespace": "default", "uid": "ctl-uid"},
                                 "hostname": "ctl-pod", "log_directory": str(tmp_path / "ctl-logs"),
                                 "linux": {"security_context": {"namespace_options": {"pid": 1}}}})
    h.write_json(str(ctr_json), {"metadata": {"name": "box"}, "image": {"image": test_images.busybox},
                                 "command": ["sh", "-c", "echo from-ctl; sleep 3600"], "log_path": "box/0.log"})
    os.makedirs(tmp_path / "ctl-logs")
    pod_id = ctl("runp", str(pod_json)).strip()
    assert ctl("pods", "-q") .split() == [pod_id]
    assert "ctl-pod" in ctl("pods") and "Ready" in ctl("pods")
    assert json.loads(ctl("inspectp", pod_id))["status"]["state"] == "SANDBOX_READY"
    cid = ctl("create", pod_id, str(ctr_json), str(pod_json)).strip()     # pulls the image itself
    assert test_images.busybox.split("/", 1)[1].split(":")[0] in ctl("images")
    ctl("start", cid)
    assert "box" in ctl("ps") and cid[:13] in ctl("ps")
    assert h.wait_for(lambda: ctl("logs", cid) == "from-ctl\n")
    assert ctl("exec", cid, "sh", "-c", "echo $((6*7))") == "42\n"
    assert json.loads(ctl("inspect", cid))["status"]["state"] == "CONTAINER_RUNNING"
    assert "CONTAINER" in ctl("stats", "-s", "0")
    assert "usedBytes" in ctl("imagefsinfo")
    follow = subprocess.Popen([*command, "-r", shim.cfg.socket_path, "logs", "-f", cid],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    ctl("stop", "-t", "0", cid)
    assert follow.wait(10) == 0 and follow.stdout.read() == "from-ctl\n"   # -f ends with the container
    ctl("rm", cid)
    ctl("stopp", pod_id)
    ctl("rmp", pod_id)
    assert ctl("pods", "-q").split() == []
    ctl("rmi", test_images.busybox)
    assert ctl("images", "-q").split() == []


def test_shared_pid_namespace_and_pod_ipc(shim, tmp_path, test_images):
    """shareProcessNamespace (PID POD): containers see each other; the holder goes with the pod."""
    _pull(shim, test_images.busybox)
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    cfg.linux.security_context.namespace_options.pid = api.POD
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    ids = []
    for name, cmd in (("a", ["sh", "-c", "echo shared > /dev/shm/x; exec sleep 3601"]), ("b", ["sleep", "3602"])):
        c = _ctr_config(test_images.busybox, name, cmd)
        c.linux.security_context.namespace_options.pid = api.POD
        ids.append(_create(shim, pod_id, cfg, c))
        shim.rt.StartContainer(api.StartContainerRequest(container_id=ids[-1]))
    ps = shim.rt.ExecSync(api.ExecSyncRequest(container_id=ids[1], cmd=["ps", "-o", "args"], timeout=5))
    assert b"sleep 3601" in ps.stdout and b"sleep 3602" in ps.stdout
    shm = shim.rt.ExecSync(api.ExecSyncRequest(container_id=ids[1], cmd=["cat", "/dev/shm/x"], timeout=5))
    assert shm.stdout == b"shared\n"
    holder = json.loads(shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id, verbose=True)).info["info"])["pidNamespace"]
    assert os.path.exists(holder)
    shim.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    shim.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert h.wait_for(lambda: not os.path.exists(holder), 5)
