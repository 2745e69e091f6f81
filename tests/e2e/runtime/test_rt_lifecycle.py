"""Container lifecycle on real runc: create/start/exit, stop, remove, status timestamps."""
from __future__ import annotations

import os
import signal
import time

import pytest

from cri.errors import CriError
from cri.oci.state import State
from rtfixtures import busybox_rootfs, env, needs_runc, read_log  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, needs_runc]


def test_exit_zero_is_completed_with_ordered_timestamps(env):
    before = time.time_ns()
    cid, log = env.run(["sh", "-c", "echo hello"])
    st = env.rt.status(cid)
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 0, "Completed")
    assert before <= st.created_at <= st.started_at <= st.finished_at <= time.time_ns()
    assert read_log(log) == ["hello\n"]


def test_nonzero_exit_is_error(env):
    cid, _ = env.run(["sh", "-c", "exit 7"])
    st = env.rt.status(cid)
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 7, "Error")


def test_created_then_running_then_stop_idempotent(env):
    cid, _ = env.create(env.config(["sleep", "100"]))
    st = env.rt.status(cid)
    assert st.state == State.CREATED and st.pid > 0 and st.started_at == 0
    env.rt.start(cid)
    assert env.rt.status(cid).state == State.RUNNING
    with pytest.raises(CriError):
        env.rt.start(cid)  # not CREATED any more
    # sleep is pid 1 of its namespace: the kernel drops a TERM it has no handler for, so the
    # stop ends with SIGKILL.  (Until runc's init has exec'd sleep, Go's handler would take it.)
    _wait_for(lambda: open(f"/proc/{st.pid}/comm").read() == "sleep\n")
    env.rt.stop(cid, signal.SIGTERM, 0.3)
    st = env.rt.status(cid)
    assert (st.state, st.exit_code) == (State.EXITED, 137)
    env.rt.stop(cid, signal.SIGTERM, 5)  # already stopped: success
    env.rt.stop("no-such-container", signal.SIGTERM, 1)


def test_stop_signal_then_sigkill_after_timeout(env):
    cid, log = env.create(env.config(
        ["sh", "-c", "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done"]))
    env.rt.start(cid)
    _wait_for(lambda: read_log(log) == ["ready\n"])
    started = time.monotonic()
    env.rt.stop(cid, signal.SIGTERM, 1.0)
    assert 1.0 <= time.monotonic() - started < 5
    st = env.rt.status(cid)
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 137, "Error")
    assert "got TERM\n" in read_log(log)


def test_stop_uses_the_given_signal(env):
    cid, log = env.create(env.config(
        ["sh", "-c", "trap 'echo bye; exit 0' USR1; echo ready; while true; do sleep 0.1; done"]))
    env.rt.start(cid)
    _wait_for(lambda: read_log(log) == ["ready\n"])
    env.rt.stop(cid, signal.SIGUSR1, 10)
    st = env.rt.status(cid)
    assert (st.exit_code, st.reason) == (0, "Completed")
    assert read_log(log) == ["ready\n", "bye\n"]


def test_stop_of_a_created_container(env):
    cid, _ = env.create(env.config(["sleep", "100"]))
    env.rt.stop(cid, signal.SIGTERM, 5)
    assert env.rt.status(cid).state == State.EXITED


def test_remove_running_container_and_idempotent(env):
    cid, _ = env.create(env.config(["sleep", "100"]))
    env.rt.start(cid)
    bundle = env.rt.bundle_dir(cid)
    env.rt.remove(cid)
    assert not os.path.exists(bundle) and not os.path.exists(env.rt.monitor_dir(cid))
    assert env.rt.runc.state(cid) is None
    with pytest.raises(CriError):
        env.rt.status(cid)
    env.rt.remove(cid)  # again: success


def test_create_failure_leaves_no_state(env):
    cfg = env.config(["/no/such/binary"])
    with pytest.raises(CriError, match="no/such/binary"):
        env.create(cfg)
    assert env.rt.list_ids() == []
    assert env.rt.runc.list() == []


def test_update_resources_and_stats(env):
    from cri_api.v1 import api_pb2
    cid, _ = env.create(env.config(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 100"]))
    env.rt.start(cid)
    _wait_for(lambda: env.rt.stats(cid).cpu_usage_ns > 0)
    s = env.rt.stats(cid)
    assert s.memory_usage_bytes > 0 and s.memory_working_set_bytes <= s.memory_usage_bytes
    env.rt.update_resources(cid, api_pb2.LinuxContainerResources(
        memory_limit_in_bytes=64 << 20, cpu_shares=512))
    from cri.oci import cgroups
    path = env.rt.spec(cid)["linux"]["cgroupsPath"]

    def read(controller: str, name: str) -> str:
        with open(os.path.join(cgroups.controller_dir(controller, path), name)) as f:
            return f.read().strip()
    if cgroups.is_v2():
        assert int(read("memory", "memory.max")) == 64 << 20
        # runc maps shares to a weight: linearly up to 1.2 (512 -> 20), by a log-quadratic
        # curve since (512 -> 59); either way no longer the default 100.
        assert int(read("cpu", "cpu.weight")) in (20, 59)
    else:
        assert int(read("memory", "memory.limit_in_bytes")) == 64 << 20
        assert int(read("cpu", "cpu.shares")) == 512
    assert env.rt.spec(cid)["linux"]["resources"]["memory"]["limit"] == 64 << 20


def test_oom_killed(env):
    from cri_api.v1 import api_pb2
    res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=16 << 20,
                                          memory_swap_limit_in_bytes=16 << 20)
    linux = api_pb2.LinuxContainerConfig(resources=res)
    linux.security_context.namespace_options.network = api_pb2.NamespaceMode.Value("NODE")
    cid, _ = env.run(["sh", "-c", "head -c 200m /dev/zero | tail"], linux=linux)
    st = env.rt.status(cid)
    # The shell pipeline's tail is killed; sh reports 137 for its last command.
    assert (st.exit_code, st.reason) == (137, "OOMKilled")


def test_recover_sees_containers_and_runc_orphans(env):
    done, _ = env.run(["true"])
    running, _ = env.create(env.config(["sleep", "100"]))
    env.rt.start(running)
    states = {s.id: s for s in env.rt.recover()}
    assert states[done].state == State.EXITED and states[running].state == State.RUNNING


def _wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except (OSError, AttributeError):
            pass
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_exit_watcher_reports_each_exit_once(env):
    from cri.oci.watch import ExitWatcher
    seen = []
    watcher = ExitWatcher(env.rt, seen.append, interval=0.02).start()
    try:
        cid, _ = env.create(env.config(["sh", "-c", "sleep 0.2; exit 4"]))
        env.rt.start(cid)
        watcher.watch(cid)
        _wait_for(lambda: seen)
        time.sleep(0.1)
        assert [(s.id, s.exit_code) for s in seen] == [(cid, 4)]
    finally:
        watcher.close()


def test_missing_log_directory_fails_create_cleanly(env):
    from cri.oci.spec import build_spec
    cid = "nolog" + os.urandom(4).hex()
    rootfs = env.rt.prepare_rootfs(cid, [env.layer])
    spec = build_spec(cid, env.config(["true"]), env.pod(), {}, rootfs)
    with pytest.raises(CriError, match="No such file"):
        env.rt.create(cid, spec, os.path.join(env.base, "missing-dir", "0.log"))
    assert env.rt.lookup(cid) is None and env.rt.runc.state(cid) is None
    env.rt.remove(cid)
    assert not os.path.exists(env.rt.bundle_dir(cid))

