"""The local terminal under -t: raw mode for the session's length, and its size."""
from __future__ import annotations

import fcntl
import json
import struct
import termios
import tty


class RawMode:
    """tty.setraw on enter, the saved attributes back on exit (every exit: the caller holds
    this in a with-block that signals and errors unwind through)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = None      # termios attributes while in raw mode

    def __enter__(self) -> "RawMode":
        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


def size(fd: int) -> tuple[int, int] | None:
    """(width, height) of the terminal on fd; None when fd is not one or reports 0x0."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (cols, rows) if cols and rows else None


def resize_message(width: int, height: int) -> bytes:
    """One event on the resize stream: remotecommand's TerminalSize, newline-terminated."""
    return json.dumps({"Width": width, "Height": height}, separators=(",", ":")).encode() + b"\n"
