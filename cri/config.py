"""podwire-cri's configuration: one TOML file (/etc/podwire/cri.toml), every key defaulted.

The shim runs with no file at all; a file only overrides what it names.  Unknown
keys are an error, not a warning: a typo in a node's config should stop the
shim at start-up rather than silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any, Optional

from cni import logs

from .oci import cgroupdriver

DEFAULT_PATH = "/etc/podwire/cri.toml"


@dataclasses.dataclass
class Config:
    # gRPC endpoint: a unix socket path (a unix:// URL is accepted too).
    listen: str = "/run/podwire/cri.sock"
    socket_mode: int = 0o660
    socket_group: str = "root"
    # Persistent state (pod/container records, images) and per-boot state (runc, pinned ns).
    state_dir: str = "/var/lib/podwire"
    run_dir: str = "/run/podwire"
    # CNI: the first valid config in conf_dir (or the network named cni_network).
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: list = dataclasses.field(default_factory=lambda: ["/opt/cni/bin", "/usr/lib/cni"])
    cni_cache_dir: str = "/var/lib/cni/results"
    cni_network: str = ""
    cni_timeout: float = 120.0
    # The NetworkPolicy agent's gRPC socket: pods' labels and named ports are sent to it
    # when the socket exists ("" never); a socket nobody answers on fails RunPodSandbox.
    netpol_socket: str = "/run/podwire/netpol.sock"
    netpol_timeout: float = 10.0
    # Containers.
    runc: str = "runc"
    conmon: str = "conmon"                   # the per-container monitor (Debian's conmon)
    runc_root: str = "/run/podwire/runc"
    # "systemd" (runc --systemd-cgroup: containers in transient scopes, the kubelet's parents are
    # slices such as kubepods-burstable-pod<uid>.slice) or "cgroupfs" (runc makes directories; the
    # parents are paths).  "" = systemd when PID 1 is systemd, else cgroupfs.  RuntimeConfig
    # reports it, and the kubelet (KubeletCgroupDriverFromCRI) takes it as its own.
    cgroup_driver: str = ""
    # Where containers of pods without a cgroup_parent go: a path for cgroupfs (one directory
    # per pod below it), a slice for systemd.  "" = /podwire or podwire.slice by the driver.
    cgroup_parent: str = ""
    restrict_oom_score_adj: bool = False
    default_stop_signal: str = "SIGTERM"     # when neither the request nor the image names one
    # Images: registry mirrors, TLS settings and headers in containerd's hosts.toml layout.
    registry_config_dir: str = "/etc/podwire/certs.d"
    image_pull_progress_timeout: float = 300.0
    # The streaming server behind Exec/Attach/PortForward (plain HTTP; the kubelet on this node
    # proxies to it): address and port (0 = any free port), and how long a session may sit
    # idle in both directions before it is closed (the kubelet's default, 4 h).
    stream_address: str = "127.0.0.1"
    stream_port: int = 0
    stream_idle_timeout: float = 4 * 3600.0
    # Prometheus metrics (cri/server/metrics.py) over HTTP on HOST:PORT; "" = off.  On by default
    # on loopback: nothing leaves the node, nothing is computed until scraped, and the series
    # name no pod, image or credential (counts and latencies only).
    metrics_address: str = "127.0.0.1:9743"
    # Written into the pod's /etc/hosts-less world: DNS defaults when dns_config is empty.
    default_resolv_conf: str = "/etc/resolv.conf"
    # The shim's log lines on stderr: level (debug, info, warning, error) and format, "text"
    # (logfmt key=value lines) or "json" (one object per line); see cni/logs.py.
    log_level: str = "info"
    log_format: str = "text"

    @property
    def socket_path(self) -> str:
        return socket_path(self.listen)

    @property
    def pods_dir(self) -> str:
        return os.path.join(self.state_dir, "pods")

    @property
    def containers_dir(self) -> str:
        return os.path.join(self.state_dir, "containers")

    @property
    def images_dir(self) -> str:
        return os.path.join(self.state_dir, "images")

    @property
    def ns_dir(self) -> str:
        """Pinned IPC/UTS namespaces (network ones live in /run/netns for `ip netns`)."""
        return os.path.join(self.run_dir, "ns")

    def resolved(self) -> "Config":
        """This config with cgroup_driver and cgroup_parent as the shim uses them: the driver
        detected when unset, the parent defaulted by the driver.  ConfigError when the parent
        has the other driver's form."""
        driver = self.cgroup_driver or default_cgroup_driver()
        parent = self.cgroup_parent or cgroupdriver.default_parent(driver)
        try:
            cgroupdriver.check_parent(parent, driver)
        except ValueError as e:
            raise ConfigError(f"cgroup_parent: {e}") from None
        return dataclasses.replace(self, cgroup_driver=driver, cgroup_parent=parent)


