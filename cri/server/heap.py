"""Give the heap's free pages back to the kernel while the shim idles.

glibc's malloc keeps memory freed by a burst of work (protobuf messages, CNI results, image
manifests) inside its heaps and returns only the top of the main heap on its own; a long-lived
daemon then sits on megabytes it will not need until the next burst.  malloc_trim(0) releases
every whole free page of every arena (madvise), so a trim every few seconds keeps the idle
footprint at what is live -- as Go's background scavenger does for containerd.  It walks the
free lists only: well under a millisecond for a heap this size.
"""
from __future__ import annotations

import ctypes
import threading

INTERVAL = 5.0


def start_trimmer(interval: float = INTERVAL) -> threading.Event | None:
    """Trim every `interval` seconds on a daemon thread; set the returned event to stop.
    None where malloc_trim does not exist (not glibc)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            trim(0)

    threading.Thread(target=loop, name="heap-trim", daemon=True).start()
    return stop
