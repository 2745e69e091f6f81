"""CNIConfig against fake plugins that log exactly what they received.

Each fake is an executable script in tmp_path: it appends its CNI_* env and its
parsed stdin to a log, and on ADD prints its prevResult (or a fresh result)
with one more interface named after itself, so chaining is visible.  The
plugin config can make it fail (``"fail": {"DEL": 11}``) or hang (``"sleep"``).
"""
from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import stat
import sys

import pytest

from cni.errors import CniError, Code
from cni.libcni import CNIConfig, RuntimeConf, conflist_from_bytes

FAKE_PLUGIN = '''#!{python}
import json, os, sys, time
stdin = sys.stdin.read()
conf = json.loads(stdin) if stdin.strip() else {{}}
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open({log!r}, "a") as f:
    f.write(json.dumps({{"plugin": {name!r}, "env": env, "conf": conf}}) + "\\n")
command = env["CNI_COMMAND"]
time.sleep(conf.get("sleep", 0))
code = conf.get("fail", {{}}).get(command)
if code:
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": code,
                      "msg": {name!r} + " failed", "details": "on purpose"}}))
    sys.exit(1)
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]}}))
elif command == "ADD":
    result = conf.get("prevResult") or {{"ips": [{{"address": "10.1.2.3/24"}}], "interfaces": []}}
    result["cniVersion"] = conf["cniVersion"]
    result["interfaces"].append({{"name": {name!r}}})
    print(json.dumps(result))
'''


class Fakes:
    """A bin dir of fake plugins and the log they all write to."""

    def __init__(self, tmp_path):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "calls.log"
        self.cache_dir = str(tmp_path / "results")
        for name in ("a", "b", "c"):
            self.add(name)

    def add(self, name: str) -> None:
        path = self.bin / name
        path.write_text(FAKE_PLUGIN.format(python=sys.executable, log=str(self.log), name=name))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def calls(self, command: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [c for c in calls if command in (None, c["env"]["CNI_COMMAND"])]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)

    def cni(self, **kw) -> CNIConfig:
        return CNIConfig([str(self.bin.parent / "empty"), str(self.bin)], cache_dir=self.cache_dir, **kw)

    def cache_file(self, net="net", cid="cid1", ifname="eth0") -> str:
        return os.path.join(self.cache_dir, f"{net}-{cid}-{ifname}")


@pytest.fixture
def fakes(tmp_path) -> Fakes:
    return Fakes(tmp_path)


def netlist(*plugins, version="1.0.0", **extra):
    plugins = plugins or ({"type": "a"}, {"type": "b"}, {"type": "c"})
    data = {"cniVersion": version, "name": "net", "plugins": list(plugins), **extra}
    return conflist_from_bytes(json.dumps(data).encode())


def rt(cid="cid1", **kw) -> RuntimeConf:
    return RuntimeConf(cid, kw.pop("netns", "/run/netns/test"), kw.pop("ifname", "eth0"), **kw)


# --- ADD --------------------------------------------------------------------

def test_add_chains_prev_result_and_injects_name_and_version(fakes):
    nl = netlist({"type": "a", "name": "ignored", "cniVersion": "0.3.1", "x": 1}, {"type": "b"}, {"type": "c"})
    result = fakes.cni().add_network_list(nl, rt(args=[("K8S_POD_NAME", "web"), ("IgnoreUnknown", "1")]))

    assert [i["name"] for i in result["interfaces"]] == ["a", "b", "c"]
    assert result["cniVersion"] == "1.0.0"
    a, b, c = fakes.calls("ADD")
    assert [x["plugin"] for x in (a, b, c)] == ["a", "b", "c"]
    assert a["conf"] == {"type": "a", "name": "net", "cniVersion": "1.0.0", "x": 1}
    assert [i["name"] for i in b["conf"]["prevResult"]["interfaces"]] == ["a"]
    assert [i["name"] for i in c["conf"]["prevResult"]["interfaces"]] == ["a", "b"]
    assert a["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid1", "CNI_NETNS": "/run/netns/test",
                        "CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAME=web;IgnoreUnknown=1",
                        "CNI_PATH": f"{fakes.bin.parent / 'empty'}:{fakes.bin}"}


