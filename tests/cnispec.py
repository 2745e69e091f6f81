"""What the CNI spec says per version, written down independently of cni/version.py so the
spec-matrix tests (tests/unit/test_spec_matrix.py, tests/netns/test_spec_versions.py) check
podwire against the spec, not against itself.  Imported by tests, not collected.

Sources: SPEC.md of each spec version and the Go skel (containernetworking/cni pkg/skel):
CHECK arrived in 0.4.0, STATUS and GC in 1.1.0, and a verb the config's version does not
know is refused with code 1 (incompatible CNI version), "config version does not allow X".
Results: 0.1.0/0.2.0 have one ``ip4`` and one ``ip6`` block; 0.3.0 introduced
``interfaces``/``ips``/``routes``, and 0.3.x/0.4.0 ``ips`` carry ``version`` ("4"/"6"),
dropped in 1.0.0; 1.1.0 added route mtu/advmss/priority/table/scope and interface
mtu/socketPath/pciID.  IPAM plugins omit ``interfaces`` and ``ips[].interface``.
"""
from __future__ import annotations

import ipaddress

SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
VERB_SINCE = {"ADD": "0.1.0", "DEL": "0.1.0", "CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
INCOMPATIBLE_VERSION = 1

_DNS_KEYS = {"nameservers", "domain", "search", "options"}
_ROUTE_KEYS_1_0 = {"dst", "gw"}
_ROUTE_KEYS_1_1 = _ROUTE_KEYS_1_0 | {"mtu", "advmss", "priority", "table", "scope"}
_IFACE_KEYS_1_0 = {"name", "mac", "sandbox"}
_IFACE_KEYS_1_1 = _IFACE_KEYS_1_0 | {"mtu", "socketPath", "pciID"}


def at_least(v: str, minimum: str) -> bool:
    return SPEC_VERSIONS.index(v) >= SPEC_VERSIONS.index(minimum)


def allows(v: str, verb: str) -> bool:
    """Whether a config of spec version ``v`` may be sent ``verb``."""
    return at_least(v, VERB_SINCE[verb])


def refusal(v: str, verb: str) -> dict:
    """The error a plugin prints for ``verb`` on a config of version ``v`` that predates it
    (without ``details``, which the spec leaves free)."""
    return {"cniVersion": v, "code": INCOMPATIBLE_VERSION, "msg": f"config version does not allow {verb}"}


def is_legacy(v: str) -> bool:
    return not at_least(v, "0.3.0")


def addresses(result: dict) -> list[str]:
    """The CIDR addresses of a result of any version, in order."""
    if "ips" in result:
        return [ip["address"] for ip in result["ips"]]
    return [result[k]["ip"] for k in ("ip4", "ip6") if k in result]


def _family(cidr: str) -> int:
    return ipaddress.ip_interface(cidr).version


def _subset(keys, allowed: set, what: str) -> None:
    extra = set(keys) - allowed
    assert not extra, f"{what}: keys {sorted(extra)} not in this spec version ({sorted(allowed)})"


def _check_route(route: dict, allowed: set, what: str, family: int | None = None) -> None:
    _subset(route, allowed, what)
    assert "dst" in route, f"{what}: no dst"
    net = ipaddress.ip_network(route["dst"])
    if family is not None:
        assert net.version == family, f"{what}: {route['dst']} in the ip{family} block"
    if "gw" in route:
        assert ipaddress.ip_address(route["gw"]).version == net.version, f"{what}: gw family"


def check_result(result: dict, v: str, *, ipam: bool = False) -> None:
    """Assert that ``result`` is a well-formed ADD result of spec version ``v``."""
    assert isinstance(result, dict), result
    assert result.get("cniVersion") == v, f"result is {result.get('cniVersion')!r}, config was {v}"
    if "dns" in result:
        _subset(result["dns"], _DNS_KEYS, "dns")
    if is_legacy(v):
        _subset(result, {"cniVersion", "ip4", "ip6", "dns"}, f"{v} result")
        assert "ip4" in result or "ip6" in result, f"{v} result without ip4/ip6: {result}"
        for key, family in (("ip4", 4), ("ip6", 6)):
            if key not in result:
                continue
            block = result[key]
            _subset(block, {"ip", "gateway", "routes"}, f"{v} {key}")
            assert _family(block["ip"]) == family, f"{key}: {block['ip']}"
            if "gateway" in block:
                assert ipaddress.ip_address(block["gateway"]).version == family
            for route in block.get("routes", []):
                _check_route(route, _ROUTE_KEYS_1_0, f"{v} {key} route", family)
        return
    newest = at_least(v, "1.1.0")
    _subset(result, {"cniVersion", "interfaces", "ips", "routes", "dns"}, f"{v} result")
    interfaces = result.get("interfaces", [])
    if ipam:   # an empty list is allowed (Go's types omit it; a converted 0.1.0/0.2.0 result has one)
        assert not interfaces, f"IPAM results have no interfaces: {interfaces}"
    for iface in interfaces:
        _subset(iface, _IFACE_KEYS_1_1 if newest else _IFACE_KEYS_1_0, f"{v} interface")
        assert iface.get("name"), f"{v} interface without a name: {iface}"
    carries_version = not at_least(v, "1.0.0")
    for ip in result.get("ips", []):
        allowed = {"address", "gateway", "interface"} | ({"version"} if carries_version else set())
        _subset(ip, allowed, f"{v} ip")
        family = _family(ip["address"])
        if carries_version:
            assert ip.get("version") == str(family), f"{v} ip needs version {str(family)!r}: {ip}"
        if "gateway" in ip:
            assert ipaddress.ip_address(ip["gateway"]).version == family
        if "interface" in ip:
            assert not ipam, "IPAM results have no ips[].interface"
            assert 0 <= ip["interface"] < len(interfaces), f"ips[].interface {ip['interface']} out of range"
    for route in result.get("routes", []):
        _check_route(route, _ROUTE_KEYS_1_1 if newest else _ROUTE_KEYS_1_0, f"{v} route")
