"""The streaming back ends (cri/streaming/exec.py, attach.py) against real containers, without
any transport: in-memory ByteSource/ByteSink doubles stand for the client.  Pods and containers
come from a real podwire-cri (the shim fixture), which removes them at teardown."""
from __future__ import annotations

import asyncio
import os
import re

import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root
from cri.monitor import files
from cri.streaming import StreamError, StreamIO
from cri.streaming.attach import run_attach
from cri.streaming.exec import run_exec
from cri.streaming.requests import AttachRequest, ExecRequest

pytestmark = needs_root

SESSION_TIMEOUT = 60.0


# -- client doubles --------------------------------------------------------------------------

class Source:
    """Client stdin: what the test sends, then b"" forever once eof() was called."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False

    def send(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def eof(self) -> None:
        self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self._queue.get()
        self._eof = not data
        return data


class Sink:
    """Client stdout/stderr: everything written, and whether it was closed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self._changed = asyncio.Event()

    async def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.data += data
        self._changed.set()

    async def close(self) -> None:
        self.closed = True

    async def wait_for(self, pattern: bytes, timeout: float = 10.0) -> re.Match:
        """The first match of pattern in what arrived so far, waiting for it."""
        async def matched() -> re.Match:
            while (m := re.search(pattern, self.data)) is None:
                self._changed.clear()
                await self._changed.wait()
            return m
        try:
            return await asyncio.wait_for(matched(), timeout)
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not seen; got {bytes(self.data)!r}") from None


def streams(stdin: bool = False, stdout: bool = True, stderr: bool = True, tty: bool = False,
            size: tuple[int, int] | None = None) -> StreamIO:
    io = StreamIO(stdin=Source() if stdin else None, stdout=Sink() if stdout else None,
                  stderr=Sink() if stderr and not tty else None, tty=tty)
    if size:
        io.resize.put_nowait(size)
    return io


# -- containers ------------------------------------------------------------------------------

@pytest.fixture
def pod(shim, tmp_path, test_images):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    os.makedirs(cfg.log_directory, exist_ok=True)
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id, cfg


@pytest.fixture
def box(shim, pod, test_images):
    """(shim, id of a running busybox container that sleeps)."""
    return shim, h.start_container(shim, pod, test_images.busybox, ["sleep", "3600"])


def exec_request(shim, cid: str, *cmd: str, tty: bool = False, stdin: bool = False) -> ExecRequest:
    """What the Exec RPC resolves, taken from the runtime directly."""
    rt = shim.svc.runtime
    return ExecRequest(container_id=cid, cmd=cmd, process=rt.spec(cid)["process"], runc=rt.runc.binary,
                       runc_root=rt.runc.root, scratch_dir=rt.monitor_dir(cid), tty=tty, stdin=stdin,
                       stdout=True, stderr=not tty)


def attach_request(shim, cid: str, tty: bool = False) -> AttachRequest:
    rt = shim.svc.runtime
    return AttachRequest(container_id=cid, attach_socket=os.path.join(rt.attach_dir, cid, "attach"),
                         ctl_fifo=os.path.join(rt.bundle_dir(cid), files.CONTROL_FIFO), tty=tty,
                         stdin=True, stdout=True, stderr=not tty)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, SESSION_TIMEOUT))


def exec_dirs(shim, cid: str) -> list[str]:
    return [n for n in os.listdir(shim.svc.runtime.monitor_dir(cid)) if n.startswith("exec-")]


def processes_matching(needle: bytes) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


async def eventually_matching(needle: bytes, timeout: float = 5.0) -> list[int]:
    """processes_matching, retried: sh execs its last command, and while the kernel loads the new
    image /proc/<pid>/cmdline reads empty (the new mm has no argument area yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := processes_matching(needle)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return found


def open_fds() -> dict[int, str]:
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass        # the listing's own fd
    return fds


# -- exec ------------------------------------------------------------------------------------

def test_exec_stdout_is_exact(box):
    shim, cid = box
    io = streams()
    assert run(run_exec(exec_request(shim, cid, "echo", "-n", "hello"), io)) == 0
    assert (bytes(io.stdout.data), bytes(io.stderr.data)) == (b"hello", b"")
    assert io.stdout.closed and io.stderr.closed
    assert exec_dirs(shim, cid) == []


def test_exec_stderr_apart_and_exit_code(box):
    shim, cid = box
    io = streams()
    code = run(run_exec(exec_request(shim, cid, "sh", "-c", "echo out; echo err >&2; exit 3"), io))
    assert (code, bytes(io.stdout.data), bytes(io.stderr.data)) == (3, b"out\n", b"err\n")


def test_exec_without_sinks_still_runs(box):
    shim, cid = box
    io = streams(stdout=False, stderr=False)
    assert run(run_exec(exec_request(shim, cid, "sh", "-c", "seq 100000; exit 4"), io)) == 4


def test_exec_tty_background_child_does_not_hold_the_session(box):
    """With a tty, runc stops copying when the process exits.  (Without one runc copies pipes
    until EOF, which a background child holding them delays: as with CRI-O, the session then
    ends with that child.)"""
    shim, cid = box
    io = streams(tty=True)

    async def timed():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        code = await run_exec(exec_request(shim, cid, "sh", "-c", "sleep 30 & echo bg", tty=True), io)
        return code, loop.time() - t0

    code, took = run(timed())
    assert (code, bytes(io.stdout.data)) == (0, b"bg\r\n") and took < 10


def test_exec_tty_with_stdin_ends_with_the_process(box):
    """critest's shape: stdin stays open, the process exits, the session ends."""
    shim, cid = box
    io = streams(stdin=True, tty=True, size=(80, 24))

    async def session():
        task = asyncio.create_task(run_exec(exec_request(shim, cid, "sh", tty=True, stdin=True), io))
        io.stdin.send(b"echo h''i; exit 7\n")      # the echo of the typed line is not the output
        await io.stdout.wait_for(rb"(^|\n)hi\r\n")
        return await task

    assert run(session()) == 7
    assert io.stdout.closed


