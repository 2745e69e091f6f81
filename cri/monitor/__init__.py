"""The per-container monitor: conmon (Debian's `conmon`, CRI-O's container monitor).

Whatever holds a container's stdio and waits for its exit must outlive the shim.  One conmon per
container does that: it double-forks away from the shim, becomes the container's subreaper, runs
`runc create` with the container's stdout/stderr on pipes it holds, reports the init's pid (or
runc's error) over a sync pipe, writes the output in the CRI log format (its k8s-file driver),
and after the init exits drains the pipes, then records the exit status.  It is C: ~2 MiB RSS
and ~1.2 MiB PSS per container, where a Python monitor costs ~11 MiB RSS and ~6 MiB PSS.

Files in the container's state dir (written by conmon unless marked "shim"):
  conmon.pid     conmon's pid (after its fork; a live one runs `conmon ... -c <id>`)
  init.pid       the container init's pid (runc writes it during `runc create`)
  created.json   shim: init pid + start time + created_at, once conmon reported "created"
  started.json   shim: started_at, after `runc start`
  runtime.json   shim: bundle, cgroups path, log path, tty (before conmon is spawned)
  exit           the exit status as text (128+N for signal N) -- written only after the log
                 is drained, so its presence means the log is complete; mtime = finished_at
  oom            present when the container's cgroup saw an OOM kill
  conmon.log     conmon's own stderr; runc.log: runc's --log (json) for `runc create`
In the bundle dir conmon keeps `ctl` (a FIFO: "2 0 0\\n" reopens the log file) and `attach`.

ExecSync runs under a short-lived `conmon --exec` of its own (cri/oci/execsync.py).
"""
