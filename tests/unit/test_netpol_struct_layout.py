"""The ctypes mirrors in netpol/datapath/maps.py have the C structs' layout, by the compiler's word:
netpol/bpf/lib/maps.h is compiled as it is (with the bcc-only macros stubbed) and every mirrored
field's offsetof and sizeof, and each struct's sizeof and alignment, come back through the
asm-offsets trick the kernel uses for the same job (an `asm("...%c0" :: "i"(offsetof(...)))` per
value, read from `cc -S -nostdinc` output: no libc or kernel headers, assembler or linker).

The host compiler lays these structs out as the BPF target does: they hold only fixed-width
integers and arrays of them, 8-byte aligned u64 on both (LP64).  tests/netns/test_netpol_bpf.py
checks the same mirrors against bcc's view of the program as loaded (root)."""
from __future__ import annotations

import ctypes as ct
import inspect
import os
import re
import shutil
import subprocess

import pytest

from netpol.datapath import maps
from netpol.datapath.loader import BPF_DIR

COMPILERS = ("cc", "gcc", "clang", "gcc-12", "gcc-13", "gcc-14")   # linux-headers-amd64 brings gcc-12

# common.h includes the kernel's uapi headers by bcc's paths; maps.h needs only their integer
# types, defined here exactly as the kernel does (asm-generic/int-ll64.h, linux/types.h).
UAPI_BPF_STUB = """\
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
"""
PRELUDE = """\
#define BPF_TABLE_PINNED(...)
#define BPF_RINGBUF_OUTPUT(...)
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define PIN_DIR "/sys/fs/bpf/layout-test"
#include "lib/maps.h"
#define PW_EMIT(tag, value) __asm__ volatile("\\n->" tag " %c0" :: "i"((unsigned long)(value)))
"""


def mirrors_in_module() -> dict[str, type]:
    return {name: cls for name, cls in inspect.getmembers(maps, inspect.isclass)
            if issubclass(cls, ct.Structure) and cls.__module__ == maps.__name__}


def program() -> str:
    lines = [PRELUDE, "void pw_layout(void)", "{"]
    for struct, mirror in maps.MIRRORS.items():
        t = f"struct {struct}"
        lines.append(f'\tPW_EMIT("{struct} sizeof", sizeof({t}));')
        lines.append(f'\tPW_EMIT("{struct} alignof", _Alignof({t}));')
        for field, _ in mirror._fields_:
            lines.append(f'\tPW_EMIT("{struct} {field} offsetof", __builtin_offsetof({t}, {field}));')
            lines.append(f'\tPW_EMIT("{struct} {field} sizeof", sizeof((({t} *)0)->{field}));')
    lines.append("}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict[str, int]:
    """'<struct> sizeof', '<struct> <field> offsetof', ... -> the compiler's value."""
    cc = next((shutil.which(c) for c in COMPILERS if shutil.which(c)), None)
    if cc is None:
        pytest.skip(f"needs a C compiler (one of {', '.join(COMPILERS)})")
    work = tmp_path_factory.mktemp("layout")
    (work / "uapi" / "linux").mkdir(parents=True)
    (work / "uapi" / "linux" / "bpf.h").write_text(UAPI_BPF_STUB)
    (work / "uapi" / "linux" / "pkt_cls.h").write_text("")
    (work / "layout.c").write_text(program())
    proc = subprocess.run([cc, "-S", "-O0", "-nostdinc", "-std=gnu11", "-Wall", "-Werror", "-Wno-unused-function",
                           f"-I{work}", f"-I{BPF_DIR}", "-o", "-", str(work / "layout.c")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{cc} could not compile the layout program:\n{proc.stderr}"
    found = {m.group(1): int(m.group(2)) for m in re.finditer(r"->(.+?) [$#]?(\d+)\s*$", proc.stdout, re.M)}
    assert found, proc.stdout
    return found


def test_every_mirror_is_checked():
    assert set(maps.MIRRORS.values()) == set(mirrors_in_module().values())
    with open(os.path.join(BPF_DIR, "lib", "maps.h")) as f:
        in_header = set(re.findall(r"^struct (\w+) \{", f.read(), re.M))
    assert set(maps.MIRRORS) == in_header


@pytest.mark.parametrize("struct", list(maps.MIRRORS))
def test_mirror_matches_the_compiled_struct(c_layout, struct):
    mirror = maps.MIRRORS[struct]
    want = {"sizeof": c_layout[f"{struct} sizeof"], "alignof": c_layout[f"{struct} alignof"]}
    got = {"sizeof": ct.sizeof(mirror), "alignof": ct.alignment(mirror)}
    for field, _ in mirror._fields_:
        want[field] = (c_layout[f"{struct} {field} offsetof"], c_layout[f"{struct} {field} sizeof"])
        got[field] = (getattr(mirror, field).offset, getattr(mirror, field).size)
    assert got == want, f"{mirror.__name__} vs struct {struct}: (offset, size) per field"
    # The mirrored fields cover every byte of the C struct, so no C field can hide in between.
    covered = sorted((getattr(mirror, f).offset, getattr(mirror, f).size) for f, _ in mirror._fields_)
    end = 0
    for offset, size in covered:
        assert offset == end, f"struct {struct}: bytes {end}..{offset} not mirrored"
        end = offset + size
    assert end == want["sizeof"], f"struct {struct}: bytes {end}..{want['sizeof']} not mirrored"
