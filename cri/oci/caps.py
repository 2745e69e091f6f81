"""Linux capabilities: CRI add/drop (incl. "ALL") on top of containerd's default set."""
from __future__ import annotations

from typing import Iterable

# Index = capability number (linux/capability.h).
ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]

# containerd's defaultUnixCaps() (oci/spec.go), which is also Docker's default set.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def host_caps() -> list[str]:
    """The capabilities this process holds (CapEff), like containerd's cap.Current(): "ALL" and
    privileged can only mean what the runtime itself may grant (this VM lacks
    CAP_SYS_RESOURCE; asking runc for it fails with EPERM)."""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return list(ALL_CAPS)
    return [name for bit, name in enumerate(ALL_CAPS) if mask >> bit & 1]


def normalize(name: str) -> str:
    """CRI names come without the CAP_ prefix ("NET_ADMIN"); accept both, any case."""
    name = name.strip().upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def capability_set(add: Iterable[str], drop: Iterable[str], privileged: bool,
                   all_caps: list[str] | None = None) -> list[str]:
    """containerd's order (setOCICapabilities): ALL-add, ALL-drop, then single adds, then single
    drops, so add=[ALL] drop=[CHOWN] is everything but CHOWN and drop=[ALL] add=[X] is only X."""
    everything = all_caps if all_caps is not None else host_caps()
    if privileged:
        return list(everything)
    add, drop = list(add), list(drop)
    caps = list(DEFAULT_CAPS)
    if any(c.upper() == "ALL" for c in add):
        caps = list(everything)
    if any(c.upper() == "ALL" for c in drop):
        caps = []
    for c in add:
        if c.upper() != "ALL" and normalize(c) not in caps:
            caps.append(normalize(c))
    dropped = {normalize(c) for c in drop if c.upper() != "ALL"}
    return [c for c in caps if c not in dropped]


def process_capabilities(caps: list[str], ambient: Iterable[str] = ()) -> dict[str, list[str]]:
    """OCI process.capabilities.  Inheritable stays empty (containerd >= 1.6.18, CVE-2022-24769)
    unless ambient capabilities are asked for, which the kernel requires to be inheritable."""
    amb = [normalize(c) for c in ambient]
    return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps),
            "inheritable": list(amb), "ambient": amb}
