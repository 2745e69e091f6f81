"""The container's log file: append-only, reopened on request (ReopenContainerLog)."""
from __future__ import annotations

import os


class LogSink:
    """Writes CRI log lines to `path` ("" = no log: output is read and dropped, as the CRI says
    when log_directory or log_path is unset)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.reopen()

    def reopen(self) -> None:
        """Open `path` anew (the kubelet renamed the old file away); keep the old fd if it fails."""
        if not self.path:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd

    def write(self, lines: list[bytes]) -> None:
        if self.fd < 0 or not lines:
            return
        data = b"".join(lines)
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            # A full or vanished disk must not kill the monitor: the exit code matters more.
            pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
