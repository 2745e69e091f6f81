"""One layer blob -> one unpacked layer directory, checked against its diff_id.

The compression is recognised by its magic bytes, not by the media type, because
registries and converters are known to mislabel layers.  The diff_id (the digest of the
uncompressed tar) is computed while extracting; a mismatch fails the unpack and the
half-made directory is discarded by the caller.
"""
from __future__ import annotations

import gzip
import zlib
from typing import BinaryIO, Protocol, cast

import grpc

from . import digest as digests
from .extract import Stats, bad_layer, extract
from ..errors import CriError

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, inner: _Readable, expected: str) -> None:
        self._inner = inner
        self.verifier = digests.Verifier(expected)

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.verifier.update(data)
        return data

    def drain(self) -> None:
        """tarfile stops at the end-of-archive marker; the padding after it counts too."""
        while self.read(_CHUNK):
            pass


def unpack(blob: BinaryIO, diff_id: str, dest: str) -> Stats:
    """Unpack the layer ``blob`` (gzip or uncompressed tar) into ``dest``."""
    stream = _decompressed(blob)
    hashing = _Hashing(stream, diff_id)
    try:
        # extract() annotates its stream as BinaryIO but only reads it (tarfile "r|"), which
        # _Hashing does; the cast stands until that annotation is widened (extract.py).
        stats = extract(cast(BinaryIO, hashing), dest)
        hashing.drain()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise bad_layer(f"{diff_id}: {exc}") from None
    hashing.verifier.verify(f"layer {diff_id} (uncompressed)")
    return stats


def _decompressed(blob: BinaryIO) -> _Readable:
    magic = blob.read(4)
    blob.seek(0)
    if magic.startswith(_GZIP):
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if magic == _ZSTD:
        raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                       "zstd-compressed layers are not supported; pull a gzip variant")
    return blob
