"""Start and stop without runc start-ups.  StartContainer opens runc's exec.fifo as `runc start`
does.  StopContainer's SIGKILL: a container with a PID namespace of its own
is killed through a pidfd on its init (the kernel takes every other process of the namespace
with it); one that shares a PID namespace (the node's here) still goes through `runc kill --all`."""
from __future__ import annotations

import os
import signal
import time

import pytest
from cri_api.v1 import api_pb2

from cri.errors import CriError
from cri.oci.state import State
from rtfixtures import busybox_rootfs, env, needs_runc, read_log  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, needs_runc]
FAMILY = ["sh", "-c", "sleep 1000 & sleep 1000 & echo $(pgrep -P $$ | wc -l) ready; wait"]


def _started(env, **kw) -> tuple[str, int]:
    cid, log = env.create(env.config(FAMILY, **kw))
    env.rt.start(cid)
    deadline = time.monotonic() + 10
    while not any("ready" in line for line in read_log(log)):
        assert time.monotonic() < deadline, read_log(log)
        time.sleep(0.02)
    return cid, env.rt.status(cid).pid


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _gone(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"
                   for p in pids):
            return True
        time.sleep(0.02)
    return False


def test_own_pid_namespace_is_killed_without_runc(env, monkeypatch):
    cid, init = _started(env)
    family = [init, *_descendants(init)]
    assert len(family) >= 3
    calls = []
    monkeypatch.setattr(env.rt.runc, "kill", lambda *a, **k: calls.append(a) or True)
    env.rt.stop(cid, signal.SIGTERM, 0)
    st = env.rt.status(cid)
    assert (st.state, st.exit_code) == (State.EXITED, 137)
    assert calls == []                   # no runc start-up on the way
    assert _gone(family), "a process of the container outlived the stop"
    env.rt.stop(cid, signal.SIGTERM, 0)  # idempotent: init gone, nothing to signal


def test_shared_pid_namespace_still_uses_runc(env):
    linux = api_pb2.LinuxContainerConfig()
    linux.security_context.namespace_options.network = api_pb2.NODE
    linux.security_context.namespace_options.pid = api_pb2.NODE
    cid, init = _started(env, linux=linux)
    assert env.rt._kill_pid_namespace(cid) is False
    family = [init, *_descendants(init)]
    env.rt.stop(cid, signal.SIGTERM, 0)
    assert env.rt.status(cid).state == State.EXITED
    assert _gone(family), "runc kill --all left a process of the container"


def test_start_releases_the_init_without_runc(env, monkeypatch):
    """StartContainer opens runc's exec.fifo itself (what `runc start` does); runc agrees the
    container runs, and the fifo is gone."""
    cid, log = env.create(env.config(["sh", "-c", "echo started; sleep 1000"]))
    fifo = os.path.join(env.rt.runc.root, cid, "exec.fifo")
    assert os.path.exists(fifo)
    real_run = env.rt.runc._run
    monkeypatch.setattr(env.rt.runc, "_run", lambda args, **kw: (
        pytest.fail("runc start was run") if args[0] == "start" else real_run(args, **kw)))
    env.rt.start(cid)
    assert not os.path.exists(fifo)
    assert env.rt.runc.state(cid)["status"] == "running"
    deadline = time.monotonic() + 10
    while read_log(log) != ["started\n"]:
        assert time.monotonic() < deadline, read_log(log)
        time.sleep(0.02)
    monkeypatch.undo()
    with pytest.raises(CriError):
        env.rt.runc.start(cid)        # no fifo any more: runc itself says it is not created


def test_start_of_a_dead_init_fails(env):
    cid, _ = env.create(env.config(["sleep", "1000"]))
    init = env.rt.status(cid).pid
    os.kill(init, signal.SIGKILL)
    with pytest.raises(CriError, match="dead|not|stopped"):
        env.rt.runc.start(cid, init, timeout=5)


def test_runc_delete_runs_after_stop_and_remove_joins_it(env, monkeypatch):
    """stop() starts `runc delete` once the exit is recorded; remove() waits for it instead of
    running its own; the exit code is still read from the monitor's files."""
    cid, _ = _started(env)
    env.rt.stop(cid, signal.SIGTERM, 0)
    deadline = time.monotonic() + 10
    while env.rt.runc.state(cid) is not None:     # runc forgets it without a Remove
        assert time.monotonic() < deadline, "runc delete did not run after the stop"
        time.sleep(0.02)
    assert (env.rt.status(cid).state, env.rt.status(cid).exit_code) == (State.EXITED, 137)
    monkeypatch.setattr(env.rt.runc, "delete", lambda *a: pytest.fail("remove ran runc delete again"))
    env.rt.remove(cid)
    assert env.rt.lookup(cid) is None and not os.path.exists(env.rt.bundle_dir(cid))
    monkeypatch.undo()
    env.rt.remove(cid)                            # idempotent


def test_remove_without_a_stop_still_deletes(env):
    cid, _ = _started(env)
    env.rt.remove(cid)                            # running: runc delete --force kills it
    assert env.rt.runc.state(cid) is None and env.rt.lookup(cid) is None
