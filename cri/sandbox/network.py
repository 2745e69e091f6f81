"""The pod network through the CNI runtime library (cni.libcni), like containerd's go-cni.

* ADD runs the configured conflist (the first valid file in the conf dir, or the
  network named by ``cni_network``) with the kubelet's CNI_ARGS and the
  ``portMappings``/``dns`` capabilities.
* DEL is always attempted — also when the netns is gone (after a reboot, or a
  crashed RunPodSandbox), since plugins must then still release IPAM leases
  (containerd/cri#948).  It uses the network the pod was attached to; if that
  config was since removed from the conf dir, the config cached at ADD time
  (libcni's result cache) is used, so a config change never strands a lease.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import Optional

import grpc
from cri_api.v1 import api_pb2 as api

from cni.errors import CniError, Code
from cni.libcni import CNIConfig, NetworkConfigList, RuntimeConf, conflist_from_bytes
from cni.libcni import cache as cni_cache
from cni.libcni import load_default_network, load_network

from .. import errors
from ..config import Config

log = logging.getLogger(__name__)
IFNAME = "eth0"
_PROTOCOLS = {api.TCP: "tcp", api.UDP: "udp", api.SCTP: "sctp"}
STATUS_TTL = 2.0     # the kubelet polls Status every few seconds; STATUS execs every plugin


class PodNetwork:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.cni = CNIConfig(list(cfg.cni_bin_dirs), cache_dir=cfg.cni_cache_dir, timeout=cfg.cni_timeout)
        self._status_lock = threading.Lock()
        self._status: tuple[float, tuple[bool, str, str]] = (0.0, (False, "", ""))

    # --- config -------------------------------------------------------------

    def netlist(self) -> NetworkConfigList:
        if self.cfg.cni_network:
            return load_network(self.cfg.cni_conf_dir, self.cfg.cni_network)
        return load_default_network(self.cfg.cni_conf_dir)

    def status(self) -> tuple[bool, str, str]:
        """(ready, reason, message) for the NetworkReady condition: a valid config,
        and every plugin's STATUS ok (cniVersion >= 1.1.0; older plugins have none)."""
        with self._status_lock:
            at, cached = self._status
            if time.monotonic() - at < STATUS_TTL:
                return cached
            result = self._probe()
            self._status = (time.monotonic(), result)
            return result

    def _probe(self) -> tuple[bool, str, str]:
        try:
            netlist = self.netlist()
        except CniError as err:
            return False, "NetworkPluginNotReady", f"cni config not loaded: {err}"
        try:
            self.cni.get_status_network_list(netlist)
        except CniError as err:
            return False, "NetworkPluginNotReady", f"network {netlist.name!r} not ready: {err}"
        return True, "", ""

    # --- attach / detach ----------------------------------------------------

    def setup(self, pod_id: str, netns: str, config: api.PodSandboxConfig) -> tuple[str, list[str]]:
        """CNI ADD; (network name, pod IPs with IPv4 first)."""
        try:
            netlist = self.netlist()
        except CniError as err:
            raise errors.precondition(f"no CNI network configured: {err}") from None
        rt = self._runtime_conf(pod_id, netns, config)
        try:
            result = self.cni.add_network_list(netlist, rt)
        except CniError as err:
            # A list can fail halfway (plugin 1 allocated an IP, plugin 2 failed) and
            # libcni does not undo: the spec has the runtime call DEL before giving up.
            self._del_after_failed_add(netlist, rt)
            raise cri_error(err, f"CNI ADD on network {netlist.name!r} failed") from None
        return netlist.name, pod_ips(result)

    def teardown(self, pod_id: str, netns: str, config: api.PodSandboxConfig, network: str) -> None:
        """CNI DEL; raises when a plugin fails so StopPodSandbox is retried."""
        netlist = self._netlist_for_del(pod_id, network)
        if netlist is None:
            log.info("pod %s: no CNI config for network %r and nothing cached; nothing to delete",
                     pod_id, network)
            return
        rt = self._runtime_conf(pod_id, netns, config)
        try:
            self.cni.del_network_list(netlist, rt)
        except CniError as err:
            raise cri_error(err, f"CNI DEL on network {netlist.name!r} failed") from None

    def _del_after_failed_add(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        try:
            self.cni.del_network_list(netlist, rt)
        except CniError as err:
            log.warning("pod %s: DEL after a failed ADD failed too: %s", rt.container_id, _describe(err))

    def _netlist_for_del(self, pod_id: str, network: str) -> Optional[NetworkConfigList]:
        try:
            current = self.netlist()
            if not network or current.name == network:
                return current
            return load_network(self.cfg.cni_conf_dir, network)
        except CniError:
            pass
        for entry in cni_cache.list_entries(self.cfg.cni_cache_dir, pod_id):
            if entry.ifname == IFNAME and (not network or entry.network == network) and entry.config:
                try:
                    return conflist_from_bytes(entry.config, source=f"cache of {pod_id}")
                except CniError:
                    continue
        return None

    def _runtime_conf(self, pod_id: str, netns: str, config: api.PodSandboxConfig) -> RuntimeConf:
        md = config.metadata
        args = [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", md.namespace), ("K8S_POD_NAME", md.name),
                ("K8S_POD_INFRA_CONTAINER_ID", pod_id), ("K8S_POD_UID", md.uid)]
        caps: dict = {"portMappings": port_mappings(config),
                      "io.kubernetes.cri.pod-annotations": dict(config.annotations)}
        dns = config.dns_config
        if dns.servers or dns.searches or dns.options:
            caps["dns"] = {"servers": list(dns.servers), "searches": list(dns.searches),
                           "options": list(dns.options)}
        return RuntimeConf(pod_id, netns, IFNAME, args=args, capability_args=caps)


def port_mappings(config: api.PodSandboxConfig) -> list[dict]:
    """The portMappings capability; like containerd, mappings without a host port
    are only informational and are not passed on."""
    out = []
    for pm in config.port_mappings:
        if pm.host_port <= 0:
            continue
        # Kept: containerd passes these to the portmap plugin, which refuses them later and
        # less clearly; a port outside 1-65535 cannot be mapped.
        if not 0 < pm.container_port < 65536 or pm.host_port > 65535:
            raise errors.invalid(f"invalid port mapping {pm.host_port}->{pm.container_port}")
        entry = {"hostPort": pm.host_port, "containerPort": pm.container_port,
                 "protocol": _PROTOCOLS.get(pm.protocol, "tcp")}
        if pm.host_ip:
            entry["hostIP"] = pm.host_ip
        out.append(entry)
    return out


def pod_ips(result: dict) -> list[str]:
    """Addresses on the pod's eth0, IPv4 first (the kubelet's primary pod IP)."""
    ifaces = result.get("interfaces") or []
    ips = []
    for ip in result.get("ips") or []:
        idx = ip.get("interface")
        if idx is not None and 0 <= idx < len(ifaces) and ifaces[idx].get("name") not in (None, IFNAME):
            continue
        ips.append(str(ipaddress.ip_interface(ip["address"]).ip))
    return sorted(ips, key=lambda a: ipaddress.ip_address(a).version)


# CNI error codes that say more than "internal" (CNI SPEC.md "Error"): a plugin that asks to be
# retried is UNAVAILABLE (the kubelet retries anyway, and operators see a transient state); a
# configuration the plugin cannot use is INVALID_ARGUMENT, naming the network config.  The rest
# (I/O, netns, plugin-specific codes, 999) stay INTERNAL.
_CRI_CODES: dict[int, grpc.StatusCode] = {
    Code.TRY_AGAIN_LATER: grpc.StatusCode.UNAVAILABLE,
    Code.INCOMPATIBLE_VERSION: grpc.StatusCode.INVALID_ARGUMENT,
    Code.UNSUPPORTED_FIELD: grpc.StatusCode.INVALID_ARGUMENT,
    Code.DECODING_FAILURE: grpc.StatusCode.INVALID_ARGUMENT,
    Code.INVALID_CONFIG: grpc.StatusCode.INVALID_ARGUMENT,
}


def cri_error(err: CniError, what: str) -> errors.CriError:
    """A plugin's CNI error in the CRI's vocabulary, keeping the CNI code in the message."""
    code = _CRI_CODES.get(err.code, grpc.StatusCode.INTERNAL)
    return errors.CriError(code, f"{what}: {_describe(err)} (CNI error code {err.code})")


def _describe(err: CniError) -> str:
    notes = getattr(err, "__notes__", [])
    return " ".join([str(err), *notes])
