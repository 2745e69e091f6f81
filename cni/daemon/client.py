"""The ``podwire`` and ``podwire-ipam`` executables: ask podwire-cnid, else run in process.

This is the start-up path of every CNI invocation, so it uses only what the
interpreter has built in (``sys``, ``posix``, ``_socket``): no ``os``, ``json``,
``socket``, ``re``, ``enum`` or ``dataclasses`` -- ``python -X importtime``
shows 1-9 ms for each, paid per pod.  The wrapper runs us as ``python -I -S``.

When the daemon answers, its stdout, stderr and exit code become ours.  When it
does not (no socket, nobody listening, access denied, it declines), the same
verbs run in process (:func:`run_in_process`), exactly as before the daemon.

client.c is this module in C: what ``make install`` puts in the CNI bin dir when a
C compiler is there (cni.install), since even a bare interpreter start costs ~7 ms
of CPU per call.  It comes here, through :func:`in_process_main`, only to run in
process.  A change to the protocol or the fall-backs here is a change there too
(tests/unit/test_native_client.py holds the two side by side).
"""
import posix
import sys

import _socket

from . import wire

from .wire import DEFAULT_SOCKET, SOCKET_ENV, TIMEOUT_ENV

# The executables this client starts, by name: the module whose VERBS each runs, imported
# only when it must run in process.  (podwire-cnid's own registry is cni/daemon/registry.py.)
PLUGINS = {"podwire": "cni.plugin.main", "podwire-ipam": "cni.ipam.main"}

_LOST = object()  # the daemon took the request and went away without answering


def main(plugin: str) -> int:
    stdin = sys.stdin.buffer.read() if sys.stdin is not None else b""
    env = posix.environ
    path = env.get(SOCKET_ENV, DEFAULT_SOCKET.encode())
    # A relative CNI_NETNS means "relative to the caller's cwd", which the daemon does not share.
    netns = env.get(b"CNI_NETNS", b"")
    if path and (not netns or netns[:1] == b"/"):
        answer = _ask(path, plugin, env, stdin)
        if answer is _LOST:
            return run_in_process(plugin, stdin, lost=env.get(b"CNI_COMMAND") == b"ADD")
        if answer is not None:
            # Answered: stdout and stderr went out through posix.write (no buffers) and the
            # daemon has its ack, so nothing is left for the interpreter's finalization to do
            # -- which costs ~0.9 ms of a ~7 ms start-up, per CNI call.
            posix._exit(answer)
    return run_in_process(plugin, stdin)


def _ask(path: bytes, plugin: str, env, stdin: bytes):
    """The exit code, None to run in process, or _LOST."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
            timeout_ms = int(float(env.get(TIMEOUT_ENV, b"0")) * 1000)
            sock.sendall(wire.encode_request(plugin.encode(), wire.encode_env(env), stdin, timeout_ms))
        except (OSError, ValueError):
            return None  # no daemon, or it never got the whole request: nothing was done
        try:
            status, code, stdout, stderr = wire.recv_answer(sock)
        except (OSError, EOFError, ValueError):
            return _LOST
        if status != wire.ANSWERED:
            return None
        try:
            _write(1, stdout)
            _write(2, stderr)
        except OSError:
            return 1  # no ack: the daemon undoes an ADD nobody will hear about
        try:
            sock.sendall(wire.ACK)  # only now: the runtime has our answer
        except OSError:
            pass  # the daemon waits for acks of successful ADDs only
        return code
    finally:
        sock.close()


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[posix.write(fd, data):]


def in_process_main(plugin: str, lost: bool) -> int:
    """The native client's way in (client.c), when no daemon took the request: it has read
    stdin already and replays it on fd 0; ``lost``: the daemon took it and went away."""
    stdin = sys.stdin.buffer.read() if sys.stdin is not None else b""
    return run_in_process(plugin, stdin, lost)


def run_in_process(plugin: str, stdin: bytes, lost: bool = False) -> int:
    """The verbs in this process, as the executables ran before the daemon existed."""
    import io
    import os
    import site
    # What -S skipped, less than site.main(): site.venv() reads pyvenv.cfg and adds the
    # venv's site-packages (pyroute2) with its .pth files; the system's site-packages, when
    # the venv includes them, are only appended -- their .pth files cost ~10 ms and add
    # nothing the verbs need.
    site.venv(None)
    for path in site.getsitepackages():
        if path not in sys.path:
            sys.path.append(path)

    from .. import skel
    from ..errors import CniError, Code

    verbs = verbs_of(plugin)
    if lost:
        def add(args):
            raise CniError(Code.TRY_AGAIN_LATER, "podwire-cnid went away during ADD",
                           "the attachment may be partly made: DEL it, then retry")
        verbs = skel.Verbs(add, verbs.delete, verbs.check, verbs.status, verbs.gc, verbs.about)
    code = skel.dispatch(verbs, os.environ, io.BytesIO(stdin), sys.stdout)
    sys.stdout.flush()
    return code


def verbs_of(plugin: str):
    """The skel.Verbs an executable runs, by executable name."""
    return __import__(PLUGINS[plugin], fromlist=["VERBS"]).VERBS
