"""`runc create` with the container's stdio on pipes (or a pty) that the monitor keeps.

runc is started with os.posix_spawn, not subprocess (which costs every monitor ~1 MB); every fd
the monitor holds is close-on-exec, so runc and the container inherit only fds 0-2."""
from __future__ import annotations

import json
import os
import socket

from cri.monitor import files

CONSOLE_SOCKET = "console.sock"


class CreateFailed(Exception):
    """runc create failed; the message is runc's own."""


class Stdio:
    """The monitor's ends: streams to read ({"stdout": fd, ...}) and the stdin writer it holds
    open (-1 without stdin) so an attach can feed the container later."""

    def __init__(self, streams: dict, stdin_writer: int = -1) -> None:
        self.streams = streams
        self.stdin_writer = stdin_writer


class CreateArgs:
    def __init__(self, container_id: str, bundle: str, runc: str, runc_root: str, tty: bool,
                 stdin: bool) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.runc = runc
        self.runc_root = runc_root
        self.tty = tty
        self.stdin = stdin


def runc_create(args: CreateArgs) -> tuple:
    """Create the container (cwd = the state dir); (init pid, Stdio)."""
    argv = [args.runc, "--root", args.runc_root, "--log", files.RUNC_LOG, "--log-format", "json",
            "create", "--bundle", args.bundle, "--pid-file", files.INIT_PID]
    stdio = _create_tty(argv, args) if args.tty else _create_pipes(argv, args)
    with open(files.INIT_PID) as f:
        return int(f.read().strip()), stdio


def spawn(argv: list, stdin: int, stdout: int, stderr: int) -> int:
    """Start argv with the given fds as 0-2; its pid."""
    actions = [(os.POSIX_SPAWN_DUP2, fd, target)
               for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2))]
    return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)


def wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _create_pipes(argv: list, args: CreateArgs) -> Stdio:
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_r, in_w = os.pipe2(os.O_CLOEXEC) if args.stdin else (os.open(os.devnull, os.O_RDONLY), -1)
    try:
        # runc create passes its own fds 0-2 through to the container (pass-through mode).
        pid = spawn(argv + [args.container_id], in_r, out_w, err_w)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    if wait(pid) != 0:
        # The container is gone, so every writer is closed: the pipe holds runc's error.
        message = _read_all(err_r)
        for fd in (out_r, err_r, in_w):
            _close(fd)
        raise CreateFailed(_runc_error(message))
    return Stdio({"stdout": out_r, "stderr": err_r}, in_w)


def _create_tty(argv: list, args: CreateArgs) -> Stdio:
    """runc sends the pty master over --console-socket; with a tty everything is stdout."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as listener:
        _unlink(CONSOLE_SOCKET)
        listener.bind(CONSOLE_SOCKET)
        listener.listen(1)
        listener.settimeout(0.1)
        try:
            pid = spawn(argv + ["--console-socket", _console_path(args.bundle), args.container_id],
                        null, err_w, err_w)
        finally:
            os.close(err_w)
            os.close(null)
        master, rc = _receive_master(listener, pid)
    _unlink(CONSOLE_SOCKET)
    message = _read_all(err_r) if rc != 0 else b""
    os.close(err_r)
    if rc != 0 or master < 0:
        _close(master)
        raise CreateFailed(_runc_error(message) or "runc sent no console")
    return Stdio({"stdout": master}, os.dup(master) if args.stdin else -1)


def _console_path(bundle: str) -> str:
    """runc chdir()s into the bundle before dialing, and unix socket paths are limited to 108
    bytes: pass the shorter of the absolute path and the one relative to the bundle."""
    absolute = os.path.abspath(CONSOLE_SOCKET)
    relative = os.path.relpath(absolute, bundle)
    return min(absolute, relative, key=len)


def _receive_master(listener: socket.socket, pid: int) -> tuple:
    """(pty master fd or -1, runc's exit code): accept runc's connection while it runs."""
    master = -1
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return master, os.waitstatus_to_exitcode(status)
        if master >= 0:
            return master, wait(pid)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
            master = fds[0] if fds else -1


def _runc_error(stderr: bytes) -> str:
    """runc's message: its json --log's error entries, else what it printed."""
    errors = []
    try:
        with open(files.RUNC_LOG) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    errors.append(entry.get("msg", ""))
    except OSError:
        pass
    return "; ".join(errors) or stderr.decode(errors="replace").strip()


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
