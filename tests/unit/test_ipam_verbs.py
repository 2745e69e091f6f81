"""podwire-ipam's verbs through skel.dispatch: results per spec version, error JSON."""
from __future__ import annotations

import os

import pytest

from cni.ipam.main import VERBS
from cni.skel import CmdArgs
from conftest import dispatch_in_process

ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin", "CNI_NETNS_OVERRIDE": "1"}


@pytest.fixture
def conf(tmp_path):
    """Make a network config (dual stack unless ``ranges`` is given) under tmp_path."""
    def make(version: str = "1.1.0", ranges=None, **ipam) -> dict:
        ranges = ranges or [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/64"}]]
        return {"cniVersion": version, "name": "net1",
                "ipam": {"type": "podwire-ipam", "dataDir": str(tmp_path), "ranges": ranges, **ipam}}
    return make


def run(command: str, config: dict, **env) -> tuple[int, dict | None]:
    return dispatch_in_process(VERBS, command, config, **{**ENV, **env})


def lease_files(config: dict) -> list[str]:
    path = os.path.join(config["ipam"]["dataDir"], config["name"])
    return sorted(n for n in os.listdir(path) if n[0].isdigit() or n.startswith("fd"))


@pytest.mark.parametrize("version, expected", [
    ("1.1.0", {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                                              {"address": "fd00:1::2/64", "gateway": "fd00:1::1"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}),
    ("1.0.0", {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                                              {"address": "fd00:1::2/64", "gateway": "fd00:1::1"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}),
    ("0.4.0", {"cniVersion": "0.4.0",
               "ips": [{"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                       {"version": "6", "address": "fd00:1::2/64", "gateway": "fd00:1::1"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}),
    ("0.3.1", {"cniVersion": "0.3.1",
               "ips": [{"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                       {"version": "6", "address": "fd00:1::2/64", "gateway": "fd00:1::1"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}),
    ("0.2.0", {"cniVersion": "0.2.0",
               "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1",
                       "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
               "ip6": {"ip": "fd00:1::2/64", "gateway": "fd00:1::1"}}),
])
def test_add_result_in_the_configs_version(conf, version, expected):
    code, out = run("ADD", conf(version, routes=[{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]))
    assert (code, out) == (0, expected)


def test_add_omits_empty_keys_and_adds_dns_from_resolv_conf(conf, tmp_path):
    code, out = run("ADD", conf())
    assert code == 0 and set(out) == {"cniVersion", "ips"}
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.1.0.53\nsearch svc.cluster.local\n")
    code, out = run("ADD", conf(resolvConf=str(resolv)), CNI_CONTAINERID="c2")
    assert out["dns"] == {"nameservers": ["10.1.0.53"], "search": ["svc.cluster.local"]}


def test_a_bad_resolv_conf_costs_no_lease(conf, tmp_path):
    config = conf(resolvConf=str(tmp_path / "missing"))
    assert run("ADD", config)[1]["code"] == 5
    assert not os.path.exists(tmp_path / "net1")


def test_requested_ips_from_cni_args_args_and_capability(conf):
    config = conf()
    assert run("ADD", config, CNI_ARGS="IP=10.1.0.9")[1]["ips"][0]["address"] == "10.1.0.9/24"
    config_args = {**config, "args": {"cni": {"ips": ["fd00:1::99"]}}}
    out = run("ADD", config_args, CNI_CONTAINERID="c2")[1]
    assert [x["address"] for x in out["ips"]] == ["10.1.0.10/24", "fd00:1::99/64"]
    config_rt = {**config, "runtimeConfig": {"ips": ["10.1.0.200/24"]}}
    assert run("ADD", config_rt, CNI_CONTAINERID="c3")[1]["ips"][0]["address"] == "10.1.0.200/24"
    code, out = run("ADD", config_rt, CNI_CONTAINERID="c4")
    assert (code, out["code"]) == (1, 11) and "10.1.0.200" in out["msg"]
    code, out = run("ADD", {**config, "runtimeConfig": {"ips": ["192.168.1.1"]}}, CNI_CONTAINERID="c5")
    assert out == {"cniVersion": "1.1.0", "code": 7, "details": "10.1.0.2-10.1.0.254; fd00:1::2-fd00:1::ffff:ffff:ffff:ffff",
                   "msg": "requested IP address 192.168.1.1 is not in any range set"}


def test_errors_are_spec_json_in_the_configs_version(conf):
    code, out = run("ADD", conf("0.4.0", ranges=[[{"subnet": "10.1.0.0/31"}]]))
    assert code == 1 and out["cniVersion"] == "0.4.0" and out["code"] == 7
    assert "too small" in out["msg"]
    code, out = run("ADD", {"cniVersion": "1.0.0", "name": "net1"})
    assert (code, out["code"], out["msg"]) == (1, 7, "IPAM config missing 'ipam' key")


def test_exhaustion_is_code_11_naming_the_range_set(conf):
    config = conf("1.0.0", ranges=[[{"subnet": "10.1.0.0/29"}]])
    for n in range(5):
        assert run("ADD", config, CNI_CONTAINERID=f"c{n}")[0] == 0
    code, out = run("ADD", config, CNI_CONTAINERID="c9")
    assert (code, out) == (1, {"cniVersion": "1.0.0", "code": 11,
                               "msg": "no IP addresses available in range set 10.1.0.2-10.1.0.6"})


def test_del_is_idempotent(conf, tmp_path):
    config = conf()
    assert run("DEL", config) == (0, None)  # no store at all
    assert not os.path.exists(tmp_path / "net1")
    run("ADD", config)
    run("ADD", config, CNI_CONTAINERID="c2")
    assert run("DEL", config) == (0, None)
    assert run("DEL", config) == (0, None)
    assert lease_files(config) == ["10.1.0.3", "fd00:1::3"]


def test_del_works_when_the_ranges_were_broken_since(conf):
    config = conf()
    run("ADD", config)
    config["ipam"]["ranges"] = [[{"subnet": "10.1.0.0/32"}]]
    assert run("DEL", config) == (0, None)
    assert lease_files(config) == []


def test_check(conf):
    config = conf()
    code, out = run("CHECK", config)
    assert code == 1 and "holds no address" in out["msg"]
    _, result = run("ADD", config)
    run("ADD", config, CNI_CONTAINERID="c2")
    assert run("CHECK", {**config, "prevResult": result}) == (0, None)
    assert run("CHECK", config) == (0, None)
    other = {**result, "ips": [{"address": "10.1.0.3/24", "gateway": "10.1.0.1"}]}
    code, out = run("CHECK", {**config, "prevResult": other})
    assert code == 1 and out["msg"] == "10.1.0.3 of prevResult is not leased to c1/eth0"


def test_check_with_an_old_version_prev_result(conf):
    config = conf("0.4.0")
    _, result = run("ADD", config)
    assert result["ips"][0]["version"] == "4"
    assert run("CHECK", {**config, "prevResult": result}) == (0, None)


def test_gc_keeps_only_valid_attachments(conf):
    config = conf()
    for cid in ("c1", "c2", "c3"):
        run("ADD", config, CNI_CONTAINERID=cid)
    gc = {**config, "cni.dev/valid-attachments": [{"containerID": "c3", "ifname": "eth0"}]}
    assert dispatch_in_process(VERBS, "GC", gc) == (0, None)
    assert lease_files(config) == ["10.1.0.4", "fd00:1::4"]
    code, out = dispatch_in_process(VERBS, "GC", config)
    assert (code, out["code"]) == (1, 7) and "valid-attachments" in out["msg"]
    assert lease_files(config) == ["10.1.0.4", "fd00:1::4"]
    code, out = dispatch_in_process(VERBS, "GC", {**conf("1.0.0"), "cni.dev/valid-attachments": []})
    assert (code, out["code"]) == (1, 1)  # GC is a 1.1 verb


def test_status(conf, tmp_path):
    config = conf(ranges=[[{"subnet": "10.1.0.0/29"}]])
    assert dispatch_in_process(VERBS, "STATUS", config) == (0, None)
    for n in range(5):
        run("ADD", config, CNI_CONTAINERID=f"c{n}")
    assert dispatch_in_process(VERBS, "STATUS", config) == (1, {
        "cniVersion": "1.1.0", "code": 50, "msg": "no IP addresses available in range set 10.1.0.2-10.1.0.6"})
    run("DEL", config, CNI_CONTAINERID="c2")
    assert dispatch_in_process(VERBS, "STATUS", config) == (0, None)


def test_status_of_an_unusable_store(conf, tmp_path):
    (tmp_path / "afile").write_text("")
    config = conf()
    config["ipam"]["dataDir"] = str(tmp_path / "afile")
    code, out = dispatch_in_process(VERBS, "STATUS", config)
    assert (code, out["code"]) == (1, 50) and "not usable" in out["msg"]


def test_version(conf):
    code, out = dispatch_in_process(VERBS, "VERSION", {"cniVersion": "1.0.0"})
    assert code == 0 and out["cniVersion"] == "1.0.0" and "1.1.0" in out["supportedVersions"]


def test_in_process_verbs_return_and_never_print(conf, capsys):
    args = CmdArgs(command="ADD", container_id="c1", ifname="eth0", netns="/x", config=conf("0.3.1"))
    result = VERBS.add(args)
    assert result == {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                                                    {"address": "fd00:1::2/64", "gateway": "fd00:1::1"}]}
    assert VERBS.check(CmdArgs(command="CHECK", container_id="c1", ifname="eth0",
                               config={**conf("0.3.1"), "prevResult": result})) is None
    assert VERBS.delete(CmdArgs(command="DEL", container_id="c1", ifname="eth0", config=conf())) is None
    assert capsys.readouterr() == ("", "")
