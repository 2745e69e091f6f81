"""`python -m netpol.datapath.compile --out PATH`: compile the programs with bcc
and store them as an object the agent loads without bcc (objects.py).

Runs in its own short-lived process (the agent starts it on a cold cache;
`podwire-netpol compile` runs it ahead of time), so LLVM is loaded only for
the seconds a compile takes.  bcc creates the maps a program declares while
it compiles, and pins the pinned ones: here they are pinned in a scratch
directory on the bpf filesystem, removed afterwards, so compiling never
touches the maps a running agent enforces with.
"""
from __future__ import annotations

import argparse
import ctypes as ct
import os
import sys
import tempfile

from ..errors import DatapathError
from . import btf, objects, sysbpf
from .loader import BPFFS, NF_PROGRAM, PROGRAMS, ensure_bpffs, source_text


def bcc_module(pin_dir: str, bpf_dir: str | None = None):
    """(bcc's BPF object of our sources with maps pinned under ``pin_dir``, why the netfilter
    program is left out or "").  Also the kernel tests' view of the compiled structs."""
    from bcc import BPF

    cflags = [f'-DPIN_DIR="{pin_dir}"', "-Wno-unused-function"]
    nf_error = ""
    try:
        cflags += [f"-D{name}={value}" for name, value in btf.nf_defines().items()]
    except btf.BtfError as exc:
        nf_error = f"no kernel BTF for the post-DNAT check: {exc}"
    try:
        return BPF(text=source_text(bpf_dir).encode(), cflags=cflags), nf_error
    except Exception as exc:  # bcc raises bare Exception for compile errors
        raise DatapathError(f"compiling BPF programs: {exc}") from exc


def _pinned_ids(pin_dir: str) -> dict[int, str]:
    """Map id -> pin file name of what bcc pinned."""
    out = {}
    for name in os.listdir(pin_dir):
        fd = sysbpf.obj_get(os.path.join(pin_dir, name))
        try:
            out[sysbpf.map_info(fd).id] = name
        finally:
            os.close(fd)
    return out


def build(bpf_dir: str | None = None) -> objects.Objects:
    from bcc.libbcc import lib

    source = source_text(bpf_dir)
    ensure_bpffs(BPFFS)
    scratch = tempfile.mkdtemp(prefix="podwire-compile-", dir=BPFFS)
    try:
        bpf, nf_error = bcc_module(scratch, bpf_dir)
        try:
            pinned = _pinned_ids(scratch)
            by_fd, maps = {}, {}
            for name in _table_names(bpf, lib):
                fd = bpf[name.encode()].map_fd
                info = sysbpf.map_info(fd)
                by_fd[fd] = name
                maps[name] = objects.MapSpec(info.type, info.key_size, info.value_size, info.max_entries,
                                             info.map_flags, pinned.get(info.id))
            wanted = list(PROGRAMS) + ([] if nf_error else [NF_PROGRAM])
            programs = {}
            for fn in wanted:
                insns = bpf.dump_func(fn.encode())
                refs = []
                for index, fd in objects.map_references(insns):
                    if fd not in by_fd:
                        raise DatapathError(f"{fn}: instruction {index} loads fd {fd}, which is no map of ours")
                    refs.append((index, by_fd[fd]))
                programs[fn] = objects.ProgSpec(insns, refs)
            license = ct.string_at(lib.bpf_module_license(bpf.module)).decode()
        finally:
            bpf.cleanup()
    finally:
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
        os.rmdir(scratch)
    return objects.Objects(objects.cache_key(source), license, maps, programs, nf_error)


def _table_names(bpf, lib) -> list[str]:
    """Every map the module declares (bcc opens its tables lazily, by name)."""
    lib.bpf_num_tables.restype, lib.bpf_num_tables.argtypes = ct.c_size_t, [ct.c_void_p]
    lib.bpf_table_name.restype, lib.bpf_table_name.argtypes = ct.c_char_p, [ct.c_void_p, ct.c_ulonglong]
    return [lib.bpf_table_name(bpf.module, i).decode() for i in range(lib.bpf_num_tables(bpf.module))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netpol.datapath.compile")
    p.add_argument("--out", required=True, help="where to write the object (JSON)")
    p.add_argument("--bpf-dir", default=None, help="the C sources (default: the installed ones)")
    opts = p.parse_args(argv)
    try:
        objects.write(opts.out, build(opts.bpf_dir))
    except (DatapathError, OSError) as exc:
        print(f"podwire-netpol compile: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
