"""ExitWatcher: calls back once per container exit, for GetContainerEvents (STOPPED events).

Polling, not inotify: the monitor's exit file is the only signal, and a restarted shim must
find exits that happened while it was down, which a poll over watched ids does for free.
On cgroup v2 the same thread also watches the running containers' memory.events through
inotify (oomwatch.py), so that an OOM kill is recorded while the cgroup still exists."""
from __future__ import annotations

import logging
import select
import threading
from typing import TYPE_CHECKING, Callable

from cri.oci import cgroups
from cri.oci.oomwatch import OomWatcher
from cri.oci.state import ContainerState, State

if TYPE_CHECKING:
    from cri.oci.runtime import ContainerRuntime

Callback = Callable[[ContainerState], None]


log = logging.getLogger(__name__)


class ExitWatcher:
    def __init__(self, runtime: ContainerRuntime, on_exit: Callback, interval: float = 0.25,
                 watch_oom: bool | None = None) -> None:
        """watch_oom: watch memory.events for OOM kills; None = on a cgroup v2 host (v1: no,
        conmon's notification through memory.oom_control is exact there)."""
        self.runtime = runtime
        self.on_exit = on_exit
        self.interval = interval
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)
        self.oom: OomWatcher | None = None
        if watch_oom is None:
            watch_oom = cgroups.is_v2()
        if watch_oom:
            try:
                self.oom = OomWatcher()
            except OSError as e:
                log.warning("no OOM watch on memory.events (%s); conmon's oom file only", e)

    def watch(self, container_id: str) -> None:
        with self._lock:
            self._ids.add(container_id)
        if self.oom is not None:
            paths = self.runtime.oom_watch_paths(container_id)
            if paths is not None:
                self.oom.add(container_id, *paths)

    def unwatch(self, container_id: str) -> None:
        with self._lock:
            self._ids.discard(container_id)
        if self.oom is not None:
            self.oom.remove(container_id)

    def start(self) -> "ExitWatcher":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.oom is not None:
            self.oom.close()

    def poll_once(self) -> None:
        with self._lock:
            ids = sorted(self._ids)
        for cid in ids:
            try:
                st = self.runtime.lookup(cid)
            except Exception:  # noqa: BLE001 - one bad container must not stop the others
                continue
            if st is None or st.state == State.EXITED:
                self.unwatch(cid)
                if st is not None:
                    self.on_exit(st)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.oom is None:
                if self._stop.wait(self.interval):
                    break
            elif select.select([self.oom.fd], [], [], self.interval)[0]:
                self.oom.handle()
            if self._stop.is_set():
                break
            self.poll_once()
