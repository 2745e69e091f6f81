"""Entry point: python -S -m cri.monitor --id ID --bundle DIR --state-dir DIR --runc PATH
   --runc-root DIR --log-path PATH --sync-fd N [--tty] [--stdin]
or: python -S -m cri.monitor --standby JOB_FD --root DIR   (the arguments arrive later as JSON)

Started by cri.monitor.client.spawn(); see the package docstring for the protocol and files."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

from cri.monitor import daemon, files
from cri.monitor.control import ControlServer
from cri.monitor.create import CreateArgs, CreateFailed, runc_create
from cri.monitor.sink import LogSink
from cri.monitor.supervise import Exit, Supervisor, install_sigchld_wakeup
from cri.oci import cgroups


class Options:
    """Command line: --name value pairs and two flags (no argparse: ~0.5 MB per monitor)."""
    FLAGS = ("tty", "stdin")
    VALUES = ("id", "bundle", "state-dir", "runc", "runc-root", "log-path", "cgroups-path",
              "sync-fd")

    def __init__(self, argv: list) -> None:
        values = {"log-path": "", "cgroups-path": ""}
        flags = set()
        it = iter(argv)
        for arg in it:
            name = arg[2:] if arg.startswith("--") else ""
            if name in self.FLAGS:
                flags.add(name)
            elif name in self.VALUES:
                values[name] = next(it)
            else:
                raise SystemExit(f"cri.monitor: unknown argument {arg!r}")
        missing = [n for n in self.VALUES if n not in values]
        if missing:
            raise SystemExit(f"cri.monitor: missing --{missing[0]}")
        self.id, self.bundle, self.state_dir = values["id"], values["bundle"], values["state-dir"]
        self.runc, self.runc_root = values["runc"], values["runc-root"]
        self.log_path, self.cgroups_path = values["log-path"], values["cgroups-path"]
        self.sync_fd = int(values["sync-fd"])
        self.tty, self.stdin = "tty" in flags, "stdin" in flags


def report(opts: Options, message: dict) -> None:
    """Tell the shim how create went, once; it may be gone already (then nobody needs to know)."""
    fd, opts.sync_fd = opts.sync_fd, -1
    if fd < 0:
        return
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
    except OSError:
        pass
    finally:
        os.close(fd)


def exit_record(exit: Exit, oom_before: int | None, cgroups_path: str) -> dict:
    oom_after = cgroups.oom_kills(cgroups_path) if cgroups_path else None
    oom = oom_after is not None and oom_after > (oom_before or 0)
    code = exit.exit_code
    reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
    return {"exit_code": code, "signal": exit.signal, "finished_at": exit.finished_at,
            "oom_killed": oom, "reason": reason}


def run(opts: Options) -> int:
    os.chdir(opts.state_dir)
    os.set_inheritable(opts.sync_fd, False)  # runc and the container must not get it
    daemon.become_subreaper()
    files.write_json(files.MONITOR, files.ProcRef.of(os.getpid()).to_json())
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    wakeup = install_sigchld_wakeup()
    control = ControlServer(files.CONTROL)
    args = CreateArgs(opts.id, opts.bundle, opts.runc, opts.runc_root, opts.tty, opts.stdin)
    try:
        sink = LogSink(opts.log_path)  # e.g. the log directory does not exist
        init_pid, stdio = runc_create(args)
    except (CreateFailed, OSError) as e:
        control.close()
        report(opts, {"error": str(e)})
        return 1
    ref = files.ProcRef.of(init_pid)
    files.write_json(files.CREATED, {"pid": init_pid, "start_time": ref.start_time if ref else 0,
                                     "created_at": time.time_ns()})
    oom_before = cgroups.oom_kills(opts.cgroups_path) if opts.cgroups_path else None
    report(opts, {"pid": init_pid})
    exit = Supervisor(init_pid, stdio, sink, control, wakeup).run()
    sink.close()
    # Last: the exit file is what tells the shim that the log is complete.
    files.write_json(files.EXIT, exit_record(exit, oom_before, opts.cgroups_path))
    control.close()
    return 0


def standby(job_fd: int) -> list[str]:
    """A monitor started ahead of need (cri.monitor.client.Standby): every import is done,
    so a CreateContainer only pays for `runc create`.  Waits for its job -- the argument
    list, one JSON line -- and takes stderr over to the job's monitor.log.  EOF (the shim
    is gone or shut its pool) means nobody needs us."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(job_fd, 65536)
        if not chunk:
            raise SystemExit(0)
        data += chunk
    os.close(job_fd)
    argv = json.loads(data)
    opts = Options(argv)
    log = os.open(os.path.join(opts.state_dir, files.MONITOR_LOG),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.dup2(log, 2)
    os.close(log)
    return argv


def main(argv: list[str]) -> int:
    daemon.detach()
    if argv[:1] == ["--standby"]:
        argv = standby(int(argv[1]))
    opts = Options(argv)
    try:
        return run(opts)
    except BaseException:
        import traceback  # only now: it is heavy, and most monitors never need it
        traceback.print_exc()  # stderr is monitor.log
        report(opts, {"error": "monitor failed: see " + files.MONITOR_LOG})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
