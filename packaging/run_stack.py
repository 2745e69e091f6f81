#!/usr/bin/env python3
"""`make run`: the node stack in the foreground.

Starts each daemon of STACK that is installed, in order, waiting until its
socket answers; runs the --after commands once (the demo); then waits.  Ctrl-C
(SIGINT) or SIGTERM stops the daemons in reverse order: SIGTERM, then SIGKILL
after --stop-timeout.  Daemons run in their own sessions, so the terminal's
Ctrl-C reaches only this runner, which stops them one by one.  A daemon that is
already serving its socket (e.g. under systemd) is used, not started or stopped.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from cni import metrics   # the defaults only: standard library at import


@dataclasses.dataclass
class Daemon:
    name: str
    argv: list[str]
    socket: str  # ready once it accepts connections

    def answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(self.socket)
                return True
            except OSError:
                return False


def stack(prefix: str) -> list[Daemon]:
    """In start order."""
    return [
        # The policy agent first: a pod wired before it answers would start unregistered (the CNI
        # hook skips a missing agent), i.e. without the isolation its policies ask for.
        Daemon("podwire-netpol", [f"{prefix}/bin/podwire-netpol", "serve"], "/run/podwire/netpol.sock"),
        Daemon("podwire-cnid", [f"{prefix}/bin/podwire-cnid", "serve"], "/run/podwire/cni.sock"),
        # The CRI shim with its embedded defaults (/etc/podwire/cri.toml if installed); its
        # containers' monitors outlive it, so stopping the stack stops no container.
        Daemon("podwire-cri", [f"{prefix}/bin/podwire-cri"], "/run/podwire/cri.sock"),
    ]


# Where each daemon serves its metrics by default (docs/{cni,netpol,cri}.md).
METRICS = {"podwire-netpol": metrics.NETPOL_ADDRESS, "podwire-cnid": metrics.CNID_ADDRESS,
           "podwire-cri": metrics.CRI_ADDRESS}


def print_summary(daemons: list[Daemon], prefix: str) -> None:
    """What a new user wants once the stack is up: where it listens and what to type."""
    for d in daemons:
        print(f"run: {d.name}: socket {d.socket}, metrics http://{METRICS[d.name]}/metrics", flush=True)
    ctl = f"{prefix}/bin/podwire-ctl"
    for command in ("info", "pods", "images"):
        print(f"run: try: {ctl} {command}", flush=True)


def start(daemon: Daemon, timeout: float) -> subprocess.Popen | None:
    if daemon.answers():
        print(f"run: {daemon.name} already serves {daemon.socket}; using it", flush=True)
        return None
    proc = subprocess.Popen(daemon.argv, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not daemon.answers():
        if proc.poll() is not None:
            raise RuntimeError(f"{daemon.name} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            stop(daemon, proc, 5)
            raise RuntimeError(f"{daemon.name} did not answer on {daemon.socket} within {timeout}s")
        time.sleep(0.05)
    print(f"run: {daemon.name} (pid {proc.pid}) serves {daemon.socket}", flush=True)
    return proc


def stop(daemon: Daemon, proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"run: {daemon.name} ignored SIGTERM for {timeout}s; killing it", flush=True)
            proc.kill()
            proc.wait()
    print(f"run: {daemon.name} stopped (exit {proc.returncode})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", default="/usr/local")
    parser.add_argument("--after", action="append", default=[], help="command to run once the stack is up")
    parser.add_argument("--start-timeout", type=float, default=30.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("--exit", action="store_true",
                        help="stop the stack once the --after commands ran; exit 1 if one failed (make demo)")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops like Ctrl-C
    running: list[tuple[Daemon, subprocess.Popen]] = []
    try:
        for daemon in stack(opts.prefix):
            if not os.access(daemon.argv[0], os.X_OK):
                print(f"run: {daemon.name} is not installed; skipped", flush=True)
                continue
            proc = start(daemon, opts.start_timeout)
            if proc is not None:
                running.append((daemon, proc))
        failed = False
        for command in opts.after:
            code = subprocess.run(shlex.split(command)).returncode
            print(f"run: `{command}` exited with {code}", flush=True)
            failed |= code != 0
        if opts.exit:
            return 1 if failed else 0
        print_summary([d for d in stack(opts.prefix) if d.answers()], opts.prefix)
        print("run: the node stack is up; Ctrl-C stops it", flush=True)
        while all(proc.poll() is None for _, proc in running):
            time.sleep(0.5)
        for daemon, proc in running:
            if proc.poll() is not None:
                print(f"run: {daemon.name} exited on its own with {proc.returncode}", flush=True)
                return 1
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"run: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        for daemon, proc in reversed(running):
            stop(daemon, proc, opts.stop_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
