"""The image store's files: blobs by digest and unpacked layers by diff_id.

    <root>/blobs/sha256/<hex>     manifests, indexes and configs (verified before written)
    <root>/layers/<hex>/          one unpacked layer per diff_id: an overlayfs lowerdir
    <root>/ingest/                downloads in progress
    <root>/tmp/                   layers being unpacked
    <root>/trash/                 removed content, deleted outside the store lock

Everything appears atomically (written or unpacked aside, then renamed into place), so
a crash leaves only leftovers in ingest/, tmp/ and trash/, which :meth:`sweep` clears.
Compressed layer blobs are not kept: once unpacked and verified they have no further use.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import BinaryIO, Iterator

from cni import atomic

from . import digest as digests


class Content:
    def __init__(self, root: str) -> None:
        self.root = root
        for sub in ("blobs", "layers", "ingest", "tmp", "trash"):
            os.makedirs(os.path.join(root, sub), mode=0o700, exist_ok=True)
        # Layers must be traversable by container users (they become the container's /).
        os.chmod(os.path.join(root, "layers"), 0o711)

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        algo, hexpart = digests.check(digest).split(":", 1)
        return os.path.join(self.root, "blobs", algo, hexpart)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def put_blob(self, digest: str, data: bytes) -> None:
        """Store verified bytes under their digest (temp file, fsync, rename)."""
        digests.verify_bytes(data, digest, f"blob {digest}")
        path = self.blob_path(digest)
        if os.path.exists(path):
            return
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        # Written aside in ingest/ (emptied at start-up), so blobs() never lists a temp file.
        atomic.write_bytes(path, data, 0o600, scratch_dir=os.path.join(self.root, "ingest"))

    def blobs(self) -> Iterator[tuple[str, int]]:
        """(digest, size) of every stored blob."""
        base = os.path.join(self.root, "blobs")
        for algo in os.listdir(base):
            for entry in os.scandir(os.path.join(base, algo)):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue    # collected meanwhile (readers take no lock)
                yield f"{algo}:{entry.name}", size

    @contextlib.contextmanager
    def ingest(self) -> Iterator[BinaryIO]:
        """A scratch file for one download; removed afterwards, also when it fails
        half-way (a partial or unverified download never stays on disk)."""
        fd, path = tempfile.mkstemp(dir=os.path.join(self.root, "ingest"))
        try:
            with os.fdopen(fd, "w+b") as f:
                yield f
        finally:
            _unlink(path)

    # -- layers ----------------------------------------------------------------------------

    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.root, "layers", digests.hex_part(digests.check(diff_id)))

    def layer_ids(self) -> Iterator[str]:
        for name in os.listdir(os.path.join(self.root, "layers")):
            yield f"sha256:{name}"

    @contextlib.contextmanager
    def unpacking(self, diff_id: str) -> Iterator[str]:
        """An empty directory to unpack ``diff_id`` into; renamed into place if the block
        succeeds, deleted if it fails."""
        tmp = tempfile.mkdtemp(dir=os.path.join(self.root, "tmp"),
                               prefix=digests.hex_part(diff_id)[:12] + "-")
        try:
            os.chmod(tmp, 0o755)    # becomes the container's / mode unless the tar says otherwise
            yield tmp
            _rename_into_place(tmp, self.layer_dir(diff_id))
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)

    # -- removal ---------------------------------------------------------------------------

    def discard(self, blobs: set[str], layers: set[str]) -> None:
        """Move content to trash/ (a rename: quick enough to do under the store lock)."""
        paths = [self.blob_path(d) for d in blobs] + [self.layer_dir(d) for d in layers]
        for path in paths:
            if os.path.lexists(path):
                trash = tempfile.mkdtemp(dir=os.path.join(self.root, "trash"))
                os.rename(path, os.path.join(trash, "x"))

    def sweep(self) -> None:
        """Delete trash and leftovers of interrupted downloads and unpacks."""
        for sub in ("trash", "tmp", "ingest"):
            base = os.path.join(self.root, sub)
            for name in os.listdir(base):
                path = os.path.join(base, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    _unlink(path)

    def empty_trash(self) -> None:
        base = os.path.join(self.root, "trash")
        for name in os.listdir(base):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _rename_into_place(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except OSError:
        if not os.path.isdir(dst):   # already there (unpacked meanwhile): keep that one
            raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
