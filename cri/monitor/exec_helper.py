"""Exec helper: python -S -m cri.monitor.exec_helper RUNC ROOT LOG PIDFILE ID CMD...

Why it exists: `runc exec` in the foreground copies the process's output through pipes of its
own and does not exit before they reach EOF, so a backgrounded child (`sleep 100 &`) holds it,
and with it the exit code, for as long as that child lives.  `runc exec --detach` hands our
stdio straight to the process and returns at once; then someone must wait() for the process:
this helper, as PR_SET_CHILD_SUBREAPER, inherits it when runc exits.  Exit status = the
process's (128+signal if killed); 255 when runc itself failed (its error is in LOG).
"""
from __future__ import annotations

import os
import sys

from cri.monitor import daemon
from cri.monitor.create import spawn, wait


def main(argv: list[str]) -> int:
    runc, root, log, pid_file, container_id, *cmd = argv
    daemon.become_subreaper()
    argv = [runc, "--root", root, "--log", log, "--log-format", "json", "exec", "--detach",
            "--pid-file", pid_file, container_id, *cmd]
    if wait(spawn(argv, 0, 1, 2)) != 0:
        return 255
    # Our copies of the caller's pipes must not delay its EOF.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with open(pid_file) as f:
        pid = int(f.read().strip())
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # not re-parented to us: cannot happen while we are its subreaper
        if reaped == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
