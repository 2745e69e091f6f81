"""The BTF reader behind the netfilter program's struct offsets."""
from __future__ import annotations

import os
import struct

import pytest

from netpol.datapath.btf import NF_MEMBERS, VMLINUX, Btf, BtfError, nf_defines

needs_vmlinux = pytest.mark.skipif(not os.access(VMLINUX, os.R_OK), reason=f"{VMLINUX} not readable")


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    return Btf.load()


@needs_vmlinux
def test_offsets_of_well_known_members(vmlinux):
    # layouts fixed by the wire format or by years of ABI: the parser must find exactly these
    assert vmlinux.offsetof("iphdr", "saddr") == 12 and vmlinux.offsetof("iphdr", "daddr") == 16
    assert vmlinux.offsetof("ipv6hdr", "daddr") == 24
    assert vmlinux.offsetof("tcphdr", "dest") == 2
    assert vmlinux.offsetof("nf_conntrack_tuple", "src.u3") == 0
    assert vmlinux.offsetof("nf_conntrack_tuple", "dst.u3") == 20  # src: u3 (16), u (2), l3num (2)
    assert vmlinux.offsetof("nf_conntrack_tuple", "dst.u") == 36
    assert vmlinux.offsetof("bpf_nf_ctx", "skb") == 8  # what nf_post_dnat.c's struct pw_nf_ctx assumes


@needs_vmlinux
def test_nf_defines_are_sane_for_this_kernel(vmlinux):
    d = nf_defines(vmlinux)
    assert set(d) == set(NF_MEMBERS)
    assert d["SKB_DATA_LEN_OFF"] == d["SKB_LEN_OFF"] + 4  # `unsigned int len, data_len;`
    size = vmlinux.types[vmlinux.by_name[(4, "sk_buff")]].size_or_type
    for name in ("SKB_DATA_OFF", "SKB_LEN_OFF", "SKB_MARK_OFF", "SKB_NFCT_OFF"):
        assert 0 < d[name] < size and d[name] % 4 == 0, name
    assert d["SKB_DATA_OFF"] % 8 == 0 and d["SKB_NFCT_OFF"] % 8 == 0  # pointers
    assert d["CT_TUPLE_OFF"] == 16  # after struct hlist_nulls_node (two pointers)


def _blob(types: list[bytes], strings: bytes) -> bytes:
    data = b"".join(types)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(data), len(data), len(strings)) + data + strings


def _t(name_off: int, kind: int, vlen: int, size: int, kind_flag: int = 0) -> bytes:
    return struct.pack("<III", name_off, kind << 24 | vlen | kind_flag << 31, size)


def test_anonymous_members_arrays_and_errors():
    #            1    5      11   15     21 23
    strings = b"\0int\0outer\0arr\0inner\0x\0bits\0"
    types = [
        _t(1, 1, 0, 4) + struct.pack("<I", 32),                       # 1: int
        _t(0, 3, 0, 0) + struct.pack("<III", 1, 1, 2),                 # 2: int[2]
        _t(15, 4, 2, 8) + struct.pack("<III", 21, 1, 0) + struct.pack("<III", 23, 1, 35),  # 3: inner {x; bits:3}
        _t(0, 5, 1, 8) + struct.pack("<III", 0, 3, 0),                 # 4: anonymous union { struct inner }
        _t(0, 8, 0, 3),                                                # 5: typedef -> inner (name "")
        _t(5, 4, 3, 32, kind_flag=1) + struct.pack("<III", 11, 2, 0)   # 6: outer { int arr[2];
        + struct.pack("<III", 0, 4, 64) + struct.pack("<III", 15, 5, 128),  # union {...}; inner_t inner; }
    ]
    btf = Btf(_blob(types, strings))
    assert btf.offsetof("outer", "arr") == 0
    assert btf.offsetof("outer", "x") == 8          # found through the anonymous union
    assert btf.offsetof("outer", "inner.x") == 16   # through a typedef
    with pytest.raises(BtfError, match="bitfield"):
        btf.offsetof("outer", "bits")
    with pytest.raises(BtfError, match="no member 'y'"):
        btf.offsetof("outer", "inner.y")
    with pytest.raises(BtfError, match="not in the kernel"):
        btf.offsetof("missing", "x")
    with pytest.raises(BtfError, match="not BTF"):
        Btf(b"\0" * 32)
    with pytest.raises(BtfError, match="reading"):
        Btf.load("/nonexistent/vmlinux")