def test_runtime_config_only_for_declared_capabilities(fakes):
    nl = netlist({"type": "a", "capabilities": {"portMappings": True, "bandwidth": False}},
                 {"type": "b", "runtimeConfig": {"static": 1}},
                 {"type": "c", "capabilities": {"mac": True, "ips": True}})
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1}, "ips": ["10.1.2.9/24"]}
    fakes.cni().add_network_list(nl, rt(capability_args=caps))
    a, b, c = (call["conf"] for call in fakes.calls("ADD"))
    assert a["runtimeConfig"] == {"portMappings": caps["portMappings"]}
    assert b["runtimeConfig"] == {"static": 1}     # nothing declared: the config is left alone
    assert c["runtimeConfig"] == {"ips": ["10.1.2.9/24"]}


def test_add_failure_keeps_plugin_error_and_runs_no_del(fakes):
    nl = netlist({"type": "a"}, {"type": "b", "fail": {"ADD": 11}}, {"type": "c"})
    with pytest.raises(CniError) as err:
        fakes.cni().add_network_list(nl, rt())
    assert (err.value.code, err.value.msg, err.value.details) == (11, "b failed", "on purpose")
    assert any("type='b'" in note for note in err.value.__notes__)
    assert [c["plugin"] for c in fakes.calls()] == ["a", "b"]
    assert not os.path.exists(fakes.cache_file())


@pytest.mark.parametrize("kw, code", [({"cid": "bad/id"}, Code.INVALID_ENVIRONMENT),
                                      ({"cid": ""}, Code.UNKNOWN_CONTAINER),
                                      ({"ifname": "x" * 16}, Code.INVALID_ENVIRONMENT)])
def test_add_validates_ids_before_running_anything(fakes, kw, code):
    with pytest.raises(CniError) as err:
        fakes.cni().add_network_list(netlist(), rt(**kw))
    assert err.value.code == code
    assert fakes.calls() == []


def test_missing_plugin_is_invalid_config(fakes):
    with pytest.raises(CniError) as err:
        fakes.cni().add_network_list(netlist({"type": "nope"}), rt())
    assert err.value.code == Code.INVALID_CONFIG


def test_timeout_raises_try_again(fakes):
    with pytest.raises(CniError) as err:
        fakes.cni(timeout=0.5).add_network_list(netlist({"type": "a", "sleep": 10}), rt())
    assert err.value.code == Code.TRY_AGAIN_LATER


def test_concurrent_adds_for_different_containers(fakes):
    cni, nl = fakes.cni(), netlist({"type": "a"})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: cni.add_network_list(nl, rt(f"cid{i}")), range(16)))
    assert len(results) == 16
    assert sorted(os.listdir(fakes.cache_dir)) == sorted(f"net-cid{i}-eth0" for i in range(16))


# --- cache ------------------------------------------------------------------

def test_cache_entry_is_libcni_format(fakes):
    nl = netlist({"type": "a", "capabilities": {"portMappings": True}})
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    result = fakes.cni().add_network_list(nl, rt(args=[("K", "V")], capability_args=caps))

    path = fakes.cache_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = open(path, "rb").read()
    assert raw.startswith(b'{"kind":"cniCacheV1","containerId":"cid1","config":"')
    entry = json.loads(raw)
    assert list(entry) == ["kind", "containerId", "config", "ifName", "networkName", "netns",
                           "cniArgs", "capabilityArgs", "result"]
    assert base64.b64decode(entry["config"]) == nl.raw
    assert (entry["ifName"], entry["networkName"], entry["netns"]) == ("eth0", "net", "/run/netns/test")
    assert entry["cniArgs"] == [["K", "V"]]
    assert entry["capabilityArgs"] == caps
    assert entry["result"] == result
    assert fakes.cni().get_cached_result(nl, rt()) == result


def test_runtime_conf_cache_dir_overrides(fakes, tmp_path):
    other = str(tmp_path / "other")
    fakes.cni().add_network_list(netlist(), rt(cache_dir=other))
    assert os.listdir(other) == ["net-cid1-eth0"]
    assert not os.path.exists(fakes.cache_dir)


def test_cached_result_converted_to_list_version(fakes):
    fakes.cni().add_network_list(netlist(version="1.0.0"), rt())
    cached = fakes.cni().get_cached_result(netlist(version="0.3.1"), rt())
    assert cached["cniVersion"] == "0.3.1"
    assert cached["ips"] == [{"address": "10.1.2.3/24", "version": "4"}]


# --- DEL --------------------------------------------------------------------

