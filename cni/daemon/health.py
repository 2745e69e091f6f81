"""What podwire-cnid knows about its own readiness: reported through the
plugin's STATUS (code 50 when not ready) and by ``podwire-cnid status``."""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

from ..errors import CniError, Code


class Health:
    def __init__(self) -> None:
        self.started = time.time()
        self.draining = False
        self._lock = threading.Lock()
        self.served = 0
        self.in_flight = 0
        self.metrics = "off"  # the metrics URL, "off", or why the endpoint is not serving
        # Extra readiness checks: each returns a problem or None (e.g. the pod CIDR source).
        self.checks: list[Callable[[], Optional[str]]] = []
        self.routing: Optional[Callable[[], dict]] = None  # inter-node routing's mode and counts
        self.retired: Optional[Callable[[], dict]] = None  # veths DEL retired: pending, deleted

    def problems(self) -> list[str]:
        found = ["podwire-cnid is shutting down"] if self.draining else []
        return found + [p for p in (check() for check in self.checks) if p]

    def require_ready(self) -> None:
        problems = self.problems()
        if problems:
            raise CniError(Code.NOT_AVAILABLE, problems[0], "; ".join(problems[1:]))

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def end(self, served: bool) -> None:
        """``served``: answered by the daemon (not declined, not dropped)."""
        with self._lock:
            self.in_flight -= 1
            self.served += served

    def report(self) -> dict:
        problems = self.problems()
        return {"ready": not problems, "problems": problems, "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started, 1),
                "served": self.served, "in_flight": self.in_flight, "metrics": self.metrics,
                **({"routing": self.routing()} if self.routing else {}),
                **({"retired_veths": self.retired()} if self.retired else {})}
