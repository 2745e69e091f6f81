"""The result cache, in libcni's ``cniCacheV1`` format.

One file per attachment, ``<cache_dir>/<network>-<containerID>-<ifname>``, mode
0600.  The bytes are what Go's encoding/json would write for libcni's
``cachedInfo`` struct, so containerd/CRI-O tooling reads our entries and we read
theirs (and DEL finds its prevResult after a restart, whoever wrote it).
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
from typing import Optional

from .. import atomic
from ..errors import CniError, Code

KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni/results"


@dataclasses.dataclass
class CachedAttachment:
    """One cache entry: the attachment, the runtime args it was added with, its result."""

    container_id: str
    ifname: str
    network: str
    netns: str = ""
    cni_args: list = dataclasses.field(default_factory=list)
    capability_args: dict = dataclasses.field(default_factory=dict)
    config: bytes = b""
    result: Optional[dict] = None


def entry_path(cache_dir: str, network: str, container_id: str, ifname: str) -> str:
    if not (network and container_id and ifname):
        raise CniError(Code.INVALID_ENVIRONMENT, "cache entry needs network name, container ID and interface name",
                       f"{network!r}, {container_id!r}, {ifname!r}")
    return os.path.join(cache_dir, f"{network}-{container_id}-{ifname}")


def write(cache_dir: str, entry: CachedAttachment) -> str:
    """Store ``entry`` atomically (temp file + rename): a reader never sees half a file."""
    path = entry_path(cache_dir, entry.network, entry.container_id, entry.ifname)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    atomic.write_bytes(path, encode(entry), 0o600)  # its temp name starts with ".": never listed
    return path


def read(cache_dir: str, network: str, container_id: str, ifname: str) -> Optional[CachedAttachment]:
    """The entry, or None if there is none; a corrupt entry raises DECODING_FAILURE."""
    path = entry_path(cache_dir, network, container_id, ifname)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read cached result {path}", exc.strerror or str(exc)) from None
    return decode(data, path, fallback=CachedAttachment(container_id, ifname, network))


def remove(cache_dir: str, network: str, container_id: str, ifname: str) -> None:
    _unlink(entry_path(cache_dir, network, container_id, ifname))


def list_entries(cache_dir: str, container_id: str = "") -> list[CachedAttachment]:
    """Every readable cniCacheV1 entry (of one container if given), sorted by file name.

    Unreadable files and legacy result-only files are skipped, as libcni's
    GetCachedAttachments does: they do not say which attachment they belong to.
    """
    try:
        names = sorted(os.listdir(cache_dir))
    except FileNotFoundError:
        return []
    entries = []
    for name in names:
        if name.startswith(".") or (container_id and f"-{container_id}-" not in name):
            continue
        entry = _read_v1(os.path.join(cache_dir, name))
        if entry is None or not (entry.ifname and entry.network):
            continue
        if container_id and entry.container_id != container_id:
            continue
        entries.append(entry)
    return entries


def _read_v1(path: str) -> Optional[CachedAttachment]:
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        return None
    try:
        return _from_v1(raw)
    except (TypeError, ValueError, KeyError):
        return None


# --- encoding ----------------------------------------------------------------

def encode(entry: CachedAttachment) -> bytes:
    """Go's json.Marshal of libcni's cachedInfo: struct fields in declaration order,
    ``omitempty`` fields dropped when empty, []byte as base64, map keys sorted."""
    fields: list[tuple[str, object]] = [("kind", KIND), ("containerId", entry.container_id),
              ("config", base64.b64encode(entry.config).decode()),
              ("ifName", entry.ifname), ("networkName", entry.network)]
    optional: list[tuple[str, object]] = [("netns", entry.netns), ("cniArgs", [list(p) for p in entry.cni_args]),
                ("capabilityArgs", entry.capability_args), ("result", entry.result)]
    fields += [(k, v) for k, v in optional if v]
    body = ",".join(f"{_go_json(k)}:{_go_json(v)}" for k, v in fields)
    return ("{" + body + "}").encode()


def _go_json(value) -> str:
    """Compact JSON with sorted keys and Go's HTML-safe escapes (<, >, &, U+2028/9).
    Those characters only ever occur inside JSON strings, so replacing them is safe."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def decode(data: bytes, path: str, fallback: CachedAttachment) -> CachedAttachment:
    """Parse an entry.  A file without ``kind`` is a pre-cniCacheV1 entry holding
    just the result (libcni's getLegacyCachedResult); ``fallback`` names its attachment."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        if raw.get("kind") == KIND:
            return _from_v1(raw)
        if "kind" not in raw and "cniVersion" in raw:
            return dataclasses.replace(fallback, result=raw)
        raise ValueError(f"unknown kind {raw.get('kind')!r}")
    except (TypeError, ValueError, KeyError) as exc:
        raise CniError(Code.DECODING_FAILURE, f"corrupt cached result {path}", str(exc)) from None


def _from_v1(raw: dict) -> CachedAttachment:
    config = raw.get("config") or ""
    result = raw.get("result")
    if result is not None and not isinstance(result, dict):
        raise ValueError("result is not a JSON object")
    return CachedAttachment(
        container_id=str(raw.get("containerId", "")), ifname=str(raw.get("ifName", "")),
        network=str(raw.get("networkName", "")), netns=str(raw.get("netns", "")),
        cni_args=[(str(k), str(v)) for k, v in raw.get("cniArgs") or []],
        capability_args=dict(raw.get("capabilityArgs") or {}),
        config=base64.b64decode(config, validate=True), result=result)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
