"""ImageService: the images API of the shim, in plain Python (no gRPC).

The CRI handlers (cri/rpc/image_*.py) translate messages to these calls; the runtime uses
:meth:`ImageService.get` to find a container's image and :meth:`ImageService.hold` /
:meth:`ImageService.release` to keep its layers while the container exists.

Lookups accept whatever the CRI passes as an image: a reference in any form
(``busybox``, ``docker.io/library/busybox:latest``, ``repo@sha256:…``), a full image ID
(``sha256:…`` or bare hex), or a unique prefix of an ID.
"""
from __future__ import annotations

import builtins
import json
from typing import Optional

from . import reference
from .auth import Credentials
from .hosts import DEFAULT_CONFIG_DIR, HostsConfig
from .image import Image
from .pull import Puller
from .registry import Progress
from .store import ImageStore
from ..errors import CriError, invalid

DEFAULT_ROOT = "/var/lib/podwire/images"


class ImageService:
    def __init__(self, root: str = DEFAULT_ROOT, hosts_dir: Optional[str] = DEFAULT_CONFIG_DIR,
                 insecure_registries: tuple = (), pull_timeout: float = 300.0,
                 max_concurrent_downloads: int = 3) -> None:
        """``hosts_dir``: containerd-style hosts.toml tree (None: no mirrors);
        ``insecure_registries``: hosts tried over unverified HTTPS, then HTTP (loopback
        hosts always are); ``pull_timeout``: seconds a download may make no progress."""
        self.root = root
        self.store = ImageStore(root)
        self.hosts = HostsConfig(hosts_dir, insecure_registries)
        self._puller = Puller(self.store, self.hosts, pull_timeout, max_concurrent_downloads)

    @classmethod
    def from_config(cls, cfg) -> "ImageService":
        """From :class:`cri.config.Config`."""
        return cls(root=cfg.images_dir, hosts_dir=cfg.registry_config_dir,
                   pull_timeout=cfg.image_pull_progress_timeout)

    def pull(self, ref: str, auth=None, progress: Optional[Progress] = None) -> Image:
        """Pull ``ref`` (INVALID_ARGUMENT if malformed).  ``auth``: a CRI AuthConfig, a
        :class:`Credentials`, or None.  ``progress(digest, done, total)`` is called from
        download threads as layer bytes arrive."""
        creds = auth if isinstance(auth, Credentials) else Credentials.from_auth_config(auth)
        return self._puller.pull(reference.parse(ref), creds, progress)

    def get(self, ref_or_id: str) -> Optional[Image]:
        """The local image ``ref_or_id`` names, or None.  Never waits for a pull."""
        if not ref_or_id:
            raise invalid("image reference or ID is empty")
        return self.store.resolve(ref_or_id)

    # ImageStatus is a lookup; the CRI name reads better at the call site.
    status = get

    def list(self, filter_ref: Optional[str] = None) -> list[Image]:
        """All images, or the one ``filter_ref`` names (none if it names nothing)."""
        if filter_ref:
            image = self.store.resolve(filter_ref)
            return [image] if image else []
        return sorted(self.store.state.images.values(), key=lambda i: i.id)

    def remove(self, ref_or_id: str) -> None:
        """Remove the image with all its tags.  Idempotent: an absent image is success
        (RemoveImage "must not return an error if the image has already been removed")."""
        image = self.get(ref_or_id)
        if image:
            self.store.remove(image.id)

    def fs_info(self) -> tuple[str, int, int]:
        """(mountpoint, used bytes, inodes used) of the image filesystem."""
        used, inodes = self.store.usage()
        return self.root, used, inodes

    def layer_dirs(self, image: Image) -> builtins.list[str]:
        """overlayfs lowerdirs, top-most layer first: ``lowerdir=":".join(dirs)``."""
        return self.store.layer_dirs(image)

    def hold(self, holder: str, image: Image) -> builtins.list[str]:
        """Like :meth:`layer_dirs`, and keeps the layers until :meth:`release(holder)`,
        even if the image is removed meanwhile (a running container's rootfs)."""
        return self.store.hold(holder, image)

    def release(self, holder: str) -> None:
        self.store.release(holder)

    def inspect(self, image: Image) -> dict:
        """The verbose view: the full image config JSON (OCI ``imageSpec``) and where the
        image came from, as containerd's ImageStatus ``info``."""
        info = {"id": image.id, "repoTags": list(image.repo_tags),
                "repoDigests": list(image.repo_digests), "size": image.size,
                "imageSpec": {"config": image.config}, "layers": []}
        try:
            info["imageSpec"] = json.loads(self.store.content.read_blob(image.id))
            info["layers"] = self.layer_dirs(image)
        except (FileNotFoundError, CriError):
            pass        # removed since the lookup: what the record says is all there is
        return info
