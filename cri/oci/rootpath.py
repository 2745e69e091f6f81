"""Opening files of a container rootfs without escaping it.

An image controls its rootfs: /etc/passwd may be a symlink to /../../host/etc/shadow.  Paths are
resolved as if the rootfs were "/" (openat2 RESOLVE_IN_ROOT, Linux >= 5.6), with a component-wise
resolver (filepath-securejoin's semantics) where openat2 is unavailable.

:func:`secure_join` is the project's one in-root resolver: the image volumes' subPath, the user
files of a rootfs, and the layer extractor's parent directories (cri/images/extract.py) all go
through it."""
from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections import deque

_SYS_OPENAT2 = 437        # same number on x86_64 and aarch64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_LINKS = 255


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def read_file(root: str, path: str, limit: int = 4 << 20) -> bytes | None:
    """The content of `path` inside `root` (resolved within it); None if it does not exist."""
    try:
        fd = open_in_root(root, path)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)


def open_in_root(root: str, path: str) -> int:
    try:
        return _openat2_in_root(root, path)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    return os.open(secure_join(root, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _openat2_in_root(root: str, path: str) -> int:
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(path.lstrip("/") or "."),
                           ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd
    finally:
        os.close(dirfd)


class EscapesRoot(ValueError):
    """A path whose resolution climbs above its root (``strict`` mode of :func:`secure_join`)."""


def secure_join(root: str, unsafe: str, *, strict: bool = False, make_dirs: bool = False) -> str:
    """`unsafe` resolved inside `root`: symlinks followed, an absolute target taken as relative to
    root.  ".." stops at root; the result is a host path under root whose last component may not
    exist.  ``strict``: instead raise EscapesRoot when ".." (in `unsafe` or in a symlink's target)
    would climb above root, and FileNotFoundError when a component is missing.  ``make_dirs``:
    the whole path is a directory to have -- missing components are created (0755, as tar does)
    and any that is not a directory raises NotADirectoryError naming the path so far.  Too many
    symlinks raise OSError(ELOOP)."""
    todo = deque(p for p in unsafe.split("/") if p)
    done: list[str] = []
    links = 0
    while todo:
        part = todo.popleft()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            elif strict:
                raise EscapesRoot(f"{unsafe!r} leads out of its root")
            continue
        here = os.path.join(root, *done, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            if make_dirs:
                os.mkdir(here, 0o755)
                done.append(part)
                continue
            if strict:
                raise
            return os.path.join(root, *done, part, *todo)
        if not stat.S_ISLNK(st.st_mode):
            if make_dirs and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", "/".join([*done, part]))
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many symlinks", unsafe)
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        todo.extendleft(reversed([p for p in target.split("/") if p]))
    return os.path.join(root, *done)
