"""The files a pod's containers mount: /etc/resolv.conf, /etc/hostname, /etc/hosts.

They live in the pod's state directory and every container bind-mounts them
(the OCI spec builder gets their paths), as containerd does for its sandboxes.
The kubelet usually mounts its own /etc/hosts over ours; this one is what a pod
gets without it.
"""
from __future__ import annotations

import ctypes
import os
import socket

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..store import atomic

_LOCAL_HOSTS = ("127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n"
                "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def resolv_conf(dns: api.DNSConfig, host_resolv: str) -> bytes:
    """From dns_config; the host's resolv.conf when the pod gives none (dnsPolicy
    Default arrives parsed, so an empty config means "nothing asked for")."""
    if not (dns.servers or dns.searches or dns.options):
        try:
            with open(host_resolv, "rb") as f:
                return f.read()
        except OSError:
            return b""
    # Empty entries are dropped, not refused: containerd writes them through and the resolver
    # ignores them.  A line break or NUL stays refused: each entry must stay on its own line,
    # or one "server" could add resolver directives of its own.
    servers, searches, options = ([i for i in items if i.strip()]
                                  for items in (dns.servers, dns.searches, dns.options))
    for item in [*servers, *searches, *options]:
        if any(c in item for c in "\n\r\0"):
            raise errors.invalid(f"invalid DNS config entry {item!r}: one line each")
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in servers]
    if options:
        lines.append("options " + " ".join(options))
    return ("\n".join(lines) + "\n").encode()


HOSTNAME_MAX = 64      # __NEW_UTS_LEN: sethostname(2) refuses longer names with EINVAL


def hostname_for(config: api.PodSandboxConfig) -> str:
    """The pod's hostname, as containerd's setupSandboxFiles picks it: the config's, or the
    node's (socket.gethostname(), Go's os.Hostname()) when the config has none.  That is what
    /etc/hostname and $HOSTNAME hold, with host networking too: containerd and CRI-O write the
    config's name there (the kubelet sends none for host-network pods; crictl and critest may).
    Only a pod with its own UTS namespace also gets it as the kernel's name; a host-network pod
    shares the node's UTS namespace, whose name is the node's (the caller decides that).

    The rules, each with its reason; anything else the kernel takes is taken (capitals, "_",
    spaces, "/", a leading "-", non-ASCII, names longer than a DNS label): the kubelet
    validates its own hostnames, and critest and crictl send others."""
    name = config.hostname
    if not name:
        return socket.gethostname()
    size = len(name.encode())
    # sethostname(2) refuses more than 64 bytes with EINVAL, and the proc file we set it
    # through would silently cut it instead.  Bytes, not characters: "é" is two.  Applied with
    # host networking too, where the name only reaches the files: no kernel could hold it.
    if size > HOSTNAME_MAX:
        raise errors.invalid(f"pod hostname {name!r} is {size} bytes; the kernel allows at most "
                             f"{HOSTNAME_MAX} (sethostname)")
    # NUL: the kernel's proc file stops at it (so would every C reader of the name), and argv
    # cannot carry it.  "\n": the proc file stops at it too, and /etc/hostname is one line.
    # "\r": text-mode readers (Python's universal newlines, splitlines) break the line there.
    # The kernel would take these through sethostname(2), but the name could not be read back
    # as given: a pod would see a different hostname in each place.
    bad = [c for c in ("\0", "\n", "\r") if c in name]
    if bad:
        raise errors.invalid(f"pod hostname {name!r} contains {', '.join(map(repr, bad))}; "
                             f"/etc/hostname is one line and the kernel's proc file stops at a NUL "
                             f"or newline")
    return name


def write_pod_files(pod_dir: str, config: api.PodSandboxConfig, host_network: bool,
                    host_resolv: str) -> dict[str, str]:
    """Write the files; container path -> host path, for the OCI spec builder."""
    content = {
        "/etc/resolv.conf": resolv_conf(config.dns_config, host_resolv),
        "/etc/hostname": (hostname_for(config) + "\n").encode(),
        # No entry for the pod's hostname: containerd adds none either (it copies the node's
        # file); the kubelet mounts its own /etc/hosts, with the pod's name in it, over this one.
        "/etc/hosts": _hosts(host_network),
    }
    out = {}
    for target, data in content.items():
        path = os.path.join(pod_dir, os.path.basename(target))
        # Not fsync'd: after a power loss the pod is NOTREADY (its netns is gone) and is
        # never started again, so these files only matter while the node is up.
        atomic.write_bytes(path, data, mode=0o644, durable=False)
        out[target] = path
    return out


def pod_files(pod_dir: str) -> dict[str, str]:
    """The files written by :func:`write_pod_files` (those that exist)."""
    out = {}
    for target in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"):
        path = os.path.join(pod_dir, os.path.basename(target))
        if os.path.exists(path):
            out[target] = path
    return out


def _hosts(host_network: bool) -> bytes:
    if host_network:
        try:
            with open("/etc/hosts", "rb") as f:
                return f.read()
        except OSError:
            pass
    return _LOCAL_HOSTS.encode()


SHM_SIZE = 64 << 20      # Docker's and containerd's default /dev/shm size
_libc = ctypes.CDLL(None, use_errno=True)
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8


def mount_shm(pod_dir: str) -> str:
    """The pod's /dev/shm: one tmpfs every container of the pod mounts, so POSIX shared
    memory is shared within the pod (it belongs with the pod's IPC namespace)."""
    path = os.path.join(pod_dir, "shm")
    os.makedirs(path, mode=0o1777, exist_ok=True)
    opts = f"mode=1777,size={SHM_SIZE}".encode()
    if _libc.mount(b"shm", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, opts) != 0:
        err = ctypes.get_errno()
        raise errors.internal(f"mounting the pod's shm at {path}: {os.strerror(err)}")
    return path


def unmount_shm(path: str) -> None:
    """Idempotent: lazy unmount (a container may still be exiting), then remove the dir."""
    if not path:
        return
    _libc.umount2(os.fsencode(path), 2)      # MNT_DETACH; EINVAL/ENOENT: not mounted any more
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
