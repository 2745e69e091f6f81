"""Build OCI images in memory for tests: layer tarballs (hostile ones too), configs,
manifests, indexes, and OCI image layouts on disk (what skopeo copies from).

    layer = Tar().dir("etc").file("etc/motd", b"hi").bytes()
    img = image([layer], {"User": "1000", "Cmd": ["sh"]})
    write_layout("/tmp/layout", "1.0", img.manifest, img.blobs)
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
from typing import Optional

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MTIME = 1_700_000_000       # fixed, so images are reproducible and digests stable


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data),
                **extra}


class Tar:
    """A tar archive built entry by entry (PAX, so xattrs and long names work)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)

    def _add(self, name: str, kind: bytes, data: bytes = b"", **attrs) -> "Tar":
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        info.mtime = attrs.pop("mtime", MTIME)
        xattrs = attrs.pop("xattrs", None) or {}
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        for key, value in attrs.items():
            setattr(info, key, value)
        self._tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
             **attrs) -> "Tar":
        return self._add(name, tarfile.REGTYPE, data, mode=mode, uid=uid, gid=gid, **attrs)

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0, **attrs) -> "Tar":
        return self._add(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid, **attrs)

    def symlink(self, name: str, target: str) -> "Tar":
        return self._add(name, tarfile.SYMTYPE, linkname=target, mode=0o777)

    def hardlink(self, name: str, target: str, mode: int = 0o644) -> "Tar":
        # tar applies a hardlink entry's metadata to the shared inode: give the file's mode
        return self._add(name, tarfile.LNKTYPE, linkname=target, mode=mode)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o666) -> "Tar":
        return self._add(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, mode=mode)

    def fifo(self, name: str, mode: int = 0o644) -> "Tar":
        return self._add(name, tarfile.FIFOTYPE, mode=mode)

    def whiteout(self, path: str) -> "Tar":
        head, _, base = path.rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}")

    def opaque(self, directory: str) -> "Tar":
        return self.file(f"{directory}/.wh..wh..opq")

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.config.digest

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


def image(layer_tars: list[bytes], config: Optional[dict] = None, arch: str = "amd64",
          docker: bool = False, compress: bool = True, labels: Optional[dict] = None) -> BuiltImage:
    """An image of these (uncompressed) layer tars; ``docker`` makes it Docker schema 2."""
    diff_ids = tuple(sha256(t) for t in layer_tars)
    layer_type = DOCKER_LAYER if docker else (OCI_LAYER_GZIP if compress else OCI_LAYER)
    layers = tuple(Blob(layer_type, gzip.compress(t, mtime=0) if compress or docker else t)
                   for t in layer_tars)
    cfg = {"architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
           "config": {**(config or {}), **({"Labels": labels} if labels else {})},
           "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}
    config_blob = Blob(DOCKER_CONFIG if docker else OCI_CONFIG, _json(cfg))
    manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                "config": config_blob.descriptor(), "layers": [b.descriptor() for b in layers]}
    return BuiltImage(Blob(manifest["mediaType"], _json(manifest)), config_blob, layers, diff_ids)


def index(entries: list[tuple[BuiltImage, str]], docker: bool = False) -> Blob:
    """An index of (image, architecture) entries, all linux."""
    media_type = DOCKER_LIST if docker else OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "manifests": [img.manifest.descriptor(platform={"os": "linux", "architecture": arch})
                         for img, arch in entries]}
    return Blob(media_type, _json(doc))


def write_layout(path: str, tag: str, top: Blob, blobs: list[Blob]) -> str:
    """An OCI image layout with ``top`` (manifest or index) as ``tag``; returns the skopeo
    source ``oci:<path>:<tag>``.  Several tags may share one layout."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    for blob in [top, *blobs]:
        with open(os.path.join(path, "blobs", "sha256", blob.digest.split(":")[1]), "wb") as f:
            f.write(blob.data)
    index_path = os.path.join(path, "index.json")
    doc = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            doc = json.load(f)
    doc["manifests"] = [m for m in doc["manifests"]
                        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    doc["manifests"].append(top.descriptor(
        annotations={"org.opencontainers.image.ref.name": tag}))
    with open(index_path, "w") as f:
        json.dump(doc, f)
    return f"oci:{path}:{tag}"


def _json(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
