"""Minimal typed access to a BPF map by fd (bpf(2) through sysbpf.py: no bcc in the agent).

bcc's own table classes are built from its parse of the C structs; we go
through our ctypes mirrors instead, so the layout we write is the one
maps.py declares (and a test checks against the C side).
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
from typing import Any, Iterator, Optional, Type

from ..errors import DatapathError, ResourceExhausted
from . import sysbpf
from .sysbpf import MAP_DELETE_ELEM, MAP_GET_NEXT_KEY, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM

NCPUS = sysbpf.possible_cpus()


def _fail(op: str, name: str, code: int) -> None:
    if code in (errno.E2BIG, errno.ENOMEM, errno.ENOSPC):
        raise ResourceExhausted(f"BPF map {name} is full ({op}: {os.strerror(code)})")
    raise DatapathError(f"BPF map {name}: {op} failed: {os.strerror(code) if code else 'unknown error'}")


class BpfMap:
    def __init__(self, fd: int, name: str, key_type: Type[ct.Structure] | Type, value_type: Type,
                 percpu: bool = False):
        self.fd, self.name, self.key_type, self.value_type, self.percpu = fd, name, key_type, value_type, percpu
        self._attr = sysbpf.ElemAttr(map_fd=fd)

    def _elem(self, cmd: int, key, value=None, flags: int = 0) -> int:
        a = self._attr
        a.key = ct.addressof(key) if key is not None else 0
        a.value = ct.addressof(value) if value is not None else 0
        a.flags = flags
        return sysbpf.elem(cmd, a)

    def _value_buffer(self):
        if self.percpu:
            return (self.value_type * NCPUS)()  # each CPU's value is 8-byte aligned (ours all are)
        return self.value_type()

    def update(self, key, value) -> None:
        res = self._elem(MAP_UPDATE_ELEM, key, value)
        if res < 0:
            _fail("update", self.name, -res)

    def delete(self, key) -> bool:
        """Delete; a missing key is not an error (idempotent removal)."""
        res = self._elem(MAP_DELETE_ELEM, key)
        if res < 0:
            if res == -errno.ENOENT:
                return False
            _fail("delete", self.name, -res)
        return True

    def lookup(self, key) -> Optional[object]:
        value = self._value_buffer()
        if self._elem(MAP_LOOKUP_ELEM, key, value) < 0:
            return None
        return value

    def keys(self) -> Iterator:
        key, nxt = self.key_type(), self.key_type()
        if self._elem(MAP_GET_NEXT_KEY, None, nxt) < 0:
            return
        while True:
            ct.memmove(ct.byref(key), ct.byref(nxt), ct.sizeof(key))
            yield self._copy(key)
            if self._elem(MAP_GET_NEXT_KEY, key, nxt) < 0:
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
        token = ct.c_uint32(0)
        attr = sysbpf.BatchAttr(out_batch=ct.addressof(token), keys=ct.addressof(keys),
                                values=ct.addressof(values), map_fd=self.fd)
        total, first = 0, True
        while True:
            attr.count = batch
            attr.in_batch = 0 if first else ct.addressof(token)
            try:
                sysbpf.call(sysbpf.MAP_LOOKUP_BATCH, ct.byref(attr), ct.sizeof(attr))
                code = 0
            except sysbpf.BpfError as exc:
                code = exc.errno or errno.EIO
            total += attr.count
            if code == 0:
                first = False
                continue
            if code == errno.ENOENT:
                return total  # the last batch
            if first and code in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                return sum(1 for _ in self.keys())
            _fail("lookup batch", self.name, code)

    def zero(self, key) -> None:
        self.update(key, self._value_buffer())

    def _copy(self, key):
        out = self.key_type()
        ct.memmove(ct.byref(out), ct.byref(key), ct.sizeof(key))
        return out