class ConfigError(Exception):
    pass


PID1_COMM = "/proc/1/comm"


def _pid1_comm() -> str:
    try:
        with open(PID1_COMM) as f:
            return f.read().strip()
    except OSError:
        return ""


def default_cgroup_driver() -> str:
    """systemd when PID 1 is systemd (it owns the cgroup tree there, and a second writer
    behind its back is what the kubelet docs warn against), else cgroupfs."""
    return cgroupdriver.SYSTEMD if _pid1_comm() == "systemd" else cgroupdriver.CGROUPFS


def socket_path(endpoint: str) -> str:
    """``unix:///run/x.sock`` or ``/run/x.sock`` -> ``/run/x.sock``."""
    if endpoint.startswith("unix://"):
        endpoint = endpoint[len("unix://"):]
    if not endpoint.startswith("/"):
        raise ConfigError(f"listen must be an absolute unix socket path, got {endpoint!r}")
    return endpoint


def load(path: Optional[str] = None, *, required: bool = False) -> Config:
    """The config in ``path`` (default /etc/podwire/cri.toml); a missing file gives
    the defaults unless ``required`` (an explicit --config must exist)."""
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return Config()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return from_dict(data, source=path)


def from_dict(data: dict, source: str = "<dict>") -> Config:
    fields = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown keys {', '.join(unknown)}")
    defaults = Config()
    values = {}
    for name, value in data.items():
        values[name] = _check_type(name, value, getattr(defaults, name), source)
    cfg = Config(**values)
    socket_path(cfg.listen)  # validate early
    if not 0 <= cfg.stream_port < 65536:
        raise ConfigError(f"{source}: stream_port {cfg.stream_port} is not a port number")
    if cfg.stream_idle_timeout <= 0:
        raise ConfigError(f"{source}: stream_idle_timeout must be positive")
    _check_signal(cfg.default_stop_signal, source)
    check_metrics_address(cfg.metrics_address, source)
    try:
        logs.check_level(cfg.log_level)
        logs.check_format(cfg.log_format)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    if cfg.cgroup_driver not in ("", *cgroupdriver.DRIVERS):
        raise ConfigError(f"{source}: cgroup_driver {cfg.cgroup_driver!r} is not one of "
                          f"{', '.join(cgroupdriver.DRIVERS)} (or \"\" to detect)")
    try:
        cfg.resolved()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg


def check_metrics_address(address: str, source: str) -> None:
    if not address:
        return
    from cni.metrics import parse_address
    try:
        parse_address(address)
    except ValueError as e:
        raise ConfigError(f"{source}: metrics_address: {e} (\"\" turns metrics off)") from None


def _check_signal(name: str, source: str) -> None:
    import signal
    text = name.upper()
    if not (text.isdigit() or (text if text.startswith("SIG") else "SIG" + text) in signal.Signals.__members__):
        raise ConfigError(f"{source}: default_stop_signal {name!r} is not a signal")


def _check_type(name: str, value: Any, default: Any, source: str) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{source}: {name} must be of type {type(default).__name__}, got {value!r}")
    return value


def to_toml(cfg: Config) -> str:
    """The config as TOML (packaging/cri/cri.toml is this for the defaults)."""
    lines = []
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        lines.append(f"{f.name} = {_toml_value(f.name, value)}")
    return "\n".join(lines) + "\n"


def _toml_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if name == "socket_mode":
        return f"0o{value:o}"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(name, v) for v in value) + "]"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
