"""One image pull: resolve the reference, fetch the manifest (via the index for
linux/<host arch>), the config and each missing layer, unpack, record.

Work is deduplicated in flight: concurrent pulls of the same reference (with the same
credentials) share one pull, and layers are downloaded and unpacked once per diff_id
however many pulls want them.  Everything a pull touches is leased in the store, so a
concurrent RemoveImage cannot collect it before the pull records its image.
"""
from __future__ import annotations

import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from . import layer, manifest
from .auth import Credentials
from .flights import Flights
from .hosts import HostsConfig
from .image import Image
from .manifest import Descriptor, Index, Manifest
from .reference import Reference
from .registry import Progress, Repository
from .store import ImageStore, Layer, Lease
from ..errors import internal

log = logging.getLogger("podwire.cri.images")


class Puller:
    def __init__(self, store: ImageStore, hosts: HostsConfig, timeout: float = 300.0,
                 max_concurrent_downloads: int = 3) -> None:
        self._store = store
        self._hosts = hosts
        self._timeout = timeout
        self._workers = max_concurrent_downloads
        self._flights = Flights()

    def pull(self, ref: Reference, creds: Optional[Credentials] = None,
             progress: Optional[Progress] = None) -> Image:
        return self._flights.do(("pull", str(ref), creds),
                                lambda: self._pull(ref, creds, progress))

    def _pull(self, ref: Reference, creds: Optional[Credentials],
              progress: Optional[Progress]) -> Image:
        start = time.monotonic()
        with self._store.lease() as lease, \
                Repository(ref, self._hosts, creds, self._timeout) as repo:
            top, manifests, doc = self._manifest(repo, lease)
            config_body = self._config(repo, doc.config, lease)
            config = manifest.parse_config(config_body)
            if len(config.diff_ids) != len(doc.layers):
                raise internal(f"{ref}: manifest has {len(doc.layers)} layers, "
                               f"config has {len(config.diff_ids)} diff_ids")
            self._layers(repo, doc.layers, config.diff_ids, lease, progress)
            image = Image(
                id=doc.config.digest, size=doc.config.size + sum(d.size for d in doc.layers),
                config=config.config, diff_ids=config.diff_ids,
                blobs=tuple(manifests) + (doc.config.digest,), os=config.os,
                architecture=config.architecture, created=config.created)
            image = self._store.add(image, str(ref) if ref.tag else None, f"{ref.name}@{top}")
        seconds = time.monotonic() - start
        log.info("pulled %s (%s) in %.1fs", ref, image.id, seconds,
                 extra={"image_id": image.id, "bytes": image.size, "layers": len(image.diff_ids),
                        "seconds": round(seconds, 3)})
        return image

    def _manifest(self, repo: Repository, lease: Lease) -> tuple[str, dict, Manifest]:
        """(digest the reference resolved to, {digest: body} to keep, the image manifest)."""
        top, media_type, body = repo.resolve()
        kept = {top: body}
        doc = manifest.parse(body, media_type)
        if isinstance(doc, Index):
            desc = manifest.pick_platform(doc)
            media_type, body = repo.manifest(desc.digest)
            kept[desc.digest] = body
            doc = manifest.parse(body, media_type)
            if not isinstance(doc, Manifest):
                raise manifest.unsupported(f"{repo.ref}: index entry {desc.digest} is an index")
        for digest, content in kept.items():
            lease.add(digest)
            self._store.content.put_blob(digest, content)
        return top, kept, doc

    def _config(self, repo: Repository, desc: Descriptor, lease: Lease) -> bytes:
        lease.add(desc.digest)
        if self._store.content.has_blob(desc.digest):
            return self._store.content.read_blob(desc.digest)
        body = repo.blob_bytes(desc)
        self._store.content.put_blob(desc.digest, body)
        return body

    def _layers(self, repo: Repository, descs: tuple, diff_ids: tuple, lease: Lease,
                progress: Optional[Progress]) -> None:
        for diff_id in diff_ids:
            lease.add(diff_id)
        wanted = [(d, i) for d, i in zip(descs, diff_ids, strict=True) if not self._store.has_layer(i)]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="image-pull") as pool:
            # Each download runs in the pull's context: its log lines carry the RPC's fields.
            futures = [pool.submit(contextvars.copy_context().run, self._layer, repo, d, i, progress)
                       for d, i in wanted]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _layer(self, repo: Repository, desc: Descriptor, diff_id: str,
               progress: Optional[Progress]) -> None:
        self._flights.do(("layer", diff_id), lambda: self._unpack(repo, desc, diff_id, progress))

    def _unpack(self, repo: Repository, desc: Descriptor, diff_id: str,
                progress: Optional[Progress]) -> None:
        if self._store.has_layer(diff_id):
            return      # a flight for it finished between our check and ours starting
        with self._store.content.ingest() as blob:
            repo.download(desc, blob, progress)
            blob.seek(0)
            with self._store.content.unpacking(diff_id) as tmp:
                stats = layer.unpack(blob, diff_id, tmp)
        self._store.add_layer(diff_id, Layer(stats.size, stats.inodes))
        log.debug("layer %s unpacked: %d bytes, %d inodes", diff_id, stats.size, stats.inodes,
                  extra={"layer": diff_id})
