"""Pod sysctls (PodSandboxConfig.linux.sysctls): which may be set, and where.

Only namespaced sysctls can be per pod; the kubelet already decides which are
"safe" and which an admin allowed as "unsafe", so the shim accepts both and
rejects only keys that are not namespaced at all (they would change the node).

* ``net.*`` belong to the network namespace: applied once, after CNI ADD (so
  per-interface keys for eth0 exist), by a short-lived child in the pod netns
  (`ip netns exec <ns> sysctl -w`).  Not allowed for hostNetwork pods.
* IPC ones (``kernel.shm*``, ``kernel.msg*``, ``kernel.sem``, ``fs.mqueue.*``)
  and UTS ones (``kernel.hostname``/``kernel.domainname``) go into every
  container's OCI spec (``linux.sysctl``); runc writes them inside the container,
  which shares the pod's pinned IPC/UTS namespaces, so all containers see the
  same values.  Not allowed when the pod uses the host's IPC/UTS.
"""
from __future__ import annotations

import re

from .. import errors
from . import proc

_KEY = re.compile(r"^[a-z0-9_]+([./][a-zA-Z0-9_*:-]+)+$")
_IPC = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")
_UTS = ("kernel.hostname", "kernel.domainname")


def normalise(key: str) -> str:
    """Kubernetes allows '/' as the separator (for keys containing dots)."""
    if "/" in key:
        # net/ipv4/conf/eth0.100/forwarding -> net.ipv4.conf.eth0/100.forwarding
        return ".".join(part.replace(".", "/") for part in key.split("/"))
    return key


def split(sysctls: dict, host_net: bool, host_ipc: bool, host_uts: bool) -> tuple[dict, dict]:
    """(net sysctls for the pod netns, IPC/UTS sysctls for container specs)."""
    net, other = {}, {}
    for raw_key, value in sysctls.items():
        if not _KEY.match(raw_key) or ".." in raw_key or "\n" in value:
            raise errors.invalid(f"invalid sysctl {raw_key}={value!r}")
        key = normalise(raw_key)
        if key.startswith("net."):
            if host_net:
                raise errors.invalid(f"sysctl {raw_key}: not allowed with host network")
            net[key] = value
        elif key.startswith(_IPC):
            if host_ipc:
                raise errors.invalid(f"sysctl {raw_key}: not allowed with host IPC")
            other[key] = value
        elif key.startswith(_UTS):
            if host_uts:
                raise errors.invalid(f"sysctl {raw_key}: not allowed with host UTS namespace")
            # runc refuses kernel.hostname beside the spec's hostname, so every container of the
            # pod would fail to create; the pod's hostname field is the way to set it.
            if key == "kernel.hostname":
                raise errors.invalid(f"sysctl {raw_key}: set the pod's hostname instead")
            other[key] = value
        else:
            raise errors.invalid(f"sysctl {raw_key} is not namespaced; it cannot be set per pod")
    return net, other


def apply_in_netns(netns_name: str, sysctls: dict) -> None:
    if not sysctls:
        return
    argv = ["ip", "netns", "exec", netns_name, "sysctl", "-q", "-w"]
    argv += [f"{k}={v}" for k, v in sorted(sysctls.items())]
    res = proc.run(argv, check=False)
    if res.returncode != 0:
        # A key the kernel does not have, or a value it refuses: the request is at fault.
        raise errors.invalid(f"setting pod sysctls: {res.stderr.strip()}")
