"""Manifests, indexes and image configs: OCI image-spec and Docker schema 2.

Both formats have the same shape (Docker schema 2 came first, OCI copied it), so one
parser serves both; only the media types differ.  Schema 1 is not supported: registries
convert on the fly when it is not in the Accept list.
"""
from __future__ import annotations

import dataclasses
import json
import platform
from typing import Optional, Union

import grpc

from . import digest as digests
from ..errors import CriError, internal

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)

# Go's GOARCH names, which image indexes use.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}
HOST_ARCH = _GOARCH.get(platform.machine(), "amd64")


@dataclasses.dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Optional[dict] = None


@dataclasses.dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclasses.dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config blob the runtime and the CRI need."""
    diff_ids: tuple[str, ...]       # uncompressed layer digests, bottom layer first
    config: dict                    # the "config" section: User, Env, Entrypoint, Cmd, ...
    os: str
    architecture: str
    created: str


def parse(body: bytes, content_type: str) -> Union[Manifest, Index]:
    doc = _json(body, "manifest")
    media_type = doc.get("mediaType") or content_type.split(";", 1)[0].strip()
    if doc.get("schemaVersion") == 1:
        raise unsupported("Docker schema 1 manifests are not supported")
    if media_type in INDEX_TYPES or (media_type not in MANIFEST_TYPES and "manifests" in doc):
        return Index(media_type or OCI_INDEX, tuple(_descriptor(d) for d in doc["manifests"]))
    if media_type in MANIFEST_TYPES or "layers" in doc:
        return Manifest(media_type or OCI_MANIFEST, _descriptor(doc["config"]),
                        tuple(_descriptor(d) for d in doc.get("layers", [])))
    raise unsupported(f"unsupported manifest media type {media_type!r}")


def pick_platform(index: Index, os_name: str = "linux", arch: str = HOST_ARCH) -> Descriptor:
    """The index entry for ``os_name/arch`` (variant ignored; first match wins)."""
    for desc in index.manifests:
        p = desc.platform or {}
        if p.get("os") == os_name and p.get("architecture") == arch \
                and desc.media_type in MANIFEST_TYPES + ("",):
            return desc
    offered = sorted({f"{(d.platform or {}).get('os')}/{(d.platform or {}).get('architecture')}"
                      for d in index.manifests})
    raise CriError(grpc.StatusCode.NOT_FOUND,
                   f"no image for platform {os_name}/{arch} in the index (has {', '.join(offered)})")


def parse_config(body: bytes) -> ImageConfig:
    doc = _json(body, "image config")
    diff_ids = tuple((doc.get("rootfs") or {}).get("diff_ids") or ())
    for d in diff_ids:
        digests.check(d)
    return ImageConfig(diff_ids=diff_ids, config=doc.get("config") or {},
                       os=doc.get("os", ""), architecture=doc.get("architecture", ""),
                       created=doc.get("created", ""))


def unsupported(message: str) -> CriError:
    return CriError(grpc.StatusCode.FAILED_PRECONDITION, message)


def _descriptor(d: dict) -> Descriptor:
    try:
        return Descriptor(d.get("mediaType", ""), digests.check(d["digest"]), int(d["size"]),
                          d.get("platform"))
    except (KeyError, TypeError, ValueError) as exc:
        raise internal(f"malformed descriptor in manifest: {exc}") from None


def _json(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise internal(f"malformed {what}: {exc}") from None
    if not isinstance(doc, dict):
        raise internal(f"malformed {what}: not a JSON object")
    return doc
