"""Exec helper: python -S -m cri.monitor.exec_helper RUNC ROOT LOG PIDFILE ID CMD...

Why it exists: `runc exec` in the foreground copies the process's output through pipes of its
own and does not exit before they reach EOF, so a backgrounded child (`sleep 100 &`) holds it,
and with it the exit code, for as long as that child lives.  `runc exec --detach` hands our
stdio straight to the process and returns at once; then someone must wait() for the process:
this helper, as PR_SET_CHILD_SUBREAPER, inherits it when runc exits.  Exit status = the
process's (128+signal if killed); 255 when runc itself failed (its error is in LOG).
Standard library only: it starts for every ExecSync (a kubelet's exec probes).
"""
from __future__ import annotations

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    runc, root, log, pid_file, container_id, *cmd = argv
    become_subreaper()
    argv = [runc, "--root", root, "--log", log, "--log-format", "json", "exec", "--detach",
            "--pid-file", pid_file, container_id, *cmd]
    if exit_code(os.waitpid(os.posix_spawn(runc, argv, os.environ), 0)[1]) != 0:
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
            return exit_code(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
