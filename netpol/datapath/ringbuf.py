"""Consume a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through its mmap'ed pages.

The layout is the kernel's ABI (kernel/bpf/ringbuf.c): one page with the
consumer position, which we write; then, read-only, one page with the producer
position and the data area, mapped twice in a row so that a record that wraps
is contiguous.  Each record has an 8-byte header: its length, with a busy bit
while the producer still writes it and a discard bit for a record to skip,
and records are 8-byte aligned.  epoll on the map fd wakes us when data comes.
"""
from __future__ import annotations

import mmap
import select
import struct
from typing import Callable

from . import sysbpf

_BUSY, _DISCARD = 1 << 31, 1 << 30
_HEADER = 8


class RingBuffer:
    def __init__(self, fd: int, callback: Callable[[memoryview], None]):
        info = sysbpf.map_info(fd)
        if info.type != sysbpf.MAP_TYPE_RINGBUF:
            raise ValueError(f"map fd {fd} is not a ring buffer (type {info.type})")
        page = mmap.PAGESIZE
        self._size = info.max_entries  # a power of two, a multiple of the page size
        self._mask = self._size - 1
        self._callback = callback
        self._consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(fd, page + 2 * self._size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data = memoryview(self._producer)[page:]
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records; hand each to the callback; return how many."""
        self._epoll.poll(timeout_ms / 1000)
        return self.consume()

    def consume(self) -> int:
        (cons,) = struct.unpack_from("=Q", self._consumer, 0)
        count = 0
        while True:
            (prod,) = struct.unpack_from("=Q", self._producer, 0)
            if cons >= prod:
                break
            while cons < prod:
                (length,) = struct.unpack_from("=I", self._data, cons & self._mask)
                if length & _BUSY:
                    struct.pack_into("=Q", self._consumer, 0, cons)
                    return count
                size = length & ~(_BUSY | _DISCARD)
                if not length & _DISCARD:
                    start = (cons & self._mask) + _HEADER
                    self._callback(self._data[start:start + size])
                    count += 1
                cons += (size + _HEADER + 7) & ~7
                struct.pack_into("=Q", self._consumer, 0, cons)  # the space is the producer's again
        return count

    def close(self) -> None:
        self._epoll.close()
        self._data.release()
        self._producer.close()
        self._consumer.close()
