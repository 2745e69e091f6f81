"""The node's pod CIDRs, for ranges whose subnet is ``usePodCidr`` (IPv4) or
``usePodCidrIPv6`` -- Calico's spelling for host-local, so such configs carry over.

podwire-cnid learns the CIDRs (from its config, or the Kubernetes Node's
``spec.podCIDRs``) and publishes them in one small JSON file; podwire-ipam reads
that file, inside the daemon and in process alike, so both resolve a config the
same way and every node of a cluster allocates from its own range.
"""
from __future__ import annotations

import ipaddress
import json
import os

from .. import atomic
from ..errors import CniError, Code

PATH_ENV = "PODWIRE_POD_CIDRS_FILE"
DEFAULT_PATH = "/run/podwire/pod-cidrs.json"  # /run: a CIDR from before a reboot is not trusted
MTU_FILE = "pod-mtu.json"
PLACEHOLDERS = {"usePodCidr": 4, "usePodCidrIPv6": 6}


def path() -> str:
    return os.environ.get(PATH_ENV) or DEFAULT_PATH


def publish(cidrs: list[str], where: str = "") -> None:
    """Write the node's CIDRs (validated) atomically."""
    where = where or path()
    nets = [str(ipaddress.ip_network(c)) for c in cidrs]
    os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
    atomic.write_bytes(where, json.dumps({"podCIDRs": nets}).encode(), mode=0o644)


def mtu_path(cidrs_path: str = "") -> str:
    """Where podwire-cnid publishes the pods' MTU in an overlay mode: next to the CIDRs."""
    return os.path.join(os.path.dirname(cidrs_path or path()), MTU_FILE)


def pod_mtu() -> int:
    """The MTU podwire-cnid asks pods to use (a VXLAN overlay's), 0 when it asks none.
    The plugin uses it when the conflist sets no ``mtu``."""
    try:
        with open(mtu_path()) as f:
            return int(json.load(f).get("mtu") or 0)
    except (OSError, ValueError, AttributeError, TypeError):
        return 0  # no overlay (the usual case), or unreadable: the link's default


def read(where: str = "") -> list[str]:
    try:
        with open(where or path()) as f:
            return list(json.load(f).get("podCIDRs", []))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, AttributeError) as exc:
        raise CniError(Code.IO_FAILURE, "cannot read the node's pod CIDRs", f"{where or path()}: {exc}") from None


def resolve(placeholder: str) -> str:
    """The node's pod CIDR of the placeholder's family."""
    family = PLACEHOLDERS[placeholder]
    for cidr in read():
        if ipaddress.ip_network(cidr).version == family:
            return cidr
    # Code 11: the daemon may still be waiting for the node controller to assign one.
    raise CniError(Code.TRY_AGAIN_LATER, f"the node has no IPv{family} pod CIDR (yet) for {placeholder!r}",
                   f"podwire-cnid publishes it in {path()}")
