"""The per-container monitor (conmon-like): `python -m cri.monitor ...`.

One monitor per container, started by the shim at CreateContainer.  It detaches from the shim
(double fork, own session, stdio on files), becomes PR_SET_CHILD_SUBREAPER, runs `runc create`
with the container's stdout/stderr on pipes it holds, reports "created" back over a sync pipe,
then copies the pipes into the CRI log file and waits for the container's init.  It records the
exit status only after draining the pipes, so a shim that was down (or SIGKILLed) loses neither a
log line nor an exit code.

Files in the container's state dir (layout in files.py; written atomically):
  monitor.json   the monitor's pid + start time (written first)
  created.json   init pid + start time + created_at   (after `runc create` succeeded)
  started.json   started_at                           (written by the shim after `runc start`)
  exit.json      exit_code, signal, finished_at, oom_killed, reason   (last thing the monitor does)
  runtime.json   bundle, cgroups path, log path, tty  (written by the shim before spawning)
  ctl.sock       control socket: "reopen" (ReopenContainerLog)
  monitor.log    the monitor's own stderr;  runc.log  runc's --log for `runc create`

This package must stay light: it imports only the standard library and cri.oci.cgroups, never
grpc, because every running container pays for the monitor's memory.
"""
