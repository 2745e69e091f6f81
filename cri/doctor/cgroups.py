"""The cgroup version, and podwire-cri's cgroup driver against the kubelet's.

The shim's driver is resolved as cri.config.Config.resolved() does it: cri.toml's
cgroup_driver, else systemd when PID 1 is systemd (cri.config.default_cgroup_driver), read
here under the node's root.  The kubelet's is `cgroupDriver` in its KubeletConfiguration,
cgroupfs when unset (the v1beta1 default)."""
from __future__ import annotations

from typing import Any, Optional

import yaml

from .. import config as cri_config
from ..oci import cgroupdriver
from .node import Node
from .report import Finding, blocker, ok, warning

CGROUP_ROOT = "/sys/fs/cgroup"
KUBELET_DEFAULT_DRIVER = cgroupdriver.CGROUPFS
# With this gate the kubelet asks the runtime (RuntimeConfig) and ignores cgroupDriver.
DRIVER_FROM_CRI_GATE = "KubeletCgroupDriverFromCRI"


def check(node: Node) -> list[Finding]:
    kubelet, kubelet_problem = _kubelet_config(node)
    return [_version(node, kubelet), _driver(node, kubelet, kubelet_problem)]


def _kubelet_config(node: Node) -> tuple[Optional[dict[str, Any]], str]:
    """The kubelet's config (None when there is none) and why it could not be read."""
    text = node.read(node.kubelet_config)
    if text is None:
        return None, ""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"{node.kubelet_config} is not YAML: {exc}"
    if not isinstance(data, dict):
        return None, f"{node.kubelet_config} is not a KubeletConfiguration"
    return data, ""


def cgroup_version(node: Node) -> Optional[str]:
    """"v2", "hybrid" (v1 controllers, a v2 tree at unified/), "v1", None (no cgroups)."""
    if node.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
        return "v2"
    if node.exists(f"{CGROUP_ROOT}/unified/cgroup.controllers"):
        return "hybrid"
    if node.exists(f"{CGROUP_ROOT}/memory") or node.exists(f"{CGROUP_ROOT}/cpu"):
        return "v1"
    return None


def _version(node: Node, kubelet: Optional[dict[str, Any]]) -> Finding:
    version = cgroup_version(node)
    if version is None:
        return blocker("cgroup.version", f"no cgroup hierarchy at {CGROUP_ROOT}",
                       f"mount cgroup2 at {CGROUP_ROOT} (systemd does at boot)")
    if version == "v2":
        return ok("cgroup.version", "cgroup v2")
    shown = "cgroup v1" if version == "v1" else "cgroup v1 (hybrid: v1 controllers, a v2 tree at unified/)"
    summary = f"{shown}: Kubernetes 1.31 keeps v1 in maintenance, a 1.35 kubelet refuses it " \
              "unless failCgroupV1: false"
    fix = "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1 on the kernel command line)"
    if kubelet is not None and kubelet.get("failCgroupV1") is True:
        return blocker("cgroup.version", f"{shown}, and the kubelet's failCgroupV1 is true", fix)
    return warning("cgroup.version", summary, fix)


def shim_driver(node: Node, cfg: cri_config.Config) -> str:
    """The driver podwire-cri resolves at start (Config.resolved), PID 1 read under the root."""
    if cfg.cgroup_driver:
        return cfg.cgroup_driver
    return cgroupdriver.SYSTEMD if node.read(cri_config.PID1_COMM) == "systemd" else cgroupdriver.CGROUPFS


def _driver(node: Node, kubelet: Optional[dict[str, Any]], kubelet_problem: str) -> Finding:
    check = "cgroup.driver"
    try:
        cfg = node.cri
    except cri_config.ConfigError as exc:
        return blocker(check, f"podwire-cri would not start: {exc}",
                       f"fix {node.cri_config} (podwire-cri --print-config shows what it would use)")
    driver = shim_driver(node, cfg)
    pid1 = node.read(cri_config.PID1_COMM)
    if driver == cgroupdriver.SYSTEMD and pid1 != "systemd":
        return blocker(check, f"cri.toml sets cgroup_driver = \"systemd\", but PID 1 is {pid1 or 'unknown'}",
                       "set cgroup_driver = \"cgroupfs\" (or \"\" to follow PID 1)")
    try:
        cgroupdriver.check_parent(cfg.cgroup_parent or cgroupdriver.default_parent(driver), driver)
    except ValueError as exc:
        return blocker(check, f"cri.toml: {exc}", "set cgroup_parent = \"\" (the driver's default)")
    if kubelet_problem:
        return warning(check, f"podwire-cri uses {driver}; {kubelet_problem}", "fix the kubelet's config")
    if kubelet is None:
        return ok(check, f"podwire-cri uses {driver}; no kubelet config at {node.kubelet_config} to compare")
    kubelet_driver = kubelet.get("cgroupDriver") or KUBELET_DEFAULT_DRIVER
    if kubelet_driver == driver:
        return ok(check, f"podwire-cri and the kubelet both use {driver}")
    gates = kubelet.get("featureGates") or {}
    if isinstance(gates, dict) and gates.get(DRIVER_FROM_CRI_GATE) is True:
        return ok(check, f"podwire-cri uses {driver}; the kubelet takes it from the runtime "
                  f"({DRIVER_FROM_CRI_GATE}), not its cgroupDriver {kubelet_driver}")
    return blocker(check, f"podwire-cri uses {driver}, the kubelet's cgroupDriver is {kubelet_driver}: "
                   "RunPodSandbox fails with INVALID_ARGUMENT",
                   f"set cgroupDriver: {driver} in {node.kubelet_config}, or cgroup_driver = \"{kubelet_driver}\" "
                   f"in {node.cri_config} (kubelets with {DRIVER_FROM_CRI_GATE} take the runtime's driver)")
