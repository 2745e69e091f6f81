"""Minimal typed access to a BPF map by fd (through libbcc's syscall wrappers).

bcc's own table classes are built from its parse of the C structs; we go
through our ctypes mirrors instead, so the layout we write is the one
maps.py declares (and a test checks against the C side).
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
from typing import Any, Iterator, Optional, Type

from bcc.libbcc import lib
from bcc.utils import get_possible_cpus

from ..errors import DatapathError, ResourceExhausted

NCPUS = len(get_possible_cpus())


def _fail(op: str, name: str) -> None:
    code = ct.get_errno()
    if code in (errno.E2BIG, errno.ENOMEM, errno.ENOSPC):
        raise ResourceExhausted(f"BPF map {name} is full ({op}: {os.strerror(code)})")
    raise DatapathError(f"BPF map {name}: {op} failed: {os.strerror(code) if code else 'unknown error'}")


class BpfMap:
    def __init__(self, fd: int, name: str, key_type: Type[ct.Structure] | Type, value_type: Type,
                 percpu: bool = False):
        self.fd, self.name, self.key_type, self.value_type, self.percpu = fd, name, key_type, value_type, percpu

    def _value_buffer(self):
        if self.percpu:
            return (self.value_type * NCPUS)()  # each CPU's value is 8-byte aligned (ours all are)
        return self.value_type()

    def update(self, key, value) -> None:
        if lib.bpf_update_elem(self.fd, ct.byref(key), ct.byref(value), 0) < 0:
            _fail("update", self.name)

    def delete(self, key) -> bool:
        """Delete; a missing key is not an error (idempotent removal)."""
        if lib.bpf_delete_elem(self.fd, ct.byref(key)) < 0:
            if ct.get_errno() == errno.ENOENT:
                return False
            _fail("delete", self.name)
        return True

    def lookup(self, key) -> Optional[object]:
        value = self._value_buffer()
        if lib.bpf_lookup_elem(self.fd, ct.byref(key), ct.byref(value)) < 0:
            return None
        return value

    def keys(self) -> Iterator:
        key, nxt = self.key_type(), self.key_type()
        if lib.bpf_get_next_key(self.fd, None, ct.byref(nxt)) < 0:
            return
        while True:
            ct.memmove(ct.byref(key), ct.byref(nxt), ct.sizeof(key))
            yield self._copy(key)
            if lib.bpf_get_next_key(self.fd, ct.byref(key), ct.byref(nxt)) < 0:
                return

    def items(self) -> Iterator[tuple[object, object]]:
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def sum(self, key) -> Any:
        """A per-CPU value summed over CPUs (counters); zeros for an entry not there."""
        total = self.value_type()
        values: Any = self.lookup(key)
        for name, _ in self.value_type._fields_:
            setattr(total, name, sum(getattr(v, name) for v in values or ()))
        return total

    def count(self, batch: int = 4096) -> int:
        """The number of entries, by BPF_MAP_LOOKUP_BATCH (``batch`` per syscall: a full pw_ct
        of 262,144 entries is 64 calls).  Kernels without batch lookups for the map type get
        one get_next_key call per entry instead."""
        keys, values = (self.key_type * batch)(), (self.value_type * batch)()
        token, n = ct.c_uint32(0), ct.c_uint32(0)
        total, first = 0, True
        while True:
            n.value = batch
            res = lib.bpf_lookup_batch(self.fd, None if first else ct.byref(token), ct.byref(token),
                                       ct.byref(keys), ct.byref(values), ct.byref(n))
            code = ct.get_errno()
            total += n.value
            if res == 0:
                first = False
                continue
            if code == errno.ENOENT:
                return total  # the last batch
            if first and code in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                return sum(1 for _ in self.keys())
            _fail("lookup batch", self.name)

    def zero(self, key) -> None:
        self.update(key, self._value_buffer())

    def _copy(self, key):
        out = self.key_type()
        ct.memmove(ct.byref(out), ct.byref(key), ct.sizeof(key))
        return out
