"""Build the plugin's result (internal 1.1.0 shape) from what ADD made."""
from __future__ import annotations

from .config import NetConf
from .veth import Pair


def build(conf: NetConf, pair: Pair, netns_path: str, ips: list[dict], routes: list[dict],
          dns: dict, bridge_mac: str = "") -> dict:
    """interfaces: [bridge,] host veth (empty sandbox), pod interface (sandbox = netns).

    Chained plugins rely on this shape: bandwidth looks for the host veth (no
    sandbox), portmap for ips[].interface pointing at the pod interface."""
    interfaces = []
    if conf.mode == "bridge":
        interfaces.append({"name": conf.bridge, "mac": bridge_mac})
    interfaces.append({"name": pair.host_name, "mac": pair.host_mac})
    interfaces.append({"name": pair.container_name, "mac": pair.container_mac, "sandbox": netns_path})
    pod_index = len(interfaces) - 1
    result: dict = {
        "cniVersion": "1.1.0",
        "interfaces": interfaces,
        "ips": [{**ip, "interface": pod_index} for ip in ips],
        "routes": routes,
    }
    if dns:
        result["dns"] = dns
    return result
