"""The container's log file, made before conmon opens it, without following symlinks.

conmon runs as root and opens the path it is given, following links.  The part of the path
below the pod's log directory comes from the request (ContainerConfig.log_path), so each of its
components is opened relative to the one before with O_NOFOLLOW: a symlink planted there (say
`<pod logs>/app -> /etc`) is refused instead of letting conmon append to a file elsewhere on
the node.  The log directory itself is the kubelet's (it may sit under a linked /var/log).

What remains is a race with someone who can write to the pod's log directory while the
container is being created; on a node that is the kubelet and root."""
from __future__ import annotations

import errno
import os
import stat

from cri.errors import invalid

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def prepare(directory: str, rel: str) -> tuple[str, bool]:
    """Create <directory>/<rel> (and the directories between) as a regular file reached with no
    symlink below `directory`; (its path, whether this call created it).  INVALID_ARGUMENT
    naming the component otherwise."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise invalid(f"log_path {rel!r} must name a file inside the pod's log directory")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = _enter(fd, part, rel)
            os.close(fd)
            fd = inner
        created = _touch(fd, parts[-1], rel)
    finally:
        os.close(fd)
    return os.path.join(directory, *parts), created


def _enter(fd: int, part: str, rel: str) -> int:
    """The directory `part` below fd (made 0755 if missing), opened."""
    try:
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise invalid(f"log_path {rel!r}: {part!r} is a symlink or not a directory") from None
        raise


def _touch(fd: int, name: str, rel: str) -> bool:
    """Open (creating) the file; whether it was created.  O_NONBLOCK: a FIFO planted as the log
    file must not hang CreateContainer."""
    created = True
    try:
        try:
            f = os.open(name, _FILE_FLAGS | os.O_EXCL, 0o640, dir_fd=fd)
        except FileExistsError:
            created = False
            f = os.open(name, _FILE_FLAGS, 0o640, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise invalid(f"log_path {rel!r}: {name!r} is a symlink or not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(f).st_mode):
            raise invalid(f"log_path {rel!r}: {name!r} is not a regular file")
    finally:
        os.close(f)
    return created
