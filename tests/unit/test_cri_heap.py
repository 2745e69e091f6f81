"""The shim's heap trimmer returns memory freed inside malloc's heap to the kernel."""
from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap
import threading

import pytest

from cri.server.heap import start_trimmer

# Runs in its own process so the measurement sees only its own heap.  64 MiB in 4 KiB blocks
# (below the mmap threshold: they come from the heap), all freed except one block allocated
# last -- which pins the heap's top, so free() alone cannot give the pages back.
PROGRAM = textwrap.dedent("""
    import ctypes, sys, time
    from cri.server.heap import start_trimmer
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    def rss_mib():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
    blocks = [libc.malloc(4096) for _ in range(16384)]
    for b in blocks:
        libc.memset(b, 1, 4096)
    pin = libc.malloc(4096)
    for b in blocks:
        libc.free(b)
    before = rss_mib()
    stop = start_trimmer(interval=float(sys.argv[1]))
    time.sleep(0.5)
    print(before, rss_mib())
    if stop is not None:
        stop.set()
""")


def _run(interval: float) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(interval)], capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_trim"), reason="needs glibc")
def test_trimmer_gives_freed_heap_back():
    before, after = _run(0.05)
    assert before - after > 32, (before, after)


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_trim"), reason="needs glibc")
def test_without_a_trim_the_freed_heap_stays():
    """The control: what the first test measures is the trimmer's doing, not free()'s."""
    before, after = _run(3600)
    assert before - after < 8, (before, after)


def test_stop_ends_the_thread():
    """Setting the event ends the trimmer's thread (it must not outlive a stopped shim)."""
    before = set(threading.enumerate())
    stop = start_trimmer(interval=0.01)
    if stop is None:
        pytest.skip("not glibc")
    trimmers = [t for t in threading.enumerate() if t.name == "heap-trim" and t not in before]
    assert len(trimmers) == 1 and trimmers[0].is_alive()
    stop.set()
    for t in trimmers:
        t.join(2)
    assert not any(t.is_alive() for t in trimmers)
