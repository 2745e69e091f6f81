"""Parse and validate the ``ipam`` section of a network config (host-local's keys).

IPAM plugins get the calling plugin's whole network config; this module turns
it into an :class:`IpamConfig` or raises a code-7 :class:`CniError` that says
what is wrong.  Defaults follow host-local so its configs work unchanged.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Union

from .. import version
from ..errors import CniError, Code, invalid_config, invalid_env
from ..skel import CmdArgs, validate_network_name
from . import nodecidr

IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


@dataclasses.dataclass(frozen=True)
class Range:
    """One allocatable range: ``start``..``end`` inclusive, inside ``subnet``."""

    subnet: Network
    start: IP
    end: IP
    gateway: IP

    def __contains__(self, ip: IP) -> bool:
        # By int: mypy cannot tell an IPv4 from an IPv6 address here, the version check can.
        return ip.version == self.start.version and int(self.start) <= int(ip) <= int(self.end)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"  # host-local's spelling, used in messages


@dataclasses.dataclass(frozen=True)
class RangeSet:
    """Ranges of one family; an attachment gets one address from each set."""

    ranges: tuple[Range, ...]

    def find_range(self, ip: IP) -> Range | None:
        return next((r for r in self.ranges if ip in r), None)

    def range_for(self, ip: IP) -> Range:
        """The range holding ``ip``, which the caller knows is in this set."""
        found = self.find_range(ip)
        if found is None:
            raise ValueError(f"{ip} is in no range of {self}")
        return found

    def __contains__(self, ip: IP) -> bool:
        return self.find_range(ip) is not None

    @property
    def family(self) -> int:
        return self.ranges[0].start.version

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


@dataclasses.dataclass(frozen=True)
class IpamConfig:
    name: str
    data_dir: str
    range_sets: tuple[RangeSet, ...]
    routes: tuple[dict, ...] = ()
    resolv_conf: str = ""
    requested: tuple[IP, ...] = ()

    @property
    def store_dir(self) -> str:
        return os.path.join(self.data_dir, self.name)


def load(args: CmdArgs) -> IpamConfig:
    """The full IPAM config of one invocation (config plus requested IPs)."""
    conf = args.config
    ipam = _ipam_section(conf)
    sets = _range_sets(conf, ipam)
    _check_families(sets, conf.get("cniVersion", "0.1.0"))
    _check_overlaps(sets)
    return IpamConfig(name=conf["name"], data_dir=_data_dir(ipam), range_sets=tuple(sets),
                      routes=tuple(_routes(ipam.get("routes"))),
                      resolv_conf=_typed(ipam, "resolvConf", str, ""),
                      requested=tuple(requested_ips(conf, args.args)))


def store_dir(config: dict) -> str:
    """Only where the leases live: all DEL needs, so a broken range config
    (e.g. edited after pods started) never blocks releasing addresses."""
    ipam = _ipam_section(config)
    return os.path.join(_data_dir(ipam), config["name"])


def configured_ranges(config: dict) -> tuple[str, list[RangeSet]]:
    """The lease directory and the range sets of the network config itself (no per-call
    ``runtimeConfig.ipRanges``): what podwire-cnid's lease metrics count against."""
    ipam = _ipam_section(config)
    return os.path.join(_data_dir(ipam), config["name"]), _range_sets({}, ipam)


def _ipam_section(conf: dict) -> dict:
    validate_network_name(conf.get("name"))
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise invalid_config("IPAM config missing 'ipam' key" if ipam is None
                             else "'ipam' must be an object")
    return ipam


