"""Loading network configurations (libcni conf.go semantics)."""
from __future__ import annotations

import json

import pytest

from cni.errors import CniError, Code
from cni.libcni import (conf_files, conflist_from_bytes, load_conflist, load_default_network,
                        load_network)


def conflist(name="net", version="1.0.0", plugins=None, **extra) -> dict:
    return {"cniVersion": version, "name": name,
            "plugins": plugins if plugins is not None else [{"type": "bridge"}], **extra}


def write(path, data) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_conf_files_sorted_by_name_filtered_by_extension(tmp_path):
    for name in ("20-b.conflist", "10-a.conf", "30-c.json", "05-x.txt", "99-z.conflist.bak"):
        write(tmp_path / name, "{}")
    (tmp_path / "00-dir.conf").mkdir()
    assert conf_files(str(tmp_path)) == [str(tmp_path / n) for n in ("10-a.conf", "20-b.conflist", "30-c.json")]
    assert conf_files(str(tmp_path), (".conflist",)) == [str(tmp_path / "20-b.conflist")]


def test_conf_files_missing_dir_is_empty(tmp_path):
    assert conf_files(str(tmp_path / "nope")) == []


def test_load_conflist_keeps_fields_and_raw_bytes(tmp_path):
    data = conflist(plugins=[{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": True}}],
                    disableCheck=True, disableGC="TRUE")
    path = write(tmp_path / "10-net.conflist", data)
    netlist = load_conflist(path)
    assert (netlist.name, netlist.cni_version) == ("net", "1.0.0")
    assert [p["type"] for p in netlist.plugins] == ["bridge", "portmap"]
    assert netlist.disable_check and netlist.disable_gc
    assert netlist.raw == (tmp_path / "10-net.conflist").read_bytes()
    assert netlist.capabilities() == ["portMappings"]


def test_single_plugin_conf_becomes_one_plugin_list(tmp_path):
    single = {"cniVersion": "0.4.0", "name": "old", "type": "bridge", "bridge": "br0"}
    netlist = load_conflist(write(tmp_path / "10-old.conf", single))
    assert (netlist.name, netlist.cni_version) == ("old", "0.4.0")
    assert netlist.plugins == [single]
    # The bytes libcni's ConfListFromConf would cache: Go marshals map keys sorted.
    assert json.loads(netlist.raw) == {"cniVersion": "0.4.0", "name": "old", "plugins": [single]}
    assert netlist.raw.startswith(b'{"cniVersion":"0.4.0","name":"old","plugins":[{"bridge":"br0"')


@pytest.mark.parametrize("versions, version, picked", [
    (["0.3.1", "1.0.0", "0.4.0"], None, "1.0.0"),
    (["0.4.0", "1.1.0", "2.5.0"], "0.3.1", "1.1.0"),     # unknown future versions are ignored
    (["0.4.0"], "1.0.0", "1.0.0"),                      # cniVersion competes too
])
def test_cni_versions_pick_highest_supported(versions, version, picked):
    data = conflist(cniVersions=versions)
    if version is None:
        del data["cniVersion"]
    else:
        data["cniVersion"] = version
    assert conflist_from_bytes(json.dumps(data).encode()).cni_version == picked


def test_no_supported_cni_version_is_incompatible():
    with pytest.raises(CniError) as err:
        conflist_from_bytes(json.dumps(conflist(version="7.0.0")).encode())
    assert err.value.code == Code.INCOMPATIBLE_VERSION


def test_malformed_json_is_a_decode_error_naming_the_file(tmp_path):
    path = write(tmp_path / "10-bad.conflist", '{"name": "x",')
    with pytest.raises(CniError) as err:
        load_conflist(path)
    assert err.value.code == Code.DECODING_FAILURE
    assert path in err.value.msg


@pytest.mark.parametrize("data", [
    {"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]},             # no name
    conflist(name="bad name!"),
    conflist(name=7),
    {"cniVersion": "1.0.0", "name": "net"},                               # no plugins, no type
    conflist(plugins=[]),
    conflist(plugins=[{"bridge": "br0"}]),                                # plugin without type
    conflist(plugins=["bridge"]),
    conflist(plugins=[{"type": "bridge", "capabilities": {"portMappings": "yes"}}]),
    conflist(disableCheck="maybe"),
])
def test_invalid_config_is_code_7_naming_the_file(tmp_path, data):
    path = write(tmp_path / "10-net.conflist", data)
    with pytest.raises(CniError) as err:
        load_conflist(path)
    assert err.value.code == Code.INVALID_CONFIG
    assert path in err.value.msg


def test_plugins_from_network_subdirectory(tmp_path):
    (tmp_path / "net").mkdir()
    write(tmp_path / "net" / "20-tuning.conf", {"type": "tuning"})
    write(tmp_path / "net" / "10-portmap.conf", {"type": "portmap"})
    netlist = load_conflist(write(tmp_path / "10-net.conflist", conflist()))
    assert [p["type"] for p in netlist.plugins] == ["bridge", "portmap", "tuning"]

    inlined = write(tmp_path / "11-net.conflist", conflist(loadOnlyInlinedPlugins=True))
    assert [p["type"] for p in load_conflist(inlined).plugins] == ["bridge"]

    only_dir = {"cniVersion": "1.0.0", "name": "net"}
    assert [p["type"] for p in load_conflist(write(tmp_path / "12.conflist", only_dir)).plugins] == [
        "portmap", "tuning"]


def test_default_network_is_first_valid_file(tmp_path):
    write(tmp_path / "05-broken.conflist", "not json")
    write(tmp_path / "20-second.conflist", conflist(name="second"))
    write(tmp_path / "10-first.conf", {"cniVersion": "1.0.0", "name": "first", "type": "ptp"})
    assert load_default_network(str(tmp_path)).name == "first"
    assert load_network(str(tmp_path / "."), "second").name == "second"


def test_no_valid_default_network(tmp_path):
    write(tmp_path / "05-broken.conflist", "not json")
    with pytest.raises(CniError) as err:
        load_default_network(str(tmp_path))
    assert err.value.code == Code.INVALID_CONFIG
    assert "05-broken.conflist" in err.value.details
    with pytest.raises(CniError):
        load_default_network(str(tmp_path / "missing"))