def test_exec_tty_resize(box):
    shim, cid = box
    io = streams(stdin=True, tty=True, size=(100, 30))

    async def ask_size(expected: bytes) -> None:
        for _ in range(50):
            io.stdin.send(b"stty size\n")
            try:
                await io.stdout.wait_for(rb"\n" + expected + rb"\r\n", 0.2)
                return
            except AssertionError:
                pass
        raise AssertionError(f"{expected!r} never seen: {bytes(io.stdout.data)[-500:]!r}")

    async def session():
        task = asyncio.create_task(run_exec(exec_request(shim, cid, "sh", tty=True, stdin=True), io))
        await ask_size(b"30 100")               # the initial size, applied before runc started
        io.resize.put_nowait((120, 40))
        await ask_size(b"40 120")               # TIOCSWINSZ + SIGWINCH to runc
        io.stdin.send(b"exit 0\n")
        return await task

    assert run(session()) == 0


def test_exec_10_mib_stdin_through_cat(box):
    shim, cid = box
    data = os.urandom(10 << 20)
    io = streams(stdin=True)

    async def session():
        task = asyncio.create_task(run_exec(exec_request(shim, cid, "cat", stdin=True), io))
        for start in range(0, len(data), 100_000):
            io.stdin.send(data[start:start + 100_000])
        io.stdin.eof()
        return await task

    assert run(session()) == 0
    assert len(io.stdout.data) == len(data) and bytes(io.stdout.data) == data


def test_exec_cancelled_leaves_no_process_fd_or_dir(box):
    shim, cid = box
    marker = f"4242.{int.from_bytes(os.urandom(3), 'big'):08d}"   # sleep takes fractions: unique argv
    io = streams(stdin=True)

    async def session():
        before = open_fds()
        task = asyncio.create_task(run_exec(exec_request(shim, cid, "sh", "-c", f"echo started; sleep {marker}",
                                                         stdin=True), io))
        await io.stdout.wait_for(b"started\n")
        assert await eventually_matching(marker.encode()), "the exec'd process is not running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return before, open_fds()

    before, after = run(session())
    assert after == before
    assert processes_matching(marker.encode()) == []
    assert [p for p in processes_matching(cid.encode()) if _is_runc_exec(p, cid)] == []
    assert exec_dirs(shim, cid) == []


