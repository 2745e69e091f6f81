"""podwire-ipam config parsing: host-local's keys and defaults, and every reject case."""
from __future__ import annotations

import ipaddress

import pytest

from cni.errors import CniError, Code
from cni.ipam import config
from cni.skel import CmdArgs

ip = ipaddress.ip_address


def load(ipam: dict, cni_args: dict | None = None, **top) -> config.IpamConfig:
    conf = {"cniVersion": "1.0.0", "name": "net1", "ipam": {"type": "podwire-ipam", **ipam}, **top}
    return config.load(CmdArgs(command="ADD", container_id="c1", ifname="eth0",
                               args=cni_args or {}, config=conf))


def reject(ipam: dict, code: int = Code.INVALID_CONFIG, **kw) -> CniError:
    with pytest.raises(CniError) as info:
        load(ipam, **kw)
    assert info.value.code == code, info.value
    return info.value


def test_defaults_follow_host_local():
    conf = load({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/64"}]]})
    v4, v6 = (s.ranges[0] for s in conf.range_sets)
    assert (v4.gateway, v4.start, v4.end) == (ip("10.1.0.1"), ip("10.1.0.2"), ip("10.1.0.254"))
    assert (v6.gateway, v6.start, v6.end) == (ip("fd00:1::1"), ip("fd00:1::2"),
                                              ip("fd00:1::ffff:ffff:ffff:ffff"))
    assert conf.store_dir == "/var/lib/cni/networks/net1"
    assert str(conf.range_sets[0]) == "10.1.0.2-10.1.0.254"


def test_explicit_values_are_kept():
    conf = load({"dataDir": "/tmp/x", "ranges": [[{"subnet": "10.1.0.0/24", "gateway": "10.1.0.254",
                                                    "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20"}]]})
    r = conf.range_sets[0].ranges[0]
    assert (r.gateway, r.start, r.end) == (ip("10.1.0.254"), ip("10.1.0.10"), ip("10.1.0.20"))
    assert conf.store_dir == "/tmp/x/net1"


def test_gateway_elsewhere_leaves_dot_one_allocatable():
    r = load({"ranges": [[{"subnet": "10.1.0.0/24", "gateway": "10.1.0.254"}]]}).range_sets[0].ranges[0]
    assert r.start == ip("10.1.0.1")


def test_legacy_subnet_and_runtime_ranges_are_prepended():
    conf = load({"subnet": "10.2.0.0/24", "ranges": [[{"subnet": "10.3.0.0/24"}]]},
                runtimeConfig={"ipRanges": [[{"subnet": "10.4.0.0/24"}]]})
    subnets = [str(s.ranges[0].subnet) for s in conf.range_sets]
    assert subnets == ["10.4.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]


def test_several_subnets_per_family_in_one_set():
    conf = load({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.1.0/24"}]]})
    assert len(conf.range_sets) == 1 and len(conf.range_sets[0].ranges) == 2


@pytest.mark.parametrize("ipam, words", [
    ({"ranges": [[{"subnet": "10.1.0.0/31"}]]}, "too small"),
    ({"ranges": [[{"subnet": "10.1.0.0/32"}]]}, "too small"),
    ({"ranges": [[{"subnet": "fd00::/127"}]]}, "too small"),
    ({"ranges": [[{"subnet": "fd00::/128"}]]}, "too small"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.1.5"}]]}, "rangeStart 10.1.1.5 not in network"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeEnd": "10.2.0.5"}]]}, "rangeEnd 10.2.0.5 not in network"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "gateway": "10.9.0.1"}]]}, "gateway 10.9.0.1 not in network"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "gateway": "fd00::1"}]]}, "gateway fd00::1 not in network"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.9", "rangeEnd": "10.1.0.5"}]]}, "after rangeEnd"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.128/25"}]]}, "overlap"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/16"}]]}, "range set 0 overlaps with 1"),
    ({"subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.1.0.0/24"}]]}, "range set 0 overlaps with 1"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "fd00::/64"}]]}, "mixed address families"),
    ({"ranges": []}, "no IP ranges"),
    ({}, "no IP ranges"),
    ({"ranges": [[]]}, "invalid range set 0"),
    ({"ranges": [[{"subnet": "nonsense"}]]}, "invalid subnet"),
    ({"ranges": [[{"rangeStart": "10.1.0.1"}]]}, "'subnet' must be"),
])
def test_invalid_ranges_are_config_errors(ipam, words):
    assert words in reject(ipam).msg


