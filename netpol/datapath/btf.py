"""Struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

The netfilter program reads sk_buff and nf_conn with bpf_probe_read_kernel
(netfilter programs have no direct packet access and no skb helpers), so it
needs the offsets of a few members.  The kernel headers on a node need not
match the running kernel, so the offsets come from its BTF and reach the
program as -D defines.  Only what that needs is parsed: the type section,
structs, unions, arrays and the modifiers and typedefs in between.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from ..errors import DatapathError

VMLINUX = "/sys/kernel/btf/vmlinux"
_MAGIC = 0xEB9F
# kind -> bytes of kind-specific data after the 12-byte common header (per vlen item if a tuple)
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF, _VOLATILE, _CONST, _RESTRICT = range(1, 12)
_FUNC, _FUNC_PROTO, _VAR, _DATASEC, _FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = range(12, 20)
_EXTRA = {_INT: 4, _ARRAY: 12, _VAR: 4, _DECL_TAG: 4}
_PER_ITEM = {_STRUCT: 12, _UNION: 12, _ENUM: 8, _FUNC_PROTO: 8, _DATASEC: 12, _ENUM64: 12}
_SKIP = (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG)


class BtfError(DatapathError):
    """The BTF is missing, malformed, or lacks a member we need."""


class Member(NamedTuple):
    name: str
    type_id: int
    bit_offset: int


class _Type(NamedTuple):
    kind: int
    name: str
    size_or_type: int
    members: tuple[Member, ...] = ()
    elem_type: int = 0  # arrays


class Btf:
    def __init__(self, raw: bytes):
        if len(raw) < 24:
            raise BtfError("BTF too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", raw)
        if magic != _MAGIC:
            raise BtfError(f"not BTF (magic {magic:#x}; only little-endian BTF is read)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", raw, 8)
        self._strings = raw[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types: list[_Type | None] = [None]  # type ids start at 1
        self.by_name: dict[tuple[int, str], int] = {}
        self._parse(raw[hdr_len + type_off:hdr_len + type_off + type_len])

    @classmethod
    def load(cls, path: str = VMLINUX) -> "Btf":
        try:
            with open(path, "rb") as f:
                return cls(f.read())
        except OSError as exc:
            raise BtfError(f"reading {path}: {exc.strerror}") from exc

    def _name(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode()

    def _parse(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
            pos += 12
            kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            name = self._name(name_off)
            members: tuple[Member, ...] = ()
            elem = 0
            if kind in (_STRUCT, _UNION):
                items = []
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", data, pos + 12 * i)
                    items.append(Member(self._name(m_name), m_type, m_off & 0xFFFFFF if kind_flag else m_off))
                members = tuple(items)
            elif kind == _ARRAY:
                elem = struct.unpack_from("<I", data, pos)[0]
            elif kind not in _EXTRA and kind not in _PER_ITEM and kind not in (_PTR, _FWD, _FUNC, _FLOAT, *_SKIP):
                raise BtfError(f"unknown BTF kind {kind}")
            pos += _EXTRA.get(kind, 0) + _PER_ITEM.get(kind, 0) * vlen
            self.types.append(_Type(kind, name, size_or_type, members, elem))
            if name and kind in (_STRUCT, _UNION):
                self.by_name.setdefault((kind, name), len(self.types) - 1)

    def _resolve(self, type_id: int) -> _Type:
        t = self.types[type_id]
        while t is not None and t.kind in _SKIP:
            t = self.types[t.size_or_type]
        if t is None:
            raise BtfError(f"BTF type {type_id} is void")
        return t

    def _find(self, t: _Type, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of member ``name``, looking into anonymous structs and unions."""
        for m in t.members:
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name:
                inner = self._resolve(m.type_id)
                found = self._find(inner, name) if inner.kind in (_STRUCT, _UNION) else None
                if found is not None:
                    return m.bit_offset + found[0], found[1]
        return None

    def offsetof(self, struct_name: str, path: str) -> int:
        """Byte offset of a member path ("tuple.dst.u3") in ``struct struct_name``."""
        type_id = self.by_name.get((_STRUCT, struct_name)) or self.by_name.get((_UNION, struct_name))
        if type_id is None:
            raise BtfError(f"struct {struct_name} not in the kernel's BTF")
        t, bits = self._resolve(type_id), 0
        for part in path.split("."):
            while t.kind == _ARRAY:  # a path through an array names its element 0
                t = self._resolve(t.elem_type)
            found = self._find(t, part) if t.kind in (_STRUCT, _UNION) else None
            if found is None:
                raise BtfError(f"{struct_name}.{path}: no member {part!r} in the kernel's BTF")
            bits += found[0]
            t = self._resolve(found[1])
        if bits % 8:
            raise BtfError(f"{struct_name}.{path} is a bitfield")
        return bits // 8


# The members the netfilter program reads: define name -> (struct, member path).
NF_MEMBERS = {
    "SKB_DATA_OFF": ("sk_buff", "data"),
    "SKB_LEN_OFF": ("sk_buff", "len"),
    "SKB_DATA_LEN_OFF": ("sk_buff", "data_len"),
    "SKB_MARK_OFF": ("sk_buff", "mark"),
    "SKB_NFCT_OFF": ("sk_buff", "_nfct"),
    "CT_TUPLEHASH_OFF": ("nf_conn", "tuplehash"),
    "CT_TUPLE_OFF": ("nf_conntrack_tuple_hash", "tuple"),
    "TUPLE_DST_ADDR_OFF": ("nf_conntrack_tuple", "dst.u3"),
    "TUPLE_DST_PORT_OFF": ("nf_conntrack_tuple", "dst.u"),
}


def nf_defines(btf: Btf | None = None) -> dict[str, int]:
    """The -D defines of netpol/bpf/nf_post_dnat.c, from the running kernel."""
    btf = btf or Btf.load()
    return {name: btf.offsetof(s, path) for name, (s, path) in NF_MEMBERS.items()}
