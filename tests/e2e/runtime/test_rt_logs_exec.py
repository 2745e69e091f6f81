"""Container logs in the CRI format, log reopening, ExecSync."""
from __future__ import annotations

import os
import re
import time

import pytest
from cri_api.v1 import api_pb2

from cri.errors import CriError

from rtfixtures import busybox_rootfs, env, needs_runc, read_log, sc  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, needs_runc]

# RFC 3339 with nanoseconds; conmon writes the local offset ("+00:00"), containerd "Z" in UTC.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) (stdout|stderr) (P|F) (.*)$")


def test_log_format_streams_and_long_lines(env):
    # 40000 bytes without newline, then a newline: P chunks (as the pipe delivered them), then F.
    cid, log = env.run(["sh", "-c", "echo out; echo err >&2; head -c 40000 /dev/zero | tr '\\0' x;"
                        " echo; printf 'no newline'"])
    with open(log) as f:
        lines = [LINE.match(line.rstrip("\n")) for line in f]
    assert all(lines), "every line is <RFC3339Nano> <stream> <P|F> <msg>"
    got = [(m.group(2), m.group(3), m.group(4)) for m in lines]
    assert ("stdout", "F", "out") in got and ("stderr", "F", "err") in got
    stdout = [(tag, msg) for s, tag, msg in got if s == "stdout"]
    first = next(i for i, (_t, msg) in enumerate(stdout) if msg.startswith("x"))
    end = next(i for i in range(first, len(stdout)) if stdout[i][0] == "F")
    # Chunks as the pipe delivered them: all P, the line's end F (maybe with an empty message).
    assert end > first and all(tag == "P" for tag, _m in stdout[first:end])
    assert "".join(msg for _t, msg in stdout[first:end + 1]) == "x" * 40000
    assert got[-1] == ("stdout", "P", "no newline")  # unterminated at EOF: partial
    assert read_log(log, "stderr") == ["err\n"]


def test_tty_output_is_stdout(env):
    cid, log = env.run(["sh", "-c", "tty; echo to-stderr >&2"], tty=True)
    lines = read_log(log)
    assert lines[0].startswith("/dev/pts/") and "to-stderr\n" in lines
    assert read_log(log, "stderr") == []


def test_reopen_log_after_rename(env):
    cid, log = env.create(env.config(
        ["sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done"]))
    env.rt.start(cid)
    _wait(lambda: len(read_log(log)) >= 2)
    os.rename(log, log + ".1")
    env.rt.reopen_log(cid)
    _wait(lambda: os.path.exists(log) and len(read_log(log)) >= 2)
    old, new = read_log(log + ".1"), read_log(log)
    n_old, n_new = int(old[-1][4:]), int(new[0][4:])
    assert n_new == n_old + 1, "no line lost or duplicated across the reopen"
    env.rt.stop(cid, 9, 0)
    with pytest.raises(CriError) as e:
        env.rt.reopen_log(cid)
    assert e.value.code.name == "FAILED_PRECONDITION"


def test_logs_written_until_exit_are_complete(env):
    cid, log = env.run(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo l$i; i=$((i+1)); done"])
    assert read_log(log) == [f"l{i}\n" for i in range(2000)]


def test_exec_sync_output_exit_code_and_timeout(env):
    cid, _ = env.create(env.config(["sleep", "100"]))
    env.rt.start(cid)
    r = env.rt.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    started = time.monotonic()
    with pytest.raises(CriError) as e:
        env.rt.exec_sync(cid, ["sleep", "30"], timeout_s=1)
    assert e.value.code.name == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 5
    assert "sleep 30" not in _ps(env, cid), "the timed-out process was killed"
    with pytest.raises(CriError, match="not found|no such file"):
        env.rt.exec_sync(cid, ["/no/such/cmd"])


def test_exec_sync_does_not_hang_on_background_child(env):
    cid, _ = env.create(env.config(["sleep", "100"]))
    env.rt.start(cid)
    started = time.monotonic()
    r = env.rt.exec_sync(cid, ["sh", "-c", "sleep 60 & echo started"], timeout_s=30)
    assert time.monotonic() - started < 5
    assert (r.stdout, r.exit_code) == (b"started\n", 0)


def test_exec_sync_needs_running_container(env):
    cid, _ = env.run(["true"])
    with pytest.raises(CriError) as e:
        env.rt.exec_sync(cid, ["true"])
    assert e.value.code.name == "FAILED_PRECONDITION"


def _ps(env, cid) -> str:
    return env.rt.exec_sync(cid, ["ps", "-o", "args"]).stdout.decode()


def _wait(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_without_log_path_output_is_dropped_and_exit_recorded(env):
    """The CRI: no log_path means the output is discarded -- the container must still run
    (conmon reads its pipes so it never blocks on a full one) and its exit be recorded."""
    cid, log = env.create(env.config(["sh", "-c", "head -c 200000 /dev/zero; exit 7"]), log=False)
    assert log == ""
    env.rt.start(cid)
    st = env.rt.wait_exit(cid, 20)
    assert st is not None and (st.exit_code, st.reason) == (7, "Error")
    state_files = os.listdir(env.rt.monitor_dir(cid))
    assert not [f for f in state_files if f.startswith("none")], state_files


def test_exec_sync_runs_as_the_container_and_leaves_its_log_alone(env):
    """The exec gets the container's user, groups, env and cwd (its process spec), and its own
    conmon never touches the container's: the log still reopens afterwards."""
    cid, log = env.create(env.config(
        ["sh", "-c", "while true; do echo tick; sleep 0.05; done"], working_dir="/tmp",
        envs=[api_pb2.KeyValue(key="GREETING", value="hello")],
        linux=sc(run_as_user=api_pb2.Int64Value(value=1000))))
    env.rt.start(cid)
    r = env.rt.exec_sync(cid, ["sh", "-c", "echo $(id -u) $GREETING $(pwd)"], timeout_s=10)
    assert (r.stdout, r.exit_code) == (b"1000 hello /tmp\n", 0)
    os.rename(log, log + ".1")
    env.rt.reopen_log(cid)
    _wait(lambda: os.path.exists(log) and len(read_log(log)) >= 1)
