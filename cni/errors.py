"""The one CNI error type and the spec's error codes.

Every failure a plugin reports leaves through :class:`CniError`; the skel
dispatcher is the single boundary that turns it (or any unexpected exception)
into the spec's error JSON on stdout.

The spec reserves codes 1-99; 100 and up are the plugin's own.  podwire's:

- 100 ``EXISTS``: an object ADD must create already exists (a kernel EEXIST,
  or the container interface name the spec says ADD must refuse).
- 101 ``NOT_FOUND``: a link, address or route the plugin needs is missing
  (a kernel ENODEV or ENOENT).

A busy kernel object (EBUSY) is the spec's 11, try again later.  cni/netlink.py
is where kernel errnos become these codes.
"""
from __future__ import annotations

import enum
import json


class Code(enum.IntEnum):
    """Error codes of the CNI spec (SPEC.md "Error") and libcni's types.go."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_CONFIG = 7
    INVALID_NETNS = 8
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    EXISTS = 100  # podwire's own from here on: see the module docstring
    NOT_FOUND = 101
    INTERNAL = 999


class CniError(Exception):
    """A CNI error: a spec code, a short message and optional details."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details
        # Set on a summary of several failures (libcni's DEL/GC of a whole list): each one.
        self.errors: list[CniError] = []

    def to_dict(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def to_json(self, cni_version: str) -> str:
        return json.dumps(self.to_dict(cni_version))

    @classmethod
    def from_dict(cls, data: dict) -> "CniError":
        return cls(int(data.get("code", Code.INTERNAL)), str(data.get("msg", "")),
                   str(data.get("details", "")))

    def __str__(self) -> str:
        text = f"{self.msg} (code {self.code})"
        return f"{text}: {self.details}" if self.details else text

    def __repr__(self) -> str:
        return f"CniError({self.code}, {self.msg!r}, {self.details!r})"


def invalid_config(msg: str, details: str = "") -> CniError:
    return CniError(Code.INVALID_CONFIG, msg, details)


def invalid_env(msg: str, details: str = "") -> CniError:
    return CniError(Code.INVALID_ENVIRONMENT, msg, details)
