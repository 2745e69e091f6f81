"""Exec, Attach and PortForward over SPDY, end to end: podwire-ctl (the client in
cri/ctl/stream/) against a real podwire-cri, real runc and conmon, real pods."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root

CTL = os.path.join(os.path.dirname(sys.executable), "podwire-ctl")
def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = _ipv6_loopback()              # the client listens on [::1] too where it can


def _httpd(port: int, address: str = "") -> list[str]:
    """busybox httpd answering "hello-<port>" on [address:]port."""
    listen = f"{address}:{port}" if address else str(port)
    return ["sh", "-c", f"mkdir -p /www && echo hello-{port} > /www/index.html && "
                        f"exec httpd -f -p {listen} -h /www"]


def _argv(shim, *argv) -> list[str]:
    return [CTL, "-r", shim.cfg.socket_path, *argv]


def ctl(shim, *argv, input: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(shim, *argv), input=input, capture_output=True, timeout=timeout)


@contextlib.contextmanager
def running(argv, **kw):
    """A podwire-ctl process that is killed on the way out, whatever happened."""
    proc = subprocess.Popen(argv, **kw)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()


def _pod(shim, tmp_path, host_network: bool = False) -> tuple[str, api.PodSandboxConfig]:
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    os.makedirs(cfg.log_directory, exist_ok=True)
    if host_network:
        cfg.linux.security_context.namespace_options.network = api.NODE
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    _require_streaming(shim)            # after the pod: the CNI daemon fixture wants a request
    return pod_id, cfg


def _require_streaming(shim) -> None:
    try:
        shim.rt.Exec(api.ExecRequest(container_id="none", cmd=["true"], stdout=True), timeout=10)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("this podwire-cri has no streaming Exec")


@pytest.fixture
def box(shim, tmp_path, test_images):
    """A running busybox container: (shim, pod, container id)."""
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = _pod(shim, tmp_path)
    return shim, pod, h.start_container(shim, pod, test_images.busybox, ["sleep", "3600"])


def test_exec_stdout_is_exact(box):
    shim, _, cid = box
    res = ctl(shim, "exec", cid, "echo", "-n", "hello")
    assert (res.returncode, res.stdout, res.stderr) == (0, b"hello", b"")


def test_exec_exit_code_and_separate_stderr(box):
    shim, _, cid = box
    res = ctl(shim, "exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (res.returncode, res.stdout, res.stderr) == (7, b"out\n", b"err\n")


def test_exec_stdin_round_trips_10_mib(box):
    shim, _, cid = box
    data = os.urandom(10 << 20)
    res = ctl(shim, "exec", "-i", cid, "cat", input=data, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout) == len(data) and res.stdout == data


def _winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _pty_session(argv, steps, timeout: float = 30) -> tuple[int, bytes, list, list]:
    """argv with a fresh pty (80x24) as its terminal; each step (after 0.3 s) is bytes to
    type or a function of (terminal, process).  (exit code, what it printed, the terminal's
    modes before and after)."""
    master, slave = os.openpty()
    _winsize(slave, 24, 80)
    before = termios.tcgetattr(slave)
    out = b""
    try:
        with running(argv, stdin=slave, stdout=slave, stderr=slave) as proc:
            deadline = time.monotonic() + timeout
            for step in steps:
                time.sleep(0.3)
                if isinstance(step, bytes):
                    os.write(master, step)
                else:
                    step(slave, proc)
            while proc.poll() is None and time.monotonic() < deadline:
                if select.select([master], [], [], 0.1)[0]:
                    out += os.read(master, 65536)
            while select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
            code = proc.wait(5)
        return code, out, before, termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_exec_tty_with_stdin(box):
    shim, _, cid = box
    code, out, before, after = _pty_session(_argv(shim, "exec", "-it", cid, "sh"),
                                            [b"echo $((6*7))\r", b"exit 3\r"])
    assert b"42" in out
    assert code == 3
    assert after == before                          # raw mode undone


def test_exec_tty_follows_the_terminal_size(box):
    shim, _, cid = box

    def grow(terminal, proc):
        _winsize(terminal, 33, 111)
        proc.send_signal(signal.SIGWINCH)
    code, out, _, _ = _pty_session(
        _argv(shim, "exec", "-it", cid, "sh", "-c", "sleep 1; stty size; sleep 2; stty size"),
        [lambda t, p: time.sleep(1.5), grow])
    assert code == 0, out
    assert re.findall(rb"\d+ \d+", out) == [b"24 80", b"33 111"]


def test_twenty_concurrent_exec_sessions(box):
    shim, _, cid = box
    procs = [subprocess.Popen(_argv(shim, "exec", cid, "sh", "-c", f"sleep 0.5; echo {i}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(20)]
    try:
        results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [(out, rc) for out, _, rc in results] == [(f"{i}\n".encode(), 0) for i in range(20)], \
        [err for _, err, _ in results]


def _attachable(shim, tmp_path, test_images, pod=None) -> tuple[tuple, str]:
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = pod or _pod(shim, tmp_path)
    return pod, h.start_container(shim, pod, test_images.busybox, ["cat"], stdin=True, stdin_once=True)


def _attach_echo(shim, cid) -> None:
    """Attach with stdin, see a line echoed, close stdin: the session (and cat) end."""
    with running(_argv(shim, "attach", "-i", cid), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE) as proc:
        time.sleep(0.5)                         # conmon relays only what comes after the attach
        proc.stdin.write(b"hello attach\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"hello attach\n"
        proc.stdin.close()
        assert proc.wait(30) == 0, proc.stderr.read()


def test_attach_to_a_container_echoing_its_stdin(shim, tmp_path, test_images):
    _, cid = _attachable(shim, tmp_path, test_images)
    _attach_echo(shim, cid)


def test_attach_after_a_shim_restart(shim_factory, tmp_path, test_images):
    first = shim_factory(process=True)
    _, cid = _attachable(first, tmp_path, test_images)
    first.proc.kill()
    first.proc.wait(10)
    second = shim_factory(process=True)
    _attach_echo(second, cid)


def _forwarding(shim, *argv):
    """port-forward running; (process, {host: local port}) once it listens."""
    return running(_argv(shim, "port-forward", *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _listening(proc, n: int) -> dict[tuple[str, int], int]:
    """The first n "Forwarding from" lines: (local host, remote port) -> local port."""
    ports = {}
    while len(ports) < n:
        line = proc.stdout.readline().decode()
        assert line, proc.stderr.read()
        m = re.match(r"Forwarding from (\S+):(\d+) -> (\d+)", line)
        if m:
            ports[m.group(1), int(m.group(3))] = int(m.group(2))
    return ports


def _get(host: str, port: int) -> bytes:
    return urllib.request.urlopen(f"http://{host}:{port}/", timeout=10).read()


def test_port_forward_to_a_pod_over_ipv4_and_ipv6(shim, tmp_path, test_images):
    """Locally on 127.0.0.1 and [::1]; in the pod to a server on 127.0.0.1 only and to one on
    [::1] only (the shim dials localhost, as containerd does, trying both)."""
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = _pod(shim, tmp_path)
    h.start_container(shim, pod, test_images.busybox, _httpd(8080, "127.0.0.1"))
    h.start_container(shim, pod, test_images.busybox, _httpd(8081, "[::1]"))
    with _forwarding(shim, pod[0], ":8080", ":8081") as proc:
        ports = _listening(proc, 2 + 2 * IPV6)
        for remote in (8080, 8081):
            local = ports[("127.0.0.1", remote)]
            want = f"hello-{remote}\n".encode()
            assert h.wait_for(lambda: _try_get("127.0.0.1", local) == want, 20), remote
            if IPV6:
                assert _get("[::1]", ports[("[::1]", remote)]) == want
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def _try_get(host, port):
    try:
        return _get(host, port)
    except OSError:
        return None


def test_port_forward_two_connections_at_once(shim, tmp_path, test_images):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = _pod(shim, tmp_path)
    # nc -ll -e: a persistent echo server, one cat per connection
    h.start_container(shim, pod, test_images.busybox, ["nc", "-ll", "-p", "7000", "-e", "cat"])
    with _forwarding(shim, pod[0], ":7000") as proc:
        port = _listening(proc, 1 + IPV6)["127.0.0.1", 7000]
        time.sleep(0.5)
        a = socket.create_connection(("127.0.0.1", port), timeout=10)
        b = socket.create_connection(("127.0.0.1", port), timeout=10)
        with a, b:
            b.sendall(b"to-b\n")
            a.sendall(b"to-a\n")
            assert h.recv_line(a) == b"to-a\n" and h.recv_line(b) == b"to-b\n"


def test_port_forward_into_a_host_network_pod(shim, tmp_path, test_images):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    with socket.socket() as s:                      # a port free on the host
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pod = _pod(shim, tmp_path, host_network=True)
    h.start_container(shim, pod, test_images.busybox, _httpd(port))
    with _forwarding(shim, pod[0], f":{port}") as proc:
        local = _listening(proc, 1 + IPV6)["127.0.0.1", port]
        assert h.wait_for(lambda: _try_get("127.0.0.1", local) == f"hello-{port}\n".encode(), 20)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_client_that_disconnects_leaves_nothing_behind(shim_factory, tmp_path, test_images):
    shim = shim_factory(process=True)
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    pod = _pod(shim, tmp_path)
    cid = h.start_container(shim, pod, test_images.busybox, ["sleep", "3600"])
    ctl(shim, "exec", cid, "true")                  # the streaming server's own start-up costs
    pid = shim.proc.pid
    fds, procs = _fds(pid), _descendants(pid)
    for argv in (["exec", "-i", cid, "sh", "-c", "echo ready; exec cat"],
                 ["attach", "-i", h.start_container(shim, pod, test_images.busybox, ["cat"], stdin=True)]):
        with running(_argv(shim, *argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
            if argv[0] == "exec":
                assert proc.stdout.readline() == b"ready\n"
            else:
                time.sleep(1)
            proc.kill()
    settled = lambda: _fds(pid) <= fds and _descendants(pid) <= procs  # noqa: E731
    assert h.wait_for(settled, 20), (fds, _fds(pid), procs, _descendants(pid), os.listdir(f"/proc/{pid}/fd"))
    ps = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["ps", "-o", "args"], timeout=10))
    assert b"cat" not in ps.stdout                  # the exec'd process went with its session


def test_tokens_are_single_use(box):
    """A used token and one never issued both get 404.  (Expiry is not tested here: the
    token TTL is the streaming server's, a minute as the kubelet's cache.)"""
    from cri.ctl.stream.upgrade import REMOTECOMMAND, UpgradeError, upgrade
    shim, _, cid = box
    url = shim.rt.Exec(api.ExecRequest(container_id=cid, cmd=["true"], stdout=True), timeout=10).url

    async def use(url: str) -> int:
        try:
            up = await upgrade(url, REMOTECOMMAND)
        except UpgradeError as err:
            return err.status
        up.writer.close()
        return 101
    assert asyncio.run(use(url)) == 101
    assert asyncio.run(use(url)) == 404
    assert asyncio.run(use(url.rsplit("/", 1)[0] + "/never-issued")) == 404
