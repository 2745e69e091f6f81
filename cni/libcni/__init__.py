"""A libcni-like runtime library: load network configs and run them against plugins.

Runtimes (podwire's CRI shim, tests) use this to ADD/DEL/CHECK/STATUS/GC
whatever conflist is configured, with libcni's semantics and its on-disk
result cache, so state written by containerd or CRI-O and by us is shared.

    from cni.libcni import CNIConfig, RuntimeConf, load_default_network
    netlist = load_default_network("/etc/cni/net.d")
    cni = CNIConfig(["/opt/cni/bin"])
    result = cni.add_network_list(netlist, RuntimeConf(cid, "/run/netns/x", "eth0"))
"""
from .cache import DEFAULT_CACHE_DIR, CachedAttachment
from .conf import (NetworkConfigList, conf_files, conflist_from_bytes, load_conflist,
                   load_default_network, load_network)
from .runtime import CNIConfig, RuntimeConf

__all__ = [
    "CNIConfig", "CachedAttachment", "DEFAULT_CACHE_DIR", "NetworkConfigList", "RuntimeConf",
    "conf_files", "conflist_from_bytes", "load_conflist", "load_default_network", "load_network",
]
