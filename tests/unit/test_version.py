"""Result conversion between spec versions, and version negotiation."""
import pytest

from cni import version
from cni.errors import CniError, Code

RESULT = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "br0", "mac": "aa:bb:cc:dd:ee:00"},
                   {"name": "pw1", "mac": "aa:bb:cc:dd:ee:01", "mtu": 1400},
                   {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "priority": 10},
               {"dst": "::/0", "gw": "fd00::1", "table": 100}],
    "dns": {"nameservers": ["10.1.0.10"]},
}


def test_current_is_unchanged_but_copied():
    out = version.convert(RESULT, "1.1.0")
    assert out == RESULT and out is not RESULT


def test_1_0_0_drops_fields_new_in_1_1():
    out = version.convert(RESULT, "1.0.0")
    assert out["cniVersion"] == "1.0.0"
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "::/0", "gw": "fd00::1"}]
    assert "mtu" not in out["interfaces"][1]
    assert "version" not in out["ips"][0]


@pytest.mark.parametrize("v", ["0.3.0", "0.3.1", "0.4.0"])
def test_0_3_and_0_4_carry_ip_versions(v):
    out = version.convert(RESULT, v)
    assert out["cniVersion"] == v
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert out["ips"][0]["interface"] == 2


@pytest.mark.parametrize("v", ["0.1.0", "0.2.0"])
def test_legacy_results_have_ip4_and_ip6_blocks(v):
    out = version.convert(RESULT, v)
    assert out == {
        "cniVersion": v,
        "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
        "dns": {"nameservers": ["10.1.0.10"]},
    }


@pytest.mark.parametrize("v", version.SUPPORTED)
def test_round_trip_keeps_addresses(v):
    back = version.to_current(version.convert(RESULT, v))
    assert back["cniVersion"] == "1.1.0"
    assert [ip["address"] for ip in back["ips"]] == ["10.1.0.5/24", "fd00::5/64"]
    assert all("version" not in ip for ip in back["ips"])


def test_unknown_version_is_incompatible():
    with pytest.raises(CniError) as err:
        version.convert(RESULT, "2.0.0")
    assert err.value.code == Code.INCOMPATIBLE_VERSION


@pytest.mark.parametrize("bad", ["1.0", "x.y.z", "", None, "1.-1.0"])
def test_malformed_version_is_a_decoding_error(bad):
    with pytest.raises(CniError) as err:
        version.parse(bad)
    assert err.value.code == Code.DECODING_FAILURE


def test_pick_highest_supported():
    assert version.pick(["0.3.1", "1.0.0", "9.9.9", "0.4.0"]) == "1.0.0"
    assert version.pick(["1.1.0", "1.0.0"]) == "1.1.0"
    assert version.pick(["5.0.0"]) is None
