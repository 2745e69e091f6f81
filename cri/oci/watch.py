"""ExitWatcher: calls back once per container exit, for GetContainerEvents (STOPPED events).

Polling, not inotify: the monitor's exit file is the only signal, and a restarted shim must
find exits that happened while it was down, which a poll over watched ids does for free."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from cri.oci.state import ContainerState, State

if TYPE_CHECKING:
    from cri.oci.runtime import ContainerRuntime

Callback = Callable[[ContainerState], None]


class ExitWatcher:
    def __init__(self, runtime: ContainerRuntime, on_exit: Callback, interval: float = 0.25) -> None:
        self.runtime = runtime
        self.on_exit = on_exit
        self.interval = interval
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)

    def watch(self, container_id: str) -> None:
        with self._lock:
            self._ids.add(container_id)

    def unwatch(self, container_id: str) -> None:
        with self._lock:
            self._ids.discard(container_id)

    def start(self) -> "ExitWatcher":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

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
        while not self._stop.wait(self.interval):
            self.poll_once()
