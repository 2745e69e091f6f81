"""The shim may die at any time: kill -9 of the process that created a container must not
touch the container, and a fresh ContainerRuntime must find its exit code and every log line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from cri_api.v1 import api_pb2

from cri.monitor import conmon, files
from cri.oci.runtime import ContainerRuntime
from cri.oci.spec import build_spec
from cri.oci.state import State
from rtfixtures import busybox_rootfs, env, needs_runc, read_log  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, needs_runc]

# Plays the shim: create + start, report, then wait to be SIGKILLed.
SHIM = textwrap.dedent("""
    import json, sys, time
    from cri.oci.runtime import ContainerRuntime
    root, runc_root, state, cid, spec_path, log = sys.argv[1:]
    rt = ContainerRuntime(root, runc_root, state)
    with open(spec_path) as f:
        spec = json.load(f)
    pid = rt.create(cid, spec, log)
    rt.start(cid)
    print(pid, flush=True)
    time.sleep(600)
""")


def test_kill_9_of_the_shim(env, tmp_path):
    trigger = tmp_path / "trigger"
    trigger.mkdir()
    cid = "restart" + os.urandom(4).hex()
    rootfs = env.rt.prepare_rootfs(cid, [env.layer])
    cfg = env.config(["sh", "-c", "echo before; while [ ! -e /trigger/go ]; do sleep 0.05; done;"
                      " i=0; while [ $i -lt 500 ]; do echo after$i; i=$((i+1)); done;"
                      " echo oops >&2; exit 5"],
                     mounts=[api_pb2.Mount(container_path="/trigger", host_path=str(trigger))])
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(build_spec(cid, cfg, env.pod(), {}, rootfs)))
    log = os.path.join(env.base, "restart.log")

    shim = subprocess.Popen([sys.executable, "-c", SHIM, env.rt.root_dir, env.rt.runc.root,
                             env.rt.state_dir, cid, str(spec_path), log], stdout=subprocess.PIPE,
                            text=True)
    try:
        pid = int(shim.stdout.readline())
    finally:
        shim.send_signal(signal.SIGKILL)
        shim.wait()
    fresh = ContainerRuntime(env.rt.root_dir, env.rt.runc.root, env.rt.state_dir)
    st = fresh.status(cid)
    assert (st.state, st.pid) == (State.RUNNING, pid), "the container survived the shim"
    monitor = _conmon(fresh, cid)
    assert monitor.alive() and _ppid(monitor.pid) != shim.pid
    assert os.getsid(monitor.pid) not in (os.getsid(0), shim.pid)

    (trigger / "go").touch()  # the container now writes its output while no shim runs
    done = fresh.wait_exit(cid, 20)
    assert (done.exit_code, done.reason) == (5, "Error")
    assert done.started_at and done.finished_at >= done.started_at
    lines = read_log(log)
    assert lines[0] == "before\n" and lines[-1] == "oops\n"
    assert [line for line in lines if line.startswith("after")] == [f"after{i}\n" for i in range(500)]
    assert {s.id: s.state for s in fresh.recover()}[cid] == State.EXITED
    _wait_gone(monitor)


def test_exit_while_shim_is_down_is_recorded(env, tmp_path):
    cid, log = env.create(env.config(["sh", "-c", "sleep 0.3; echo done; exit 3"]))
    env.rt.start(cid)
    # No ContainerRuntime call while it exits: conmon alone records it.
    time.sleep(1.0)
    assert files.read_int(os.path.join(env.rt.monitor_dir(cid), files.EXIT)) == 3
    assert read_log(log) == ["done\n"]


def test_monitor_killed_reports_unknown_exit(env):
    cid, _ = env.create(env.config(["sleep", "100"]))
    env.rt.start(cid)
    monitor = _conmon(env.rt, cid)
    os.kill(monitor.pid, signal.SIGKILL)
    _wait_gone(monitor)
    assert env.rt.status(cid).state == State.RUNNING  # the init still lives
    env.rt.stop(cid, signal.SIGKILL, 0)
    st = env.rt.status(cid)
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 255, "Unknown")


def _conmon(rt, cid: str) -> files.ProcRef:
    pid = conmon.conmon_pid(rt.monitor_dir(cid), cid)
    assert pid, "conmon runs for the container"
    return files.ProcRef.of(pid)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _wait_gone(ref, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while ref.alive() and time.monotonic() < end:
        time.sleep(0.02)
    assert not ref.alive()