def test_del_in_reverse_with_cached_result_then_removes_cache(fakes):
    cni, nl = fakes.cni(), netlist()
    added = cni.add_network_list(nl, rt())
    fakes.clear()
    cni.del_network_list(nl, rt())

    calls = fakes.calls()
    assert [c["plugin"] for c in calls] == ["c", "b", "a"]
    assert all(c["conf"]["prevResult"] == added for c in calls)
    assert all(c["env"]["CNI_COMMAND"] == "DEL" for c in calls)
    assert not os.path.exists(fakes.cache_file())

    fakes.clear()
    cni.del_network_list(nl, rt())    # a second DEL succeeds, without prevResult
    assert [("prevResult" in c["conf"]) for c in fakes.calls()] == [False] * 3


def test_del_before_0_4_0_gets_no_prev_result(fakes):
    cni, nl = fakes.cni(), netlist(version="0.3.1")
    cni.add_network_list(nl, rt())
    fakes.clear()
    cni.del_network_list(nl, rt())
    assert [("prevResult" in c["conf"]) for c in fakes.calls()] == [False] * 3
    assert not os.path.exists(fakes.cache_file())


def test_corrupt_cache_is_deleted_and_del_goes_on(fakes):
    os.makedirs(fakes.cache_dir)
    with open(fakes.cache_file(), "w") as f:
        f.write("{not json")
    fakes.cni().del_network_list(netlist(), rt())
    assert [c["plugin"] for c in fakes.calls()] == ["c", "b", "a"]
    assert not any("prevResult" in c["conf"] for c in fakes.calls())
    assert not os.path.exists(fakes.cache_file())


def test_del_reads_a_cache_written_by_go_libcni(fakes):
    go_bytes = (b'{"kind":"cniCacheV1","containerId":"abc123","config":"e30=","ifName":"eth0",'
                b'"networkName":"net","netns":"/run/netns/x","result":{"cniVersion":"1.0.0",'
                b'"interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.1.2.3/24"}]}}')
    os.makedirs(fakes.cache_dir)
    with open(fakes.cache_file("net", "abc123", "eth0"), "wb") as f:
        f.write(go_bytes)
    fakes.cni().del_network_list(netlist(), rt("abc123"))
    assert fakes.calls()[0]["conf"]["prevResult"] == json.loads(go_bytes)["result"]
    assert not os.path.exists(fakes.cache_file("net", "abc123", "eth0"))


def test_del_runs_every_plugin_when_netns_is_gone(fakes):
    cni, nl = fakes.cni(), netlist()
    cni.add_network_list(nl, rt(netns="/run/netns/gone-already"))
    fakes.clear()
    cni.del_network_list(nl, rt(netns="/run/netns/gone-already"))
    assert [(c["plugin"], c["env"]["CNI_NETNS"]) for c in fakes.calls()] == [
        ("c", "/run/netns/gone-already"), ("b", "/run/netns/gone-already"), ("a", "/run/netns/gone-already")]


def test_del_failure_keeps_cache_for_the_retry(fakes):
    cni = fakes.cni()
    cni.add_network_list(netlist(), rt())
    failing = netlist({"type": "a"}, {"type": "b", "fail": {"DEL": 5}}, {"type": "c"})
    with pytest.raises(CniError) as err:
        cni.del_network_list(failing, rt())
    assert (err.value.code, err.value.msg) == (5, "b failed")
    assert os.path.exists(fakes.cache_file())


# --- CHECK, STATUS ------------------------------------------------------------

def test_check_in_order_with_cached_result(fakes):
    cni, nl = fakes.cni(), netlist()
    added = cni.add_network_list(nl, rt())
    fakes.clear()
    cni.check_network_list(nl, rt())
    assert [c["plugin"] for c in fakes.calls("CHECK")] == ["a", "b", "c"]
    assert all(c["conf"]["prevResult"] == added for c in fakes.calls())


def test_check_without_cached_result_is_an_error(fakes):
    with pytest.raises(CniError) as err:
        fakes.cni().check_network_list(netlist(), rt())
    assert err.value.code == Code.UNKNOWN_CONTAINER
    assert fakes.calls() == []


def test_check_disabled_or_too_old(fakes):
    fakes.cni().check_network_list(netlist(disableCheck=True), rt())
    assert fakes.calls() == []
    with pytest.raises(CniError) as err:
        fakes.cni().check_network_list(netlist(version="0.3.1"), rt())
    assert err.value.code == Code.INCOMPATIBLE_VERSION


