"""exec, attach, port-forward: the streaming RPCs, then a session on the URL they return
(stream/, imported on use: the other verbs need neither asyncio nor h11); ``exec -s`` and,
against a runtime without streaming, plain ``exec`` use ExecSync."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc
from cri_api.v1 import api_pb2 as api



def add_parsers(sub) -> None:
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("--sync", "-s", action="store_true", help="run the command synchronously (ExecSync)")
    p.add_argument("--timeout", type=int, default=0, help="seconds, with --sync; 0 means no limit")
    p.add_argument("--interactive", "-i", action="store_true", help="keep stdin open")
    p.add_argument("--tty", "-t", action="store_true", help="allocate a pseudo-TTY (needs -i)")
    p.add_argument("id")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command and its arguments")
    p.set_defaults(func=exec_)
    p = sub.add_parser("attach", help="attach to a running container")
    p.add_argument("--stdin", "-i", action="store_true", help="keep stdin open")
    p.add_argument("--tty", "-t", action="store_true", help="the container has a tty (as it was created)")
    p.add_argument("id")
    p.set_defaults(func=attach)
    p = sub.add_parser("port-forward", help="forward local ports to a pod")
    p.add_argument("pod_id")
    p.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE",
                   help="LOCAL omitted: the same port; empty (:REMOTE): any free port")
    p.set_defaults(func=port_forward)


def exec_(c, opts) -> int:
    if not opts.cmd:
        return _fail("exec", "no command given")
    if opts.sync:
        return exec_sync(c, opts)
    if problem := _tty_problem(opts.interactive, opts.tty):
        return _fail("exec", problem)
    req = api.ExecRequest(container_id=opts.id, cmd=opts.cmd, tty=opts.tty, stdin=opts.interactive,
                          stdout=True, stderr=not opts.tty)
    try:
        url = c.call(c.runtime.Exec, req).url
    except grpc.RpcError as err:
        # A runtime without streaming still runs a plain `exec` the way it always did.
        if err.code() == grpc.StatusCode.UNIMPLEMENTED and not (opts.interactive or opts.tty):
            return exec_sync(c, opts)
        raise
    return _remotecommand("exec", url, opts.interactive, opts.tty)


def exec_sync(c, opts) -> int:
    resp = c.call(c.runtime.ExecSync, api.ExecSyncRequest(container_id=opts.id, cmd=opts.cmd,
                                                          timeout=opts.timeout),
                  timeout=(opts.timeout + 30) if opts.timeout else 24 * 3600)
    sys.stdout.buffer.write(resp.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(resp.stderr)
    sys.stderr.buffer.flush()
    return resp.exit_code


def attach(c, opts) -> int:
    if problem := _tty_problem(opts.stdin, opts.tty):
        return _fail("attach", problem)
    req = api.AttachRequest(container_id=opts.id, tty=opts.tty, stdin=opts.stdin,
                            stdout=True, stderr=not opts.tty)
    return _remotecommand("attach", c.call(c.runtime.Attach, req).url, opts.stdin, opts.tty)


def port_forward(c, opts) -> int:
    from .stream import StreamClientError, portforward
    try:
        specs = [portforward.parse_port(p) for p in opts.ports]
    except StreamClientError as err:
        return _fail("port-forward", str(err))
    req = api.PortForwardRequest(pod_sandbox_id=opts.pod_id, port=sorted({s.remote for s in specs}))
    url = c.call(c.runtime.PortForward, req).url
    return _run("port-forward", portforward.run(url, specs))


def _tty_problem(stdin: bool, tty: bool) -> str:
    """crictl's rules for -t: only with -i, and only from a terminal."""
    if tty and not stdin:
        return "-t needs -i (tty=true must be specified with interactive=true)"
    if tty and not os.isatty(sys.stdin.fileno()):
        return "-t needs stdin to be a terminal"
    return ""


def _remotecommand(verb: str, url: str, stdin: bool, tty: bool) -> int:
    from .stream import remotecommand
    local = remotecommand.Local(sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno())
    sys.stdout.flush()
    return _run(verb, remotecommand.run(url, local, stdin=stdin, tty=tty))


def _run(verb: str, session) -> int:
    from .stream import StreamClientError
    try:
        code, message = asyncio.run(session)
    except StreamClientError as err:
        return _fail(verb, str(err))
    if message:
        _fail(verb, message)
    return code


def _fail(verb: str, message: str) -> int:
    print(f"podwire-ctl {verb}: {message}", file=sys.stderr, flush=True)
    return 1
