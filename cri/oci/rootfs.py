"""The container rootfs: an overlay of the image's extracted layers plus a private upper dir."""
from __future__ import annotations

import ctypes
import errno
import os
import subprocess

from cri.errors import internal

_MNT_DETACH = 2
# mount(2) data is one page; longer lowerdir lists are passed relative to a common parent.
_MAX_OPTIONS = 4000
_libc = ctypes.CDLL(None, use_errno=True)


def _errno_error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def mount_rootfs(layers: list[str], upper: str, work: str, target: str) -> None:
    """Overlay-mount `layers` (manifest order: base layer first, as ImageService.layer_dirs
    returns them) with `upper`/`work` at `target`.  overlayfs wants the top layer first.
    An image with no layers gets an empty lower dir beside `upper`."""
    lowers = list(reversed(layers))
    if not lowers:
        empty = os.path.join(os.path.dirname(upper), "empty")
        os.makedirs(empty, exist_ok=True)
        lowers = [empty]
    for d in (upper, work, target):
        os.makedirs(d, mode=0o755, exist_ok=True)
    _mount_overlay(lowers, f"upperdir={upper},workdir={work},index=off", target)


def mount_lower_only(lowers: list[str], target: str) -> None:
    """A read-only overlay of `lowers` (top-most first; at least two: the kernel refuses one
    lower dir without an upper dir) at `target`."""
    _mount_overlay(lowers, "", target)


def _mount_overlay(lowers: list[str], extra: str, target: str) -> None:
    options = ",".join(filter(None, [f"lowerdir={':'.join(lowers)}", extra]))
    if len(options) <= _MAX_OPTIONS:
        if _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode()) != 0:
            raise internal(f"mount overlay at {target}: {_errno_error('mount').strerror}")
        return
    _mount_relative(lowers, extra, target)


def _mount_relative(lowers: list[str], extra: str, target: str) -> None:
    """containerd's trick for many layers: run mount(8) with cwd at the layers' common parent
    and relative lowerdirs.  mount(8) runs in a child so the shim's cwd never changes."""
    common = os.path.commonpath(lowers)
    rel = [os.path.relpath(d, common) for d in lowers]
    options = ",".join(filter(None, [f"lowerdir={':'.join(rel)}", extra]))
    if len(options) > _MAX_OPTIONS:
        raise internal(f"mount overlay at {target}: {len(lowers)} layers do not fit a mount call")
    done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, target],
                          cwd=common, capture_output=True, text=True)
    if done.returncode != 0:
        raise internal(f"mount overlay at {target}: {done.stderr.strip()}")


def unmount_rootfs(target: str) -> None:
    """Idempotent: a target that is not mounted (or does not exist) is fine.  A busy mount is
    detached lazily: it goes away when its last user does."""
    while os.path.ismount(target):
        if _libc.umount2(os.fsencode(target), 0) == 0:
            continue
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return
        if err != errno.EBUSY or _libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
            raise internal(f"unmount {target}: {os.strerror(ctypes.get_errno())}")
