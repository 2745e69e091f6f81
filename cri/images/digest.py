"""Content digests (``algorithm:hex``): validation and incremental verification.

Every byte taken from a registry is checked against the digest that named it;
the digest, not the transport, is what makes content trustworthy.
"""
from __future__ import annotations

import hashlib
import re

import grpc

from ..errors import CriError, invalid

# Lengths of the hex part for the algorithms the OCI image spec registers.
# sha384 too: the digest library containerd and CRI-O use registers it by default.
_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]+)$")


def is_digest(value: str) -> bool:
    m = _DIGEST.match(value)
    return m is not None and len(m.group(2)) == _HEX_LEN[m.group(1)]


def check(value: str) -> str:
    """``value`` if it is a well-formed digest, else INVALID_ARGUMENT."""
    if not is_digest(value):
        raise invalid(f"invalid digest {value!r}")
    return value


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_part(value: str) -> str:
    return value.split(":", 1)[1]


class Verifier:
    """Hashes content as it streams past; :meth:`verify` compares with the expected digest."""

    def __init__(self, expected: str) -> None:
        self.expected = check(expected)
        self._hash = hashlib.new(expected.split(":", 1)[0])
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def actual(self) -> str:
        return f"{self._hash.name}:{self._hash.hexdigest()}"

    def verify(self, what: str) -> None:
        actual = self.actual()
        if actual != self.expected:
            raise mismatch(what, self.expected, actual)


def mismatch(what: str, expected: str, actual: str) -> CriError:
    # DATA_LOSS: the registry (or a mirror, or the wire) served corrupt or forged content.
    return CriError(grpc.StatusCode.DATA_LOSS,
                    f"{what}: digest mismatch: expected {expected}, got {actual}")


def verify_bytes(data: bytes, expected: str, what: str) -> None:
    v = Verifier(expected)
    v.update(data)
    v.verify(what)
