"""CNI spec versions and conversion of results between them.

Internally podwire builds every result in the newest (1.1.0) shape; the
functions here convert it to whatever ``cniVersion`` the config asked for, and
parse a ``prevResult`` of any version back into the internal shape.
"""
from __future__ import annotations

import copy
import ipaddress

from .errors import CniError, Code

CURRENT = "1.1.0"
SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
# Fields that first appeared in spec 1.1.0 and must not leak into older results.
_ROUTE_FIELDS_1_1 = ("mtu", "advmss", "priority", "table", "scope")
_IFACE_FIELDS_1_1 = ("mtu", "socketPath", "pciID")


def parse(version: str) -> tuple[int, int, int]:
    """'0.4.0' -> (0, 4, 0); a malformed version is a decoding error."""
    try:
        parts = tuple(int(p) for p in version.split("."))
    except (AttributeError, ValueError):
        raise CniError(Code.DECODING_FAILURE, "invalid version", f"{version!r}") from None
    if len(parts) != 3 or min(parts) < 0:
        raise CniError(Code.DECODING_FAILURE, "invalid version", f"{version!r}")
    major, minor, patch = parts
    return major, minor, patch


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def require_supported(version: str) -> str:
    parse(version)
    if version not in SUPPORTED:
        raise CniError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {list(SUPPORTED)}")
    return version


def pick(versions: list[str], supported: tuple[str, ...] = SUPPORTED) -> str | None:
    """The highest of a conflist's ``cniVersions`` that we support (libcni's rule)."""
    usable = [v for v in versions if v in supported]
    return max(usable, key=parse) if usable else None


def version_info() -> dict:
    return {"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)}


# --- results ---------------------------------------------------------------

def _family(cidr_or_ip: str) -> int:
    return ipaddress.ip_interface(cidr_or_ip).version


def convert(result: dict, to_version: str) -> dict:
    """Convert an internal (1.1.0-shaped) result to ``to_version``."""
    require_supported(to_version)
    out = copy.deepcopy(result)
    if at_least(to_version, "1.1.0"):
        out["cniVersion"] = to_version
        return out
    for route in out.get("routes", []):
        for key in _ROUTE_FIELDS_1_1:
            route.pop(key, None)
    for iface in out.get("interfaces", []):
        for key in _IFACE_FIELDS_1_1:
            iface.pop(key, None)
    if at_least(to_version, "1.0.0"):
        out["cniVersion"] = to_version
        return out
    if at_least(to_version, "0.3.0"):
        for ip in out.get("ips", []):
            ip["version"] = str(_family(ip["address"]))
        out["cniVersion"] = to_version
        return out
    return _to_legacy(out, to_version)


def _to_legacy(result: dict, to_version: str) -> dict:
    """0.1.0/0.2.0 results: one ``ip4`` and one ``ip6`` block, routes by family."""
    out: dict = {"cniVersion": to_version}
    for ip in result.get("ips", []):
        key = f"ip{_family(ip['address'])}"
        if key in out:
            continue
        block = {"ip": ip["address"]}
        if ip.get("gateway"):
            block["gateway"] = ip["gateway"]
        routes = [r for r in result.get("routes", []) if f"ip{_family(r['dst'])}" == key]
        if routes:
            block["routes"] = routes
        out[key] = block
    if result.get("dns"):
        out["dns"] = result["dns"]
    return out


def to_current(result: dict) -> dict:
    """Parse a result of any supported version into the internal shape."""
    if not isinstance(result, dict):
        raise CniError(Code.DECODING_FAILURE, "result is not a JSON object")
    version = result.get("cniVersion", "0.1.0")
    require_supported(version)
    if not at_least(version, "0.3.0"):
        return _from_legacy(result)
    out = copy.deepcopy(result)
    out["cniVersion"] = CURRENT
    for ip in out.get("ips", []) or []:
        ip.pop("version", None)
    return out


def _from_legacy(result: dict) -> dict:
    out: dict = {"cniVersion": CURRENT, "interfaces": [], "ips": [], "routes": []}
    for key in ("ip4", "ip6"):
        block = result.get(key)
        if not block:
            continue
        ip = {"address": block["ip"]}
        if block.get("gateway"):
            ip["gateway"] = block["gateway"]
        out["ips"].append(ip)
        out["routes"].extend(block.get("routes", []))
    if result.get("dns"):
        out["dns"] = result["dns"]
    return out
