"""Container state derived from the state dir (created.json, conmon's exit/oom files, /proc),
and the command line conmon is started with."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from cri.monitor import conmon, files
from cri.oci.state import State, read_state

GONE = {"pid": 2 ** 22 + 1, "start_time": 1}  # above pid_max: never alive


@pytest.fixture
def fake_conmon(tmp_path):
    """A live process whose command line names container "x" the way conmon's does."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--cid", "x"])
    # Popen returns once exec began; the kernel fills in the new command line a moment later.
    deadline = time.monotonic() + 10
    while b"--cid" not in _cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / files.CONMON_PID).write_text(str(proc.pid))
    yield proc
    proc.kill()
    proc.wait()


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def test_state_from_files(tmp_path, fake_conmon):
    d = str(tmp_path)
    assert read_state("x", str(tmp_path / "missing")) is None
    assert read_state("x", d).state == State.CREATED               # conmon runs `runc create`
    me = files.ProcRef.of(os.getpid())
    files.write_json(os.path.join(d, files.CREATED), {**me.to_json(), "created_at": 1})
    assert read_state("x", d).state == State.CREATED               # init alive, not started
    files.write_json(os.path.join(d, files.STARTED), {"started_at": 2})
    assert read_state("x", d).state == State.RUNNING
    exit_path = os.path.join(d, files.EXIT)
    with open(exit_path, "w") as f:
        f.write("1")
    os.utime(exit_path, ns=(3, 3))
    st = read_state("x", d)
    assert (st.state, st.exit_code, st.reason, st.created_at, st.started_at, st.finished_at) == \
        (State.EXITED, 1, "Error", 1, 2, 3)
    (tmp_path / files.OOM).touch()
    assert read_state("x", d).reason == "OOMKilled"


def test_exit_zero_is_completed_and_signals_are_128_plus(tmp_path):
    d = str(tmp_path)
    files.write_json(os.path.join(d, files.CREATED), {**GONE, "created_at": 1})
    (tmp_path / files.EXIT).write_text("0")
    assert read_state("x", d).reason == "Completed"
    (tmp_path / files.EXIT).write_text("137")
    assert (read_state("x", d).exit_code, read_state("x", d).reason) == (137, "Error")


def test_conmon_of_another_container_or_dead_pid_is_not_alive(tmp_path, fake_conmon):
    d = str(tmp_path)
    assert conmon.alive(d, "x") and not conmon.alive(d, "y")
    (tmp_path / files.CONMON_PID).write_text(str(GONE["pid"]))
    assert not conmon.alive(d, "x")


def test_state_when_conmon_and_init_are_gone(tmp_path):
    d = str(tmp_path)
    assert read_state("x", d).state == State.UNKNOWN               # create failed
    files.write_json(os.path.join(d, files.CREATED), {**GONE, "created_at": 1})
    st = read_state("x", d)
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 255, "Unknown")


def test_created_from_runc_pid_file_when_shim_died_before_recording(tmp_path):
    """A shim killed between conmon's report and created.json: runc's pid file says it all."""
    d = str(tmp_path)
    (tmp_path / files.INIT_PID).write_text(str(os.getpid()))
    st = read_state("x", d)
    assert (st.state, st.pid) == (State.CREATED, os.getpid()) and st.created_at > 0
    (tmp_path / files.EXIT).write_text("0")
    assert read_state("x", d).state == State.EXITED


def test_conmon_argv():
    args = conmon.ConmonArgs("c1", "/b/c1", "/s/c1", "/s/.attach", "/usr/bin/conmon",
                             "/usr/sbin/runc", "/run/r", "/logs/0.log")
    argv = args.argv()
    opt = lambda name: argv[argv.index(name) + 1]   # noqa: E731
    assert argv[0] == "/usr/bin/conmon" and opt("--api-version") == "1"
    assert opt("--cid") == "c1" and opt("--bundle") == "/b/c1" and opt("--runtime") == "/usr/sbin/runc"
    assert opt("--log-path") == "k8s-file:/logs/0.log"
    assert opt("--persist-dir") == "/s/c1" and opt("--exit-dir") == "/s/c1"
    assert opt("--container-pidfile") == "/s/c1/init.pid"
    runtime_args = [argv[i + 1] for i, a in enumerate(argv) if a == "--runtime-arg"]
    assert "--root=/run/r" in runtime_args and "--log-format=json" in runtime_args
    assert "--terminal" not in argv and "--stdin" not in argv
    quiet = conmon.ConmonArgs("c1", "/b", "/s", "/a", "conmon", "runc", "/r", "", tty=True, stdin=True)
    assert quiet.argv()[quiet.argv().index("--log-path") + 1] == "none:"
    assert "--terminal" in quiet.argv() and "--stdin" in quiet.argv()
    assert "--leave-stdin-open" not in quiet.argv()      # stdin_once: the first attach closes it
    kept = conmon.ConmonArgs("c1", "/b", "/s", "/a", "conmon", "runc", "/r", "", stdin=True, leave_stdin_open=True)
    assert "--stdin" in kept.argv() and "--leave-stdin-open" in kept.argv()


def test_missing_conmon_is_a_clear_internal_error(tmp_path):
    from cri.errors import CriError
    with pytest.raises(CriError) as e:
        conmon.run_first_stage(["/nonexistent/conmon", "--version"], str(tmp_path),
                               str(tmp_path / "conmon.log"), time.monotonic() + 5)
    assert e.value.code.name == "INTERNAL" and "/nonexistent/conmon" in e.value.message


def test_finished_never_before_started(tmp_path):
    """conmon's exit file time is coarse (a kernel tick): a short-lived container's finish is
    never reported before its start."""
    d = str(tmp_path)
    files.write_json(os.path.join(d, files.CREATED), {**GONE, "created_at": 10})
    files.write_json(os.path.join(d, files.STARTED), {"started_at": 2_000})
    (tmp_path / files.EXIT).write_text("0")
    os.utime(tmp_path / files.EXIT, ns=(1_000, 1_000))
    assert read_state("x", d).finished_at == 2_000
