"""logs: read a container's CRI log file (as crictl and the kubelet do), -f follows it.

Lines are ``<RFC3339Nano> <stdout|stderr> <P|F> <msg>``; P chunks are joined with
the following line.  Following survives rotation (the kubelet renames the file
and the runtime reopens a new one) and stops once the container is no longer running.
"""
from __future__ import annotations

import datetime
import os
import re
import sys
import time

from cri_api.v1 import api_pb2 as api

POLL = 0.2
_LINE = re.compile(rb"^(\S+) (stdout|stderr) ([PF])(?::\S*)? ?(.*)$", re.S)


def add_parsers(sub) -> None:
    p = sub.add_parser("logs", help="fetch the logs of a container")
    p.add_argument("id")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, default=-1, help="number of lines from the end (-1: all)")
    p.add_argument("--timestamps", "-t", action="store_true")
    p.add_argument("--since", default="", help="RFC3339 time or a duration like 10s, 5m, 1h")
    p.add_argument("--limit-bytes", type=int, default=-1)
    p.set_defaults(func=logs)


def parse_line(raw: bytes):
    """(timestamp, stream, partial, message) or None for a malformed line."""
    m = _LINE.match(raw.rstrip(b"\n"))
    if not m:
        return None
    return m.group(1).decode(), m.group(2).decode(), m.group(3) == b"P", m.group(4)


def parse_time(ts: str) -> float:
    """RFC3339Nano -> epoch seconds (fractions beyond microseconds are dropped)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", ts)
    if not m:
        raise ValueError(f"bad timestamp {ts!r}")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()


def since_epoch(since: str) -> float:
    if not since:
        return 0.0
    m = re.fullmatch(r"(\d+)(s|m|h)", since)
    if m:
        return time.time() - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    return parse_time(since)


class Printer:
    """Joins partial chunks and writes whole lines to stdout/stderr."""

    def __init__(self, timestamps: bool, since: float, limit: int, out=None, err=None) -> None:
        self.timestamps, self.since, self.limit = timestamps, since, limit
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.pending: dict[str, bytes] = {}
        self.written = 0

    def feed(self, raw: bytes) -> bool:
        """False once --limit-bytes is reached."""
        parsed = parse_line(raw)
        if parsed is None:
            return True
        ts, stream, partial, msg = parsed
        if partial:
            self.pending[stream] = self.pending.get(stream, b"") + msg
            return True
        msg = self.pending.pop(stream, b"") + msg
        if self.since and parse_time(ts) < self.since:
            return True
        line = (ts.encode() + b" " if self.timestamps else b"") + msg + b"\n"
        if self.limit >= 0:
            line = line[:max(0, self.limit - self.written)]
        (self.out if stream == "stdout" else self.err).write(line)
        self.written += len(line)
        return self.limit < 0 or self.written < self.limit

    def flush(self) -> None:
        self.out.flush()
        self.err.flush()


def logs(c, opts) -> int:
    st = c.call(c.runtime.ContainerStatus, api.ContainerStatusRequest(container_id=opts.id)).status
    if not st.log_path:
        print(f"container {opts.id} has no log path", file=sys.stderr)
        return 1
    printer = Printer(opts.timestamps, since_epoch(opts.since), opts.limit_bytes)
    try:
        f = open(st.log_path, "rb")
    except FileNotFoundError:
        f = None
    pos_inode = None
    if f is not None:
        lines = f.readlines()
        if lines and not lines[-1].endswith(b"\n"):
            f.seek(-len(lines.pop()), os.SEEK_CUR)      # half-written line: read it again later
        if opts.tail >= 0:
            lines = lines[len(lines) - opts.tail:] if opts.tail else []
        for raw in lines:
            if not printer.feed(raw):
                printer.flush()
                return 0
        printer.flush()
        pos_inode = os.fstat(f.fileno()).st_ino
    if not opts.follow:
        return 0
    return _follow(c, opts.id, st.log_path, f, pos_inode, printer)


def _follow(c, cid: str, path: str, f, inode, printer: Printer) -> int:
    last_check = 0.0
    buf = b""
    while True:
        chunk = f.read() if f else b""
        if chunk:
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                if not printer.feed(raw + b"\n"):
                    printer.flush()
                    return 0
            printer.flush()
            continue
        try:
            st = os.stat(path)
            if inode != st.st_ino:            # rotated: drain the old file, then the new one
                if f:
                    f.close()
                f, inode, buf = open(path, "rb"), st.st_ino, b""
                continue
        except FileNotFoundError:
            pass
        now = time.monotonic()
        if now - last_check > 1.0:            # the kubelet's rule: stop once not running
            last_check = now
            state = c.call(c.runtime.ContainerStatus, api.ContainerStatusRequest(container_id=cid)).status.state
            if state != api.CONTAINER_RUNNING:
                chunk = f.read() if f else b""
                for raw in (buf + chunk).split(b"\n"):
                    if raw:
                        printer.feed(raw + b"\n")
                printer.flush()
                return 0
        time.sleep(POLL)
