"""The node the doctor examines: a root prefix and the node paths under it.

Every path here is a node path ("/etc/cni/net.d"); `path()` puts it under the root, so tests
(and an operator looking at a mounted image) point the doctor at a tree of files.  Link kinds
are probed on the running kernel only, so a root other than "/" leaves them unchecked."""
from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from typing import Callable, Iterable, Optional

from cni.daemon.wire import DEFAULT_SOCKET as CNID_SOCKET
from cni.libcni import conf as cniconf
from cni.plugin.netpol import DEFAULT_SOCKET as NETPOL_CNI_SOCKET

from ..config import DEFAULT_PATH as CRI_CONFIG, Config, ConfigError, load as load_cri_config
from .linkprobe import Probe, probe_all

CNID_CONFIG = "/etc/podwire/cnid.toml"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
# containerd's and CRI-O's default CNI bin_dir: the one directory they look in.
RUNTIME_CNI_BIN_DIR = "/opt/cni/bin"
# Where Debian's containernetworking-plugins puts the reference plugins.
DISTRO_CNI_BIN_DIR = "/usr/lib/cni"
# The main plugin's type: a conflist that chains it is podwire's.
PODWIRE_PLUGIN = "podwire"


@dataclasses.dataclass
class Node:
    root: str = "/"
    cri_config: str = CRI_CONFIG
    cnid_config: str = CNID_CONFIG
    kubelet_config: str = KUBELET_CONFIG
    cni_conf_dir: str = ""          # "" = cri.toml's cni_conf_dir
    runtime_cni_bin_dir: str = RUNTIME_CNI_BIN_DIR
    distro_cni_bin_dir: str = DISTRO_CNI_BIN_DIR
    # Injected by tests: the link-kind prober (kernel.py) and statvfs (diskspace.py).
    probe_links: Callable[[Iterable[str]], dict[str, Probe]] = probe_all
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs

    @property
    def is_live(self) -> bool:
        """Is this the running node (not a tree of files)?"""
        return os.path.realpath(self.root) == "/"

    def path(self, node_path: str) -> str:
        return os.path.join(self.root, node_path.lstrip("/"))

    def read(self, node_path: str) -> Optional[str]:
        """The file's text, stripped; None when it cannot be read."""
        try:
            with open(self.path(node_path)) as f:
                return f.read().strip()
        except OSError:
            return None

    def exists(self, node_path: str) -> bool:
        return os.path.lexists(self.path(node_path))

    @functools.cached_property
    def cri(self) -> Config:
        """podwire-cri's config as it would load it; ConfigError propagates (cgroups.py says
        so as a blocker, the other checks fall back to the defaults via cri_or_default)."""
        return load_cri_config(self.path(self.cri_config))

    @functools.cached_property
    def cri_or_default(self) -> Config:
        try:
            return self.cri
        except ConfigError:
            return Config()

    @property
    def conf_dir(self) -> str:
        return self.cni_conf_dir or self.cri_or_default.cni_conf_dir

    @functools.cached_property
    def cnid_settings(self) -> dict:
        """cnid.toml as podwire-cnid reads it; {} when missing or broken (podwire-cnid refuses to
        start on a broken file anyway)."""
        try:
            with open(self.path(self.cnid_config), "rb") as f:
                return tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    @property
    def cnid_socket(self) -> str:
        return str(self.cnid_settings.get("socket", CNID_SOCKET))

    @property
    def netpol_cni_socket(self) -> str:
        """Where the podwire plugin reaches the agent: its `netpolSocket` key, else the default."""
        netlist = self.podwire_conflist
        for plugin in netlist.plugins if netlist else []:
            if plugin.get("type") == PODWIRE_PLUGIN and plugin.get("netpolSocket"):
                return str(plugin["netpolSocket"])
        return NETPOL_CNI_SOCKET

    @functools.cached_property
    def conflists(self) -> list[tuple[str, Optional[cniconf.NetworkConfigList], str]]:
        """Every config file in the conf dir, in the order runtimes read them: (node path,
        the parsed list or None, why it is invalid)."""
        found: list[tuple[str, Optional[cniconf.NetworkConfigList], str]] = []
        for path in cniconf.conf_files(self.path(self.conf_dir)):
            node_path = os.path.join(self.conf_dir, os.path.basename(path))
            try:
                found.append((node_path, cniconf.load_conflist(path), ""))
            except Exception as exc:  # CniError, and anything a hand-edited file provokes
                found.append((node_path, None, str(exc)))
        return found

    @property
    def podwire_entry(self) -> Optional[tuple[str, cniconf.NetworkConfigList]]:
        """The first valid config that chains the podwire plugin, with its node path (None: there
        is none)."""
        for node_path, netlist, _ in self.conflists:
            if netlist and any(p.get("type") == PODWIRE_PLUGIN for p in netlist.plugins):
                return node_path, netlist
        return None

    @property
    def podwire_conflist(self) -> Optional[cniconf.NetworkConfigList]:
        entry = self.podwire_entry
        return entry[1] if entry else None
