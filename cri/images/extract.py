"""Unpack one layer tarball into its own directory, safely, with overlayfs whiteouts.

Layer tarballs come from the network and are hostile until proven otherwise.  tarfile
parses them; writing is done here because tarfile's extract() follows symlinks in parent
paths and at the target.  The rules (containerd's archive.Apply, scoped to one layer dir):

* names are cleaned lexically inside the root: ``../../x`` and ``/x`` both become ``x``;
* a parent path is resolved component by component with symlinks interpreted as if the
  layer dir were ``/`` (a link to ``/etc`` or ``../..`` lands inside it, never outside);
* the target itself is never followed: whatever is there is removed first, and files are
  created with O_EXCL|O_NOFOLLOW;
* hardlink sources are resolved the same way and must already be in this layer;
* ``.wh.NAME`` becomes an overlay whiteout (char device 0/0), ``.wh..wh..opq`` the
  ``trusted.overlay.opaque=y`` xattr on its directory; ``trusted.overlay.*`` xattrs from
  the tarball itself are dropped (they would steer overlayfs);
* ownership, modes (incl. setuid), mtimes, device nodes and other xattrs are kept.

Each layer is unpacked on its own (not on top of its parents): symlinks in lower layers
are not visible here, so a path through one is created as a real directory in this layer.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import stat
import tarfile
from typing import BinaryIO

import grpc

from ..errors import CriError
from ..oci.rootpath import secure_join

log = logging.getLogger("podwire.cri.images")

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_AUFS_META = ".wh..wh."
_XATTR_PAX = "SCHILY.xattr."
_CHUNK = 1 << 20


@dataclasses.dataclass
class Stats:
    size: int = 0       # bytes of regular file content
    inodes: int = 0     # entries created


def extract(stream: BinaryIO, root: str) -> Stats:
    """Unpack the uncompressed tar ``stream`` into the (empty, private) directory ``root``."""
    stats = Stats()
    dirs: dict[str, tarfile.TarInfo] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                _apply(tar, member, root, dirs, stats)
    except tarfile.TarError as exc:
        raise bad_layer(f"corrupt tar stream: {exc}") from None
    # Directories last, deepest first: creating children would bump their mtimes.
    for path, member in reversed(dirs.items()):
        _set_metadata(path, member)
    return stats


def bad_layer(message: str) -> CriError:
    return CriError(grpc.StatusCode.DATA_LOSS, f"layer: {message}")


def _apply(tar: tarfile.TarFile, m: tarfile.TarInfo, root: str,
           dirs: dict, stats: Stats) -> None:
    parts = clean(m.name)
    if not parts:
        if m.isdir():
            dirs[root] = m      # "./": the layer root's own metadata
        return
    if any(p.startswith(_AUFS_META) for p in parts[:-1]):
        return      # aufs bookkeeping (.wh..wh.plnk/…): meaningless for overlay
    parent = resolve_dir(root, parts[:-1])
    base = parts[-1]
    if base.startswith(WHITEOUT_PREFIX):
        _whiteout_entry(parent, base)
        stats.inodes += 1
        return
    path = os.path.join(parent, base)
    if m.isdir():
        _mkdir(path)
        dirs.pop(path, None)    # a repeated entry's metadata wins, and moves deeper in order
        dirs[path] = m
    else:
        _remove(path)
        _create(tar, m, root, path)
        _set_metadata(path, m)
        stats.size += m.size if m.isreg() else 0
    stats.inodes += 1


def _create(tar: tarfile.TarFile, m: tarfile.TarInfo, root: str, path: str) -> None:
    if m.isreg():
        content = tar.extractfile(m)
        assert content is not None, "tarfile returns None only for members that are not files"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(content, out, _CHUNK)
    elif m.issym():
        os.symlink(m.linkname, path)    # stored verbatim: resolved in the container, not here
    elif m.islnk():
        os.link(_link_source(root, m.linkname), path, follow_symlinks=False)
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        _mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
    elif m.isfifo():
        os.mkfifo(path, m.mode & 0o7777)
    else:
        raise bad_layer(f"{m.name}: unsupported tar entry type {m.type!r}")


def clean(name: str) -> list[str]:
    """A member name as components inside the root; ``..`` cannot climb above it."""
    parts: list[str] = []
    for p in name.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    return parts


def resolve_dir(root: str, parts: list[str]) -> str:
    """The real directory ``root/parts``, symlinks resolved as if ``root`` were ``/``;
    missing directories are created (0755, like tar)."""
    try:
        return secure_join(root, "/".join(parts), make_dirs=True)
    except NotADirectoryError as exc:
        raise bad_layer(f"{'/'.join(parts)}: {exc.filename} is not a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise bad_layer(f"too many levels of symbolic links under {'/'.join(parts)}") from None
        raise


def _link_source(root: str, linkname: str) -> str:
    parts = clean(linkname)
    if not parts:
        raise bad_layer(f"hardlink to the layer root ({linkname!r})")
    source = os.path.join(resolve_dir(root, parts[:-1]), parts[-1])
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise bad_layer(f"hardlink to {linkname!r}, which is not in this layer") from None
    if stat.S_ISDIR(st.st_mode):
        raise bad_layer(f"hardlink to directory {linkname!r}")
    return source


def _whiteout_entry(parent: str, base: str) -> None:
    if base == OPAQUE:
        os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
        return
    name = base[len(WHITEOUT_PREFIX):]
    if base.startswith(_AUFS_META) or name in ("", ".", ".."):
        return      # aufs bookkeeping (.wh..wh.aufs, …)
    path = os.path.join(parent, name)
    _remove(path)
    _mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _mkdir(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        os.mkdir(path, 0o755)


def _remove(path: str) -> None:
    """Make room for a new entry: a later entry replaces an earlier one (tar semantics)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _mknod(path: str, mode: int, device: int) -> None:
    try:
        os.mknod(path, mode, device)
    except PermissionError:
        raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                       f"mknod {path}: device nodes and whiteouts need CAP_MKNOD (run as root)") \
            from None


def _set_metadata(path: str, m: tarfile.TarInfo) -> None:
    link = m.issym()
    if os.geteuid() == 0:
        os.lchown(path, m.uid, m.gid)
    _set_xattrs(path, m)
    if not link:
        os.chmod(path, m.mode & 0o7777)     # after chown, which clears setuid bits
    os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def _set_xattrs(path: str, m: tarfile.TarInfo) -> None:
    for key, value in m.pax_headers.items():
        if not key.startswith(_XATTR_PAX):
            continue
        name = key[len(_XATTR_PAX):]
        if name.startswith("trusted.overlay."):
            continue
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(path, name, raw, follow_symlinks=False)
        except OSError as exc:
            # Filesystems without that namespace (or without xattrs on symlinks) lose it,
            # as with containerd; the file itself is still correct.
            if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                raise
            log.debug("xattr %s on %s: %s", name, path, exc)