@pytest.mark.parametrize("ipam", [
    {"ranges": "10.1.0.0/24"},
    {"ranges": ["10.1.0.0/24"]},
    {"ranges": [["10.1.0.0/24"]]},
    {"ranges": [[{"subnet": 167837696}]]},
    {"ranges": [[{"subnet": "10.1.0.0/24", "gateway": 1}]]},
    {"subnet": ["10.1.0.0/24"]},
    {"subnet": "10.1.0.0/24", "dataDir": 5},
    {"subnet": "10.1.0.0/24", "dataDir": "relative/dir"},
    {"subnet": "10.1.0.0/24", "resolvConf": ["/etc/resolv.conf"]},
    {"subnet": "10.1.0.0/24", "routes": {"dst": "0.0.0.0/0"}},
    {"subnet": "10.1.0.0/24", "routes": [{"gw": "10.1.0.1"}]},
    {"subnet": "10.1.0.0/24", "routes": [{"dst": "not-a-cidr"}]},
    {"subnet": "10.1.0.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]},
])
def test_values_of_the_wrong_type_are_config_errors(ipam):
    reject(ipam)


def test_missing_or_malformed_ipam_section():
    for conf in ({"cniVersion": "1.0.0", "name": "n"}, {"cniVersion": "1.0.0", "name": "n", "ipam": "x"}):
        with pytest.raises(CniError) as info:
            config.load(CmdArgs(command="ADD", config=conf))
        assert info.value.code == Code.INVALID_CONFIG


def test_old_versions_allow_one_address_per_family():
    ranges = {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}
    assert "does not support more than 1 address per family" in reject(ranges, cniVersion="0.2.0").msg
    assert len(load(ranges, cniVersion="0.3.1").range_sets) == 2


def test_requested_ips_from_every_source_in_order_without_duplicates():
    conf = load({"subnet": "10.1.0.0/24"}, cni_args={"IP": "10.1.0.5,fd00::5", "K8S_POD_NAME": "x"},
                args={"cni": {"ips": ["10.1.0.6", "10.1.0.5"]}},
                runtimeConfig={"ips": ["10.1.0.7/24"]})
    assert conf.requested == (ip("10.1.0.5"), ip("fd00::5"), ip("10.1.0.6"), ip("10.1.0.7"))


def test_invalid_requested_ips():
    assert reject({"subnet": "10.1.0.0/24"}, runtimeConfig={"ips": ["10.1.0.300"]}).code == Code.INVALID_CONFIG
    reject({"subnet": "10.1.0.0/24"}, args={"cni": {"ips": "10.1.0.5"}})
    reject({"subnet": "10.1.0.0/24"}, code=Code.INVALID_ENVIRONMENT, cni_args={"IP": "banana"})


def test_store_dir_ignores_broken_ranges():
    conf = {"name": "net1", "ipam": {"dataDir": "/tmp/d", "ranges": [[{"subnet": "10.1.0.0/32"}]]}}
    assert config.store_dir(conf) == "/tmp/d/net1"
    with pytest.raises(CniError) as info:
        config.store_dir({"name": "../etc", "ipam": {}})
    assert info.value.code == Code.INVALID_CONFIG


def test_resolv_conf(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# comment\n; another\nnameserver 1.1.1.1\nnameserver fd00::53\ndomain example.com\n"
                    "search a.example b.example\noptions ndots:5 edns0\nnameserver\n")
    assert config.parse_resolv_conf(str(path)) == {
        "nameservers": ["1.1.1.1", "fd00::53"], "domain": "example.com",
        "search": ["a.example", "b.example"], "options": ["ndots:5", "edns0"]}
    with pytest.raises(CniError) as info:
        config.parse_resolv_conf(str(tmp_path / "missing"))
    assert info.value.code == Code.IO_FAILURE