def _typed(obj: dict, key: str, kind: type, default):
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise invalid_config(f"invalid type for ipam key {key!r}",
                             f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _data_dir(ipam: dict) -> str:
    data_dir = _typed(ipam, "dataDir", str, "") or DEFAULT_DATA_DIR
    if not os.path.isabs(data_dir):
        raise invalid_config("ipam dataDir must be an absolute path", data_dir)
    return data_dir


# --- ranges ------------------------------------------------------------------

def _range_sets(conf: dict, ipam: dict) -> list[RangeSet]:
    raw = list(_typed(ipam, "ranges", list, []))
    if ipam.get("subnet") is not None:  # legacy single range goes first, as in host-local
        raw.insert(0, [{k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway")}])
    runtime = _typed(conf, "runtimeConfig", dict, {})
    raw = list(_typed(runtime, "ipRanges", list, [])) + raw  # capability ranges come first
    if not raw:
        raise invalid_config("no IP ranges specified")
    return [_range_set(i, rs) for i, rs in enumerate(raw)]


def _range_set(index: int, raw) -> RangeSet:
    if not isinstance(raw, list) or not raw:
        raise invalid_config(f"invalid range set {index}", "a range set is a non-empty list of ranges")
    ranges = tuple(_range(index, r) for r in raw)
    if len({r.start.version for r in ranges}) > 1:
        raise invalid_config(f"invalid range set {index}: mixed address families")
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if _overlap(a, b):
                raise invalid_config(f"invalid range set {index}: ranges {a} and {b} overlap")
    return RangeSet(ranges)


def _range(index: int, raw) -> Range:
    where = f"invalid range set {index}"
    if not isinstance(raw, dict):
        raise invalid_config(where, "a range is an object with 'subnet'")
    value = raw.get("subnet")
    if isinstance(value, str) and value in nodecidr.PLACEHOLDERS:
        value = nodecidr.resolve(value)
    subnet = _network(where, value)
    if subnet.num_addresses < 4:  # /31, /32, /127, /128: nothing left to hand out
        raise invalid_config(f"{where}: network {subnet} too small to allocate from")
    first = subnet.network_address + 1
    gateway = _address(where, raw, "gateway", subnet, default=first)
    # Default start: the first host address that is not the gateway.  host-local
    # starts at .1 and skips the gateway while allocating: the same addresses,
    # but our messages then show the range really handed out (.2-.254).
    start = _address(where, raw, "rangeStart", subnet, default=first + 1 if gateway == first else first)
    end = _address(where, raw, "rangeEnd", subnet, default=_last_usable(subnet))
    if int(start) > int(end):  # same family: both were checked against the subnet
        raise invalid_config(f"{where}: rangeStart {start} is after rangeEnd {end}")
    return Range(subnet=subnet, start=start, end=end, gateway=gateway)


def _network(where: str, value) -> Network:
    if not isinstance(value, str):
        raise invalid_config(f"{where}: 'subnet' must be a CIDR string", repr(value))
    try:
        # strict=False: host-local accepts "10.1.0.5/24" and masks it to 10.1.0.0/24
        return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise invalid_config(f"{where}: invalid subnet {value!r}", str(exc)) from None


def _address(where: str, raw: dict, key: str, subnet: Network, default: IP) -> IP:
    value = raw.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise invalid_config(f"{where}: {key!r} must be an IP address string", repr(value))
    try:
        ip = ipaddress.ip_address(value)
    except ValueError as exc:
        raise invalid_config(f"{where}: invalid {key} {value!r}", str(exc)) from None
    if ip.version != subnet.version or ip not in subnet:
        raise invalid_config(f"{where}: {key} {ip} not in network {subnet}")
    return ip


def _last_usable(subnet: Network) -> IP:
    # the IPv4 broadcast address is not a host address; IPv6 has no broadcast
    return subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address


def _overlap(a: Range, b: Range) -> bool:
    return (a.start.version == b.start.version and int(a.start) <= int(b.end)
            and int(b.start) <= int(a.end))


def _check_overlaps(sets: list[RangeSet]) -> None:
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if any(_overlap(x, y) for x in a.ranges for y in sets[j].ranges):
                raise invalid_config(f"range set {i} overlaps with {j}")


def _check_families(sets: list[RangeSet], cni_version: str) -> None:
    families = [s.family for s in sets]
    if max(families.count(4), families.count(6)) > 1 and not version.at_least(cni_version, "0.3.0"):
        # 0.1.0/0.2.0 results carry one ip4 and one ip6 block only
        raise invalid_config(f"CNI version {cni_version} does not support more than 1 address per family")


# --- routes ------------------------------------------------------------------

def _routes(raw) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_config("invalid type for ipam key 'routes'", "expected a list of {dst, gw}")
    return [_route(r) for r in raw]


def _route(raw) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("dst"), str):
        raise invalid_config("invalid route", f"{raw!r}: a route needs 'dst'")
    try:
        dst = ipaddress.ip_network(raw["dst"], strict=False)
        gw = ipaddress.ip_address(raw["gw"]) if raw.get("gw") else None
    except (ValueError, TypeError) as exc:
        raise invalid_config("invalid route", f"{raw!r}: {exc}") from None
    if gw is not None and gw.version != dst.version:
        raise invalid_config("invalid route", f"{raw!r}: gw and dst are of different families")
    return dict(raw)  # passed through as given: 1.1 fields (mtu, table, ...) included


# --- requested addresses -------------------------------------------------------

def requested_ips(conf: dict, cni_args: dict) -> list[IP]:
    """Addresses asked for by CNI_ARGS ``IP=``, ``args.cni.ips`` and the ``ips``
    capability (runtimeConfig), in that order, without duplicates."""
    out: list[IP] = []
    for text in filter(None, cni_args.get("IP", "").split(",")):
        out.append(_requested(text.strip(), invalid_env, "CNI_ARGS IP"))
    args = _typed(conf, "args", dict, {})
    cni = _typed(args, "cni", dict, {})
    for text in _typed(cni, "ips", list, []):
        out.append(_requested(text, invalid_config, "args.cni.ips"))
    runtime = _typed(conf, "runtimeConfig", dict, {})
    for text in _typed(runtime, "ips", list, []):
        out.append(_requested(text, invalid_config, "runtimeConfig.ips"))
    return list(dict.fromkeys(out))


def _requested(text, error, source: str) -> IP:
    try:
        # the ips capability allows "10.1.0.5/24"; only the address matters
        return ipaddress.ip_interface(text).ip
    except (ValueError, TypeError):
        raise error(f"invalid IP address in {source}", repr(text)) from None


# --- resolv.conf ---------------------------------------------------------------

def parse_resolv_conf(path: str) -> dict:
    """A resolv.conf file as a CNI ``dns`` object (keys with no value are omitted)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read resolvConf {path}", exc.strerror or str(exc)) from None
    dns: dict = {"nameservers": [], "domain": "", "search": [], "options": []}
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or fields[0][0] in "#;":
            continue
        if fields[0] == "nameserver":
            dns["nameservers"].append(fields[1])
        elif fields[0] == "domain":
            dns["domain"] = fields[1]
        elif fields[0] == "search":
            dns["search"] = fields[1:]  # the last search line wins, as in resolv.conf(5)
        elif fields[0] == "options":
            dns["options"].extend(fields[1:])
    return {k: v for k, v in dns.items() if v}
