"""The podwire plugin's config parsing: defaults, reference-bridge keys, rejections."""
import pytest

from cni.errors import CniError, Code
from cni.plugin import config
from cni.plugin.naming import host_veth_name, host_alias, parse_alias

BASE = {"cniVersion": "1.1.0", "name": "n1", "type": "podwire", "ipam": {"type": "podwire-ipam"}}


def test_defaults():
    c = config.parse(BASE)
    assert (c.mode, c.bridge, c.is_gateway, c.ip_masq, c.enable_dad, c.mtu) == ("bridge", "podwire0", False, False, False, 0)


def test_is_default_gateway_implies_is_gateway():
    c = config.parse({**BASE, "isDefaultGateway": True})
    assert c.is_gateway and c.is_default_gateway


@pytest.mark.parametrize("extra", [
    {"mode": "overlay"}, {"hairpinMode": True, "promiscMode": True}, {"vlan": 4095}, {"vlan": -1},
    {"mtu": 20}, {"mtu": "1500"}, {"isGateway": "yes"}, {"bridge": "a" * 16}, {"bridge": "br/0"},
    {"ipam": {}}, {"ipMasqBackend": "pf"}, {"mode": "routed", "vlan": 10},
    {"runtimeConfig": {"mac": "zz:zz:zz:zz:zz:zz"}},
])
def test_invalid_configs_are_code_7(extra):
    with pytest.raises(CniError) as err:
        config.parse({**BASE, **extra})
    assert err.value.code == Code.INVALID_CONFIG


def test_mac_precedence_runtime_config_then_args_then_cni_args():
    conf = {**BASE, "runtimeConfig": {"mac": "02:00:00:00:00:01"}, "args": {"cni": {"mac": "02:00:00:00:00:02"}}}
    assert config.parse(conf, {"MAC": "02:00:00:00:00:03"}).mac == "02:00:00:00:00:01"
    conf.pop("runtimeConfig")
    assert config.parse(conf, {"MAC": "02:00:00:00:00:03"}).mac == "02:00:00:00:00:02"
    conf.pop("args")
    assert config.parse(conf, {"MAC": "02:00:00:00:00:03"}).mac == "02:00:00:00:00:03"


def test_host_veth_name_is_deterministic_and_short():
    a = host_veth_name("c" * 128, "eth0")
    assert a == host_veth_name("c" * 128, "eth0") and len(a) <= 15
    assert a != host_veth_name("c" * 128, "eth1")


def test_alias_round_trip():
    assert parse_alias(host_alias("net", "cid", "eth0")) == ("net", "cid", "eth0")
    assert parse_alias("something else") is None