def _is_runc_exec(pid: int, cid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"exec" in argv and cid.encode() in argv and any(a.endswith(b"runc") for a in argv[:1])


def test_exec_runc_failure_is_a_stream_error(box):
    shim, cid = box
    io = streams()
    with pytest.raises(StreamError, match="no-such-command"):
        run(run_exec(exec_request(shim, cid, "no-such-command"), io))
    assert exec_dirs(shim, cid) == []


def test_exec_in_a_missing_container_is_a_stream_error(box):
    shim, cid = box
    req = exec_request(shim, cid, "true")
    with pytest.raises(StreamError):
        run(run_exec(ExecRequest(**{**req.__dict__, "container_id": "no-such-container"}), streams()))


# -- attach ----------------------------------------------------------------------------------

def test_attach_stdin_once(shim, pod, test_images):
    """critest's shape: sh with stdin and stdin_once; a command, its exact output, stdin closed
    -> conmon closes the container's stdin, sh exits, the session ends."""
    cid = h.start_container(shim, pod, test_images.busybox, ["sh"], stdin=True, stdin_once=True)
    io = streams(stdin=True)

    async def session():
        task = asyncio.create_task(run_attach(attach_request(shim, cid), io))
        await asyncio.sleep(0.5)            # connected; sh prints nothing without a tty
        io.stdin.send(b"echo -n hello\n")
        await io.stdout.wait_for(b"hello")
        await asyncio.sleep(0.5)
        assert bytes(io.stdout.data) == b"hello"
        io.stdin.eof()
        await task

    run(session())
    assert io.stdout.closed and io.stderr.closed and bytes(io.stderr.data) == b""
    # conmon closes the socket as the container exits; the exit record follows shortly.
    status = lambda: shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status  # noqa: E731
    assert h.wait_for(lambda: status().state == api.CONTAINER_EXITED, 10), status()
    assert status().exit_code == 0


def test_attach_stdin_stays_open_without_stdin_once(shim, pod, test_images):
    """--leave-stdin-open: one attach's EOF does not close the container's stdin; the next
    attach still reaches it."""
    cid = h.start_container(shim, pod, test_images.busybox, ["sh"], stdin=True)

    async def attach_once(line: bytes, expect: bytes) -> None:
        io = streams(stdin=True)
        task = asyncio.create_task(run_attach(attach_request(shim, cid), io))
        await asyncio.sleep(0.3)
        io.stdin.send(line)
        await io.stdout.wait_for(expect)
        io.stdin.eof()
        await asyncio.sleep(0.5)
        assert not task.done(), "the container's stdin was closed"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(attach_once(b"echo -n one\n", b"one"))
    run(attach_once(b"echo -n two; echo -n err >&2\n", b"two"))
    st = shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status
    assert st.state == api.CONTAINER_RUNNING


def test_attach_stderr_apart(shim, pod, test_images):
    cid = h.start_container(shim, pod, test_images.busybox, ["sh"], stdin=True, stdin_once=True)
    io = streams(stdin=True)

    async def session():
        task = asyncio.create_task(run_attach(attach_request(shim, cid), io))
        await asyncio.sleep(0.3)
        io.stdin.send(b"echo out; echo err >&2; exit 5\n")
        await task

    run(session())
    assert (bytes(io.stdout.data), bytes(io.stderr.data)) == (b"out\n", b"err\n")


def test_attach_tty_resize(shim, pod, test_images):
    cid = h.start_container(shim, pod, test_images.busybox, ["sh"], stdin=True, stdin_once=True, tty=True)
    io = streams(stdin=True, tty=True, size=(90, 33))

    async def session():
        task = asyncio.create_task(run_attach(attach_request(shim, cid, tty=True), io))
        for _ in range(50):
            io.stdin.send(b"stty size\n")
            try:
                await io.stdout.wait_for(rb"\n33 90\r\n", 0.2)
                break
            except AssertionError:
                pass
        else:
            raise AssertionError(f"resize not seen: {bytes(io.stdout.data)[-500:]!r}")
        io.stdin.send(b"exit 0\n")
        await task            # sh exits, conmon closes the socket

    run(session())
    assert io.stdout.closed


def test_attach_to_an_exited_container_is_a_stream_error(shim, pod, test_images):
    cid = h.start_container(shim, pod, test_images.busybox, ["true"])
    rt = shim.svc.runtime
    assert rt.wait_exit(cid, 10) is not None
    with pytest.raises(StreamError, match="not running"):
        run(run_attach(attach_request(shim, cid), streams(stdin=True)))


def test_attach_needs_only_conmon(shim_factory, tmp_path, test_images):
    """Attach while no podwire-cri runs at all (killed): conmon's socket is all it takes, so it
    works the same after a restart."""
    first = shim_factory(process=True)
    first.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod_cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    os.makedirs(pod_cfg.log_directory, exist_ok=True)
    pod_id = first.rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_cfg), timeout=120).pod_sandbox_id
    cid = h.start_container(first, (pod_id, pod_cfg), test_images.busybox, ["sh"], stdin=True, stdin_once=True)
    first.proc.kill()
    first.proc.wait()
    cfg = first.cfg
    bundle = os.path.join(cfg.state_dir, "bundles", cid)
    req = AttachRequest(container_id=cid, attach_socket=os.path.join(cfg.run_dir, "monitors", ".attach", cid, "attach"),
                        ctl_fifo=os.path.join(bundle, files.CONTROL_FIFO), tty=False, stdin=True, stdout=True,
                        stderr=True)
    io = streams(stdin=True)

    async def session():
        task = asyncio.create_task(run_attach(req, io))
        await asyncio.sleep(0.3)
        io.stdin.send(b"echo -n alone; exit 3\n")
        await task

    run(session())
    assert bytes(io.stdout.data) == b"alone"
    second = shim_factory(process=True)       # sees the exit; removes everything at teardown
    assert h.wait_for(lambda: second.rt.ContainerStatus(api.ContainerStatusRequest(
        container_id=cid)).status.exit_code == 3, 10)
