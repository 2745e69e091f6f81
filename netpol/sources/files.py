"""A watched directory of Kubernetes YAML/JSON manifests.

Each file is one source ("file:<path>"): applying a changed file prunes the
policies it no longer contains, and removing a file deletes its policies.  A
file that fails validation is reported and ignored; the policies it last
applied stay in force (fail safe: never fall open because of a typo).
Polling (mtime and size, once a second) needs nothing beyond the standard
library and works on every filesystem.
"""
from __future__ import annotations

import logging
import os
import threading

from ..errors import NetpolError

log = logging.getLogger("podwire.netpol")
SUFFIXES = (".yaml", ".yml", ".json")
PREFIX = "file:"


class DirectorySource:
    def __init__(self, agent, path: str, interval: float = 1.0):
        self.agent, self.path, self.interval = agent, os.path.abspath(path), interval
        self._seen: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netpol-watch-dir", daemon=True)
        self.errors: dict[str, str] = {}  # file -> last error, for tests and logs

    def start(self) -> "DirectorySource":
        self.scan()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # keep watching whatever one scan hit
                log.exception("scanning %s", self.path)

    def scan(self) -> None:
        files = self._files()
        for path, signature in sorted(files.items()):
            if self._seen.get(path) != signature:
                self._apply(path)
        known = {s[len(PREFIX):] for s in self._sources()}
        for path in sorted((set(self._seen) | known) - set(files)):
            if os.path.dirname(path) == self.path:
                log.info("%s removed: deleting its policies", path)
                self.agent.delete_source(PREFIX + path)
                self._seen.pop(path, None)
                self.errors.pop(path, None)
        self._seen.update(files)

    def _apply(self, path: str) -> None:
        try:
            with open(path) as f:
                text = f.read()
            results = self.agent.apply(text, source=PREFIX + path, prune=True)
        except (OSError, NetpolError) as exc:
            self.errors[path] = str(exc)
            log.error("%s: not applied: %s", path, exc)
            return
        self.errors.pop(path, None)
        for r in results:
            if r.action != "unchanged":
                log.info("%s: networkpolicy %s/%s %s", path, r.namespace, r.name, r.action,
                         extra={"policy": f"{r.namespace}/{r.name}", "file": path})

    def _files(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return out
        for name in names:
            full = os.path.join(self.path, name)
            if name.endswith(SUFFIXES) and not name.startswith(".") and os.path.isfile(full):
                st = os.stat(full)
                out[full] = (st.st_mtime_ns, st.st_size)
        return out

    def _sources(self) -> set[str]:
        return {v.record.source for v in self.agent.policies() if v.record.source.startswith(PREFIX)}
