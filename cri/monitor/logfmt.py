"""The CRI container log format: `<RFC3339Nano> <stdout|stderr> <P|F> <msg>\\n`.

Mirrors containerd's internal/cri/io/logger.go: bytes are buffered until a newline; a line longer
than max_line (16 KiB) is cut into `P` (partial) chunks and ends with an `F` chunk; a trailing
"\\r" before the newline is dropped (bufio.ReadLine does); output that ends without a newline is
flushed as `P` when the stream closes.  The kubelet's parseCRILog joins P chunks.
"""
from __future__ import annotations

import time
TYPE_CHECKING = False  # not `from typing`: the monitor does not import typing at run time

if TYPE_CHECKING:
    from typing import Callable

MAX_LINE = 16 * 1024
FULL = b"F"
PARTIAL = b"P"


def timestamp(ns: int) -> bytes:
    """RFC 3339 with nanoseconds, UTC, fixed width (containerd's "...05.000000000Z07:00")."""
    secs, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z").encode()


def format_line(ns: int, stream: bytes, tag: bytes, msg: bytes) -> bytes:
    return b"%s %s %s %s\n" % (timestamp(ns), stream, tag, msg)


class LineEncoder:
    """Turns one stream's raw bytes into CRI log lines; feed() as data arrives, close() at EOF."""

    def __init__(self, stream: str, max_line: int = MAX_LINE,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.stream = stream.encode()
        self.max_line = max_line
        self.clock = clock
        self.pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.pending += data
        out: list[bytes] = []
        now = self.clock()
        while True:
            nl = self.pending.find(b"\n", 0, self.max_line + 1)
            if nl >= 0:
                line, self.pending = self.pending[:nl], self.pending[nl + 1:]
                if line.endswith(b"\r"):
                    line = line[:-1]
                out.append(format_line(now, self.stream, FULL, line))
            elif len(self.pending) > self.max_line:
                chunk, self.pending = self.pending[:self.max_line], self.pending[self.max_line:]
                out.append(format_line(now, self.stream, PARTIAL, chunk))
            else:
                return out

    def close(self) -> list[bytes]:
        """EOF: what is left had no newline, so it is a partial line (containerd does the same)."""
        if not self.pending:
            return []
        line, self.pending = self.pending, b""
        return [format_line(self.clock(), self.stream, PARTIAL, line)]
