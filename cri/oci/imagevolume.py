"""Image volumes (KEP-4639): a pulled image's content, read-only, at a path in a container.

Each volume is an overlay of the image's extracted layers with no upper dir, which the kernel
mounts read-only (writes fail with EROFS whatever the bind options say), at
<bundle>/image-volumes/<n>.  The container bind-mounts it, or a directory or file inside it
(``image_sub_path``).  The mounts live under the bundle, so removing the container -- also
after a shim crash, since the bundle is on disk -- finds and unmounts them by listing that
directory; nothing is kept only in memory.
"""
from __future__ import annotations

import errno
import os
import shutil

from cri.errors import invalid, not_found
from cri.oci import rootfs, rootpath

VOLUMES_DIR = "image-volumes"


def volumes_dir(bundle: str) -> str:
    return os.path.join(bundle, VOLUMES_DIR)


def check_request(container_path: str, readonly: bool, sub_path: str) -> None:
    """What can be refused before anything is mounted."""
    if not readonly:
        # The content is shared by every container using the image; the CRI says runtimes
        # should refuse a writable image volume rather than silently mount it read-only.
        raise invalid(f"mount {container_path}: image volumes are read-only; set readonly")
    if sub_path.startswith("/"):
        raise invalid(f"mount {container_path}: image_sub_path {sub_path!r} must be relative "
                      "to the image root")
    if ".." in sub_path.split("/"):
        raise invalid(f"mount {container_path}: image_sub_path {sub_path!r} must not contain '..'")


def mount(layers: list[str], target: str) -> None:
    """Overlay-mount `layers` (top-most first, as ImageService.layer_dirs returns them) read-only
    at `target`.  overlayfs needs two lower dirs when there is no upper dir, so an empty one
    goes at the bottom (it also covers an image with no layers)."""
    empty = target + ".empty"
    os.makedirs(empty, mode=0o755, exist_ok=True)
    os.makedirs(target, mode=0o755, exist_ok=True)
    rootfs.mount_lower_only([*layers, empty], target)


def resolve_sub_path(root: str, container_path: str, sub_path: str) -> str:
    """The host path of `sub_path` inside the mounted image at `root`.  Symlinks are followed
    as the image sees them (an absolute target is relative to the image root); one that climbs
    out of the root is refused, as is a path that does not exist.  The content under `root` is
    a read-only overlay, so what is checked here cannot change before runc bind-mounts it."""
    if not sub_path.strip("/"):
        return root
    try:
        return rootpath.secure_join(root, sub_path, strict=True)
    except rootpath.EscapesRoot:
        raise invalid(f"mount {container_path}: image_sub_path {sub_path!r} leads out of the "
                      "image through a symlink") from None
    except FileNotFoundError:
        raise not_found(f"mount {container_path}: image_sub_path {sub_path!r} does not exist "
                        "in the image") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise invalid(f"mount {container_path}: image_sub_path {sub_path!r}: too many "
                          "symlinks") from None
        raise


def unmount_all(bundle: str) -> None:
    """Idempotent: unmount every image volume of the bundle and remove their directories."""
    base = volumes_dir(bundle)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(base, name)
        if not name.endswith(".empty"):
            rootfs.unmount_rootfs(path)
    shutil.rmtree(base, ignore_errors=True)