def test_status_asks_every_plugin_from_1_1_0(fakes):
    fakes.cni().get_status_network_list(netlist(version="1.0.0"))
    assert fakes.calls() == []
    fakes.cni().get_status_network_list(netlist(version="1.1.0"))
    calls = fakes.calls("STATUS")
    assert [c["plugin"] for c in calls] == ["a", "b", "c"]
    assert calls[0]["env"]["CNI_CONTAINERID"] == calls[0]["env"]["CNI_NETNS"] == ""
    assert calls[0]["conf"] == {"type": "a", "name": "net", "cniVersion": "1.1.0"}


def test_status_not_ready_raises_plugin_code(fakes):
    with pytest.raises(CniError) as err:
        fakes.cni().get_status_network_list(netlist({"type": "a", "fail": {"STATUS": 50}}, version="1.1.0"))
    assert err.value.code == Code.NOT_AVAILABLE


# --- GC ---------------------------------------------------------------------

def test_gc_deletes_stale_cached_attachments_then_gcs_plugins(fakes):
    cni, nl = fakes.cni(), netlist(version="1.1.0")
    cni.add_network_list(nl, rt("keep"))
    stale = cni.add_network_list(nl, rt("stale", netns="/run/netns/old", args=[("K", "V")],
                                        capability_args={"x": 1}))
    fakes.clear()
    cni.gc_network_list(nl, [("keep", "eth0")])

    deletes = fakes.calls("DEL")
    assert [c["plugin"] for c in deletes] == ["c", "b", "a"]
    assert deletes[0]["env"]["CNI_CONTAINERID"] == "stale"
    assert deletes[0]["env"]["CNI_NETNS"] == "/run/netns/old"
    assert deletes[0]["env"]["CNI_ARGS"] == "K=V"
    assert deletes[0]["conf"]["prevResult"] == stale
    assert os.listdir(fakes.cache_dir) == ["net-keep-eth0"]

    gcs = fakes.calls("GC")
    assert [c["plugin"] for c in gcs] == ["a", "b", "c"]
    valid = [{"containerID": "keep", "ifname": "eth0"}]
    assert gcs[0]["conf"]["cni.dev/valid-attachments"] == valid
    assert gcs[0]["conf"]["cni.dev/attachments"] == valid


def test_gc_leaves_other_networks_alone(fakes):
    cni = fakes.cni()
    other = conflist_from_bytes(json.dumps({"cniVersion": "1.1.0", "name": "other",
                                            "plugins": [{"type": "a"}]}).encode())
    cni.add_network_list(other, rt("x"))
    cni.gc_network_list(netlist(version="1.1.0"), [])
    assert os.listdir(fakes.cache_dir) == ["other-x-eth0"]


def test_gc_before_1_1_0_only_deletes_stale(fakes):
    cni, nl = fakes.cni(), netlist(version="1.0.0")
    cni.add_network_list(nl, rt("stale"))
    fakes.clear()
    cni.gc_network_list(nl, [])
    assert len(fakes.calls("DEL")) == 3 and fakes.calls("GC") == []


def test_gc_disabled_does_nothing(fakes):
    cni, nl = fakes.cni(), netlist(version="1.1.0", disableGC=True)
    cni.add_network_list(nl, rt("stale"))
    fakes.clear()
    cni.gc_network_list(nl, [])
    assert fakes.calls() == []
    assert os.path.exists(fakes.cache_file(cid="stale"))


def test_gc_continues_past_errors_and_raises_them_all(fakes):
    cni = fakes.cni()
    nl = netlist({"type": "a", "fail": {"GC": 5, "DEL": 11}}, {"type": "b"}, version="1.1.0")
    cni.add_network_list(nl, rt("stale"))
    fakes.clear()
    with pytest.raises(CniError) as err:
        cni.gc_network_list(nl, [])
    assert [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in fakes.calls()] == [
        ("b", "DEL"), ("a", "DEL"), ("a", "GC"), ("b", "GC")]
    assert err.value.code == 11
    assert [e.code for e in err.value.errors] == [11, 5]


# --- VERSION ----------------------------------------------------------------

def test_version_info_and_validate(fakes):
    cni = fakes.cni()
    assert cni.get_version_info("a")["supportedVersions"][-1] == "1.1.0"
    nl = netlist({"type": "a", "capabilities": {"portMappings": True}}, {"type": "b"})
    assert cni.validate_network_list(nl) == ["portMappings"]
    with pytest.raises(CniError):
        cni.validate_network_list(netlist({"type": "a"}, version="0.2.0"))
