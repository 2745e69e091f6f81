"""ContainerRuntime: the container half of the CRI (create/start/stop/remove/status/exec/logs/
stats/update/recover), on runc plus one conmon per container (cri/monitor/__init__.py).

Directories (all configurable; tests use temporary ones and a private runc root):
  root_dir/<id>/    the OCI bundle: config.json, rootfs/ (overlay mount), upper/, work/,
                    image-volumes/<n> (read-only overlays, cri/oci/imagevolume.py)
                    default /var/lib/podwire/bundles (container writes must not live in RAM)
  state_dir/<id>/   the container's state files (cri/monitor/__init__.py); default
                    /run/podwire/monitors: they matter while the node is up, and no container
                    survives a reboot
  state_dir/.attach/<id> -> bundle   conmon's link to the attach socket (short socket paths)
  runc_root         runc --root, default /run/podwire/runc

Nothing here is kept only in memory: a new ContainerRuntime over the same directories (a
restarted shim) sees every container, its exit code and its log.  Per-container locking is the
caller's (the RPC layer serialises operations on one container)."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time

from cri import background
from cri.errors import CriError, already_exists, deadline, invalid, not_found, precondition
from cri.monitor import conmon, files
from cri.oci import cgroupdriver, cgroups, execsync, imagevolume, resources, rootfs, stats
from cri.oci.runc import DEFAULT_ROOT as RUNC_ROOT, Runc
from cri.oci.spec import OWNED_CGROUP_PARENT
from cri.oci.state import ContainerState, State, read_state

DEFAULT_ROOT_DIR = "/var/lib/podwire/bundles"
DEFAULT_STATE_DIR = "/run/podwire/monitors"
KILL_WAIT = 10.0        # after SIGKILL, how long the exit may take to be recorded
MONITOR_GRACE = 5.0     # remove(): conmon drains, writes the exit file, then exits
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _succeeded(call: background.Call) -> bool:
    try:
        call.result()
        return True
    except CriError:
        return False


def _check_id(container_id: str) -> None:
    """Ids become path components: nothing that could name another directory."""
    if not _ID.match(container_id):
        raise invalid(f"invalid container id {container_id!r}")


class ContainerRuntime:
    def __init__(self, root_dir: str = DEFAULT_ROOT_DIR, runc_root: str = RUNC_ROOT,
                 state_dir: str = DEFAULT_STATE_DIR, runc_binary: str = "runc",
                 conmon_binary: str = "conmon", cgroup_driver: str = cgroupdriver.CGROUPFS,
                 monitor_slice: str = cgroupdriver.MONITOR_SLICE) -> None:
        self.root_dir = root_dir
        self.state_dir = state_dir
        self.attach_dir = os.path.join(state_dir, ".attach")
        self.cgroup_driver = cgroup_driver
        self.systemd = cgroup_driver == cgroupdriver.SYSTEMD
        # Where conmon's own scope goes under the systemd driver (cgroupdriver.conmon_scope_argv).
        self.monitor_slice = monitor_slice
        self.runc = Runc(runc_root, runc_binary, systemd_cgroup=self.systemd)
        self.conmon = shutil.which(conmon_binary) or conmon_binary
        # `runc delete` of containers that stop() saw exit, started then and finished by remove():
        # the kubelet removes a stopped container at once (or long after); neither waits on it.
        self._deleting: dict[str, background.Call] = {}
        self._deleting_lock = threading.Lock()
        for d in (root_dir, state_dir, runc_root):
            os.makedirs(d, mode=0o711, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------

    def bundle_dir(self, container_id: str) -> str:
        _check_id(container_id)
        return os.path.join(self.root_dir, container_id)

    def monitor_dir(self, container_id: str) -> str:
        _check_id(container_id)
        return os.path.join(self.state_dir, container_id)

    def _runtime_info(self, container_id: str) -> dict:
        return files.read_json(os.path.join(self.monitor_dir(container_id), files.RUNTIME)) or {}

    # -- lifecycle -----------------------------------------------------------------------------

    def prepare_rootfs(self, container_id: str, layers: list[str]) -> str:
        """Mount the overlay rootfs at <bundle>/rootfs; its path (for build_spec).  Undone by
        remove(), which the caller must call if anything later fails."""
        bundle = self.bundle_dir(container_id)
        target = os.path.join(bundle, "rootfs")
        rootfs.mount_rootfs(layers, os.path.join(bundle, "upper"), os.path.join(bundle, "work"),
                            target)
        return target

    def mount_image_volume(self, container_id: str, index: int, layers: list[str]) -> str:
        """Mount an image volume's layers (top-most first) read-only under the bundle; the
        mount point.  Undone by remove(), like the rootfs."""
        target = os.path.join(imagevolume.volumes_dir(self.bundle_dir(container_id)), str(index))
        imagevolume.mount(layers, target)
        return target

    def create(self, container_id: str, spec: dict, log_path: str, timeout: float = 60.0,
               *, stdin: bool = False, stdin_once: bool = False) -> int:
        """Write config.json, start conmon, which runs `runc create`; the init's pid.

        stdin_once (the CRI's): the first attach's stdin EOF closes the container's stdin;
        otherwise conmon leaves it open for the next attach.

        On failure everything this call made is undone (the rootfs stays: remove() owns it)."""
        bundle, state = self.bundle_dir(container_id), self.monitor_dir(container_id)
        if os.path.exists(state):
            raise already_exists(f"container {container_id} already exists")
        with contextlib.ExitStack() as undo:
            os.makedirs(bundle, mode=0o711, exist_ok=True)
            os.makedirs(state, mode=0o700)
            undo.callback(shutil.rmtree, state, ignore_errors=True)
            files.write_json(os.path.join(bundle, "config.json"), spec)
            info = {"bundle": bundle, "log_path": log_path,
                    "tty": bool(spec["process"].get("terminal")),
                    "cgroups_path": spec["linux"].get("cgroupsPath", "")}
            files.write_json(os.path.join(state, files.RUNTIME), info)
            undo.callback(self._abort_create, container_id)
            scope = (tuple(cgroupdriver.conmon_scope_argv(container_id, self.monitor_slice))
                     if self.systemd else ())
            pid = conmon.spawn(conmon.ConmonArgs(
                container_id, bundle, state, self.attach_dir, self.conmon, self.runc.binary,
                self.runc.root, log_path, tty=info["tty"], stdin=stdin,
                leave_stdin_open=stdin and not stdin_once, systemd_cgroup=self.systemd,
                scope=scope), timeout)
            ref = files.ProcRef.of(pid) or files.ProcRef(pid, 0)
            files.write_json(os.path.join(state, files.CREATED),
                             {**ref.to_json(), "created_at": time.time_ns()})
            undo.pop_all()
        return pid

    def _abort_create(self, container_id: str) -> None:
        self._kill_monitor(container_id)
        self.runc.delete(container_id)
        self._unlink_attach(container_id)

    def _unlink_attach(self, container_id: str) -> None:
        """conmon removes its attach link when it exits; not when it was killed."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.attach_dir, container_id))

    def start(self, container_id: str) -> None:
        st = self.status(container_id)
        if st.state != State.CREATED:
            raise precondition(f"container {container_id} is {st.state.name}, not CREATED")
        # Stamped before `runc start` so that started_at <= finished_at even for instant exits.
        started_at = time.time_ns()
        self.runc.start(container_id, st.pid)
        files.write_json(os.path.join(self.monitor_dir(container_id), files.STARTED),
                         {"started_at": started_at})

    def stop(self, container_id: str, stop_signal: int = signal.SIGTERM,
             timeout_s: float = 0) -> None:
        """Send stop_signal, wait up to timeout_s for the exit, then SIGKILL every process.

        api.proto: "StopContainer ... This call is idempotent, and must not return an error if
        the container has already been stopped" -- an exited or unknown container is success."""
        st = self.lookup(container_id)
        if st is None or st.state in (State.EXITED, State.UNKNOWN):
            return
        if st.state == State.RUNNING and timeout_s > 0 and stop_signal != signal.SIGKILL:
            # kill() is False when the init already died; the exit is then being recorded.
            self.runc.kill(container_id, stop_signal)
            if self.wait_exit(container_id, timeout_s) is not None:
                return self._delete_in_background(container_id)
        if not self._kill_pid_namespace(container_id):
            self.runc.kill(container_id, signal.SIGKILL, all_processes=True)
        if self.wait_exit(container_id, KILL_WAIT) is None:
            raise deadline(f"container {container_id} did not exit {KILL_WAIT}s after SIGKILL")
        self._delete_in_background(container_id)

    def _delete_in_background(self, container_id: str) -> None:
        """`runc delete` of a container whose exit is recorded (its state dir and cgroup), on a
        thread: the exit, code and OOM reason are read from the monitor's files, which runc does
        not touch.  remove() joins it; a crash before that leaves runc's state, which remove()
        (or recovery's removal of an unknown container) deletes as before."""
        with self._deleting_lock:
            if container_id not in self._deleting:
                self._deleting[container_id] = background.call(self.runc.delete, container_id)

    def _kill_pid_namespace(self, container_id: str) -> bool:
        """SIGKILL every process of a container with a PID namespace of its own, without a
        runc start-up: when a namespace's init dies the kernel kills all its other processes
        (pid_namespaces(7)), and every process of such a container (exec'd ones too) is in it --
        what `runc kill --all` achieves through the cgroup.  False when the container shares a
        PID namespace (the pod's or the node's: runc must find its processes in its cgroup) or
        its init is not known; True also when the init is already gone (its exit is being
        recorded).  The pidfd, checked against the recorded start time once opened, cannot hit
        a process that reused the pid."""
        spec = files.read_json(os.path.join(self.bundle_dir(container_id), "config.json")) or {}
        namespaces = (spec.get("linux") or {}).get("namespaces") or []
        if not any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces):
            return False
        ref = files.ProcRef.from_json(files.read_json(os.path.join(self.monitor_dir(container_id),
                                                                  files.CREATED)))
        if ref is None or not ref.start_time:
            return False
        try:
            pidfd = os.pidfd_open(ref.pid)
        except ProcessLookupError:
            return True
        try:
            if ref.alive():
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)
        return True

    def remove(self, container_id: str) -> None:
        """Kill what still runs, delete it from runc, unmount and delete the bundle and state.

        api.proto: "RemoveContainer ... If the container is running, the container must be
        forcibly removed.  This call is idempotent, and must not return an error if the
        container has already been removed." """
        bundle, state = self.bundle_dir(container_id), self.monitor_dir(container_id)
        owned_parent = self._owned_cgroup_parent(bundle)
        with self._deleting_lock:
            pending = self._deleting.pop(container_id, None)
        if pending is None or not _succeeded(pending):
            self.runc.delete(container_id)       # kills what still runs (--force)
        self._wait_monitor_gone(container_id, MONITOR_GRACE)
        rootfs.unmount_rootfs(os.path.join(bundle, "rootfs"))
        imagevolume.unmount_all(bundle)
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        self._unlink_attach(container_id)
        if owned_parent:
            cgroups.remove_empty(owned_parent)

    @staticmethod
    def _owned_cgroup_parent(bundle: str) -> str:
        spec = files.read_json(os.path.join(bundle, "config.json")) or {}
        return (spec.get("annotations") or {}).get(OWNED_CGROUP_PARENT, "")

    # -- conmon ------------------------------------------------------------------------------

    def _kill_monitor(self, container_id: str) -> None:
        pid = conmon.conmon_pid(self.monitor_dir(container_id), container_id)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _wait_monitor_gone(self, container_id: str, timeout: float) -> None:
        # conmon exits right after recording the exit: poll from 1 ms (a fixed 20 ms was most
        # of a RemoveContainer that followed its StopContainer at once).
        state, end, pause = self.monitor_dir(container_id), time.monotonic() + timeout, 0.001
        while conmon.alive(state, container_id) and time.monotonic() < end:
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        self._kill_monitor(container_id)

    # -- status and events ---------------------------------------------------------------------

    def lookup(self, container_id: str) -> ContainerState | None:
        """The container's state, None when this runtime has no such container."""
        return read_state(container_id, self.monitor_dir(container_id))

    def status(self, container_id: str) -> ContainerState:
        st = self.lookup(container_id)
        if st is None:
            raise not_found(f"container {container_id} not found")
        return st

    def wait_exit(self, container_id: str, timeout: float) -> ContainerState | None:
        """The EXITED state once the exit is recorded (log drained), None on timeout or if the
        container is gone.  Polls: cheap file reads, 1 ms doubling to 100 ms (after a SIGKILL
        conmon records the exit within a few ms; a first wait of 10 ms was most of StopContainer)."""
        end, pause = time.monotonic() + timeout, 0.001
        while True:
            st = self.lookup(container_id)
            if st is None or st.state == State.EXITED:
                return st
            if time.monotonic() >= end:
                return None
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
            pause = min(pause * 2, 0.1)

    def list_ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.state_dir)
                          if _ID.match(n) and os.path.isdir(os.path.join(self.state_dir, n)))
        except FileNotFoundError:
            return []

    def recover(self) -> list[ContainerState]:
        """Every container this runtime (or runc under its root) knows, for a restarted shim.

        Monitor files are the truth for exits; runc's list adds containers with no state dir
        (reported UNKNOWN: the caller removes those it has no record of).  A container whose
        monitor died while it ran stays RUNNING while its init lives, then reads EXITED with
        reason Unknown: its exit was observed by nobody."""
        known = {c["id"] for c in self.runc.list()}
        states = [st for st in map(self.lookup, self.list_ids()) if st is not None]
        seen = {s.id for s in states}
        states += [ContainerState(cid, State.UNKNOWN, message="known to runc but has no monitor "
                                  "state") for cid in sorted(known - seen)]
        return states

    def pid_namespace(self, container_id: str) -> str:
        """/proc/<init>/ns/pid of a running container (for a pod's shared pid namespace)."""
        st = self.status(container_id)
        if st.state not in (State.CREATED, State.RUNNING) or not st.pid:
            raise precondition(f"container {container_id} is not running")
        return f"/proc/{st.pid}/ns/pid"

    # -- exec, logs, resources, stats ----------------------------------------------------------

    def _require_running(self, container_id: str) -> None:
        st = self.status(container_id)
        if st.state != State.RUNNING:
            raise precondition(f"container {container_id} is not running "
                               f"(state {st.state.name})")

    def exec_sync(self, container_id: str, cmd: list[str],
                  timeout_s: float = 0) -> execsync.ExecResult:
        self._require_running(container_id)
        return execsync.exec_sync(self.runc, self.conmon, container_id, self.spec(container_id)["process"],
                                  list(cmd), timeout_s, self.monitor_dir(container_id))

    def reopen_log(self, container_id: str) -> None:
        """Reopen the log file after the kubelet renamed it; FailedPrecondition if not running
        (containerd rejects it the same way)."""
        self._require_running(container_id)
        conmon.reopen_log(container_id, self.bundle_dir(container_id),
                          self._runtime_info(container_id).get("log_path", ""))

    def update_resources(self, container_id: str, linux_resources) -> None:
        """Apply a runtime.v1 LinuxContainerResources to the live cgroup (`runc update`)."""
        st = self.status(container_id)
        if st.state not in (State.CREATED, State.RUNNING):
            raise precondition(f"container {container_id} is {st.state.name}")
        self.runc.update(container_id, resources.linux_resources(linux_resources))
        self._record_resources(container_id, linux_resources)

    def _record_resources(self, container_id: str, linux_resources) -> None:
        """Keep config.json current: ContainerStatus reports resources from it."""
        path = os.path.join(self.bundle_dir(container_id), "config.json")
        spec = files.read_json(path)
        if spec is None:
            return
        current = spec["linux"].setdefault("resources", {})
        current.update(resources.linux_resources(linux_resources))
        files.write_json(path, spec)

    def oom_watch_paths(self, container_id: str) -> tuple[str, str] | None:
        """(the container's memory.events, its `oom` file) on cgroup v2, for the ExitWatcher's
        OOM watch; None on v1 or without a cgroup."""
        if not cgroups.is_v2():
            return None
        path = self._runtime_info(container_id).get("cgroups_path")
        d = cgroups.controller_dir("memory", path) if path else None
        if d is None:
            return None
        return os.path.join(d, "memory.events"), os.path.join(self.monitor_dir(container_id), files.OOM)

    def stats(self, container_id: str) -> stats.CgroupStats | None:
        """CPU and memory from the container's cgroup; None once the cgroup is gone."""
        path = self._runtime_info(container_id).get("cgroups_path")
        if not path:
            self.status(container_id)  # NotFound for an unknown id
            return None
        return stats.read_stats(path)

    def spec(self, container_id: str) -> dict:
        """The container's config.json (user, resources, mounts for ContainerStatus)."""
        spec = files.read_json(os.path.join(self.bundle_dir(container_id), "config.json"))
        if spec is None:
            raise not_found(f"container {container_id} has no bundle")
        return spec
