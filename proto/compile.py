"""Generate the Python modules for every proto/*.proto with grpcio-tools.

    python -m proto.compile          # only what is out of date
    python -m proto.compile --force

Run from anywhere; protos are compiled with the repository root as include
path, so generated code imports its siblings as ``proto.<name>_pb2``.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _outputs(proto: str) -> list[str]:
    base = proto[:-len(".proto")]
    return [base + "_pb2.py", base + "_pb2_grpc.py", base + "_pb2.pyi"]


def stale(proto: str) -> bool:
    mtime = os.path.getmtime(proto)
    return any(not os.path.exists(out) or os.path.getmtime(out) < mtime for out in _outputs(proto))


def compile_all(force: bool = False) -> list[str]:
    from grpc_tools import protoc  # build-time dependency only
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    done = []
    for proto in sorted(glob.glob(os.path.join(HERE, "*.proto"))):
        if not force and not stale(proto):
            continue
        rel = os.path.relpath(proto, ROOT)
        args = ["grpc_tools.protoc", f"-I{ROOT}", f"-I{well_known}", f"--python_out={ROOT}",
                f"--pyi_out={ROOT}", f"--grpc_python_out={ROOT}", rel]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {rel}")
        done.append(rel)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true")
    opts = parser.parse_args(argv)
    for rel in compile_all(opts.force):
        print(f"proto: compiled {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
