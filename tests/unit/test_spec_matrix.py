"""Every CNI spec version podwire supports, against what the spec says for it (tests/cnispec.py):
which verbs a config of that version may use, the VERSION answer, the ADD result's shape,
through skel with recording verbs, through the real podwire-ipam executable, and through
cni.libcni (which converts plugin and cached results to the list's version).  Rootless: the
main plugin's matrix, in real namespaces, is tests/netns/test_spec_versions.py."""
from __future__ import annotations

import copy
import io
import ipaddress
import json
import os

import pytest

from cni import skel, version
from cni.errors import CniError
from cni.libcni import CNIConfig, RuntimeConf, conflist_from_bytes
from cni.libcni import cache
from cnispec import SPEC_VERSIONS, VERB_SINCE, addresses, allows, at_least, check_result, refusal
from cnitest import leases, run_plugin

VERBS = tuple(VERB_SINCE)

# A 1.1.0-shaped result (what verbs return internally) using every field some version lacks.
RICH = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "br0", "mac": "aa:bb:cc:dd:ee:00"},
                   {"name": "pw1", "mac": "aa:bb:cc:dd:ee:01", "mtu": 1400},
                   {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/x",
                    "socketPath": "/run/x.sock", "pciID": "0000:00:1f.6"}],
    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "advmss": 1360, "priority": 10},
               {"dst": "::/0", "gw": "fd00::1", "table": 100, "scope": 0}],
    "dns": {"nameservers": ["10.1.0.10"], "search": ["svc.local"]},
}


def test_podwire_supports_exactly_the_spec_versions():
    assert version.SUPPORTED == SPEC_VERSIONS
    assert version.CURRENT == SPEC_VERSIONS[-1]


# --- skel, with verbs that record their calls ---------------------------------------------

class Recorder:
    def __init__(self, result=None):
        self.calls, self.result = 0, result

    def __call__(self, args):
        self.calls += 1
        return copy.deepcopy(self.result)


def dispatch(verbs, command: str, config: dict) -> tuple[int, dict | None]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "CNI_NETNS_OVERRIDE": "1"}
    stdout = io.StringIO()
    code = skel.dispatch(verbs, env, io.BytesIO(json.dumps(config).encode()), stdout, stderr=io.StringIO())
    return code, (json.loads(stdout.getvalue()) if stdout.getvalue() else None)


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_skel_allows_each_verb_from_its_spec_version(v, verb):
    recorders = {name: Recorder(RICH if name == "ADD" else None) for name in VERBS}
    verbs = skel.Verbs(add=recorders["ADD"], delete=recorders["DEL"], check=recorders["CHECK"],
                       status=recorders["STATUS"], gc=recorders["GC"])
    code, out = dispatch(verbs, verb, {"cniVersion": v, "name": "net1", "type": "fake"})
    if allows(v, verb):
        assert code == 0, out
        assert recorders[verb].calls == 1
        if verb == "ADD":
            check_result(out, v)
            assert addresses(out) == ["10.1.0.5/24", "fd00::5/64"]
        else:
            assert out is None
    else:
        assert code == 1
        assert {k: out[k] for k in ("cniVersion", "code", "msg")} == refusal(v, verb)
        assert recorders[verb].calls == 0, f"{verb} ran on a {v} config"


@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_skel_add_keeps_what_the_version_has_and_drops_the_rest(v):
    _, out = dispatch(skel.Verbs(add=Recorder(RICH), delete=Recorder()), "ADD",
                      {"cniVersion": v, "name": "net1", "type": "fake"})
    check_result(out, v)
    assert out.get("dns") == RICH["dns"]
    if at_least(v, "1.1.0"):
        assert out == RICH
    elif at_least(v, "0.3.0"):
        assert [i["name"] for i in out["interfaces"]] == ["br0", "pw1", "eth0"]
        assert out["interfaces"][2]["sandbox"] == "/run/netns/x"
        assert [ip["interface"] for ip in out["ips"]] == [2, 2]
        assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "::/0", "gw": "fd00::1"}]
    else:
        assert out["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                              "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}
        assert out["ip6"] == {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "::/0", "gw": "fd00::1"}]}


@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_skel_version_answer(v):
    code, out = dispatch(skel.Verbs(add=Recorder(), delete=Recorder()), "VERSION", {"cniVersion": v})
    assert (code, out) == (0, {"cniVersion": v, "supportedVersions": list(SPEC_VERSIONS)})


# --- the real podwire-ipam executable -------------------------------------------------------

@pytest.fixture(scope="module")
def bin_dir(podwire_bin_dir) -> str:
    return podwire_bin_dir


@pytest.fixture
def standalone(monkeypatch):
    """The executables run their verbs in process: never a node's podwire-cnid."""
    monkeypatch.setenv("PODWIRE_CNID_SOCKET", "")


SUBNET4, SUBNET6 = "10.91.0.0/24", "fd00:91::/64"


def ipam_conf(v: str, data_dir: str, **ipam) -> dict:
    return {"cniVersion": v, "name": "specnet",
            "ipam": {"type": "podwire-ipam", "dataDir": data_dir,
                     "ranges": [[{"subnet": SUBNET4}], [{"subnet": SUBNET6}]],
                     "routes": [{"dst": "0.0.0.0/0"}], **ipam}}


def in_subnets(result: dict) -> bool:
    nets = [ipaddress.ip_network(SUBNET4), ipaddress.ip_network(SUBNET6)]
    return [ipaddress.ip_interface(a).ip in n for a, n in zip(addresses(result), nets)] == [True, True]


@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_ipam_executable_every_verb(bin_dir, standalone, tmp_path, v):
    conf = ipam_conf(v, str(tmp_path))

    def run(command, config=conf, cid="c1"):
        return run_plugin(bin_dir, "podwire-ipam", command, config, container_id=cid,
                          netns="/var/run/netns/none", extra_env={"CNI_NETNS_OVERRIDE": "1"})

    assert run("VERSION") == (0, {"cniVersion": v, "supportedVersions": list(SPEC_VERSIONS)})
    code, result = run("ADD")
    assert code == 0, result
    check_result(result, v, ipam=True)
    assert in_subnets(result), result
    held = leases(str(tmp_path), "specnet")
    assert sorted(held.values()) == ["c1\r\neth0"] * 2

    with_prev = {**conf, "prevResult": result}
    if allows(v, "CHECK"):
        assert run("CHECK", with_prev) == (0, None)
        wrong = copy.deepcopy(result)      # an address c1 does not hold: CHECK must say so
        wrong["ips"][0]["address"] = "10.91.0.250/24"
        code, out = run("CHECK", {**conf, "prevResult": wrong})
        assert code == 1 and out["code"] != 0 and "10.91.0.250" in json.dumps(out), out
    else:
        code, out = run("CHECK", with_prev)
        assert code == 1 and {k: out[k] for k in ("cniVersion", "code", "msg")} == refusal(v, "CHECK")

    code, out = run("STATUS")
    if allows(v, "STATUS"):
        assert (code, out) == (0, None)
    else:
        assert code == 1 and {k: out[k] for k in ("cniVersion", "code", "msg")} == refusal(v, "STATUS")

    assert run("ADD", cid="stale")[0] == 0
    code, out = run("GC", {**conf, "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    if allows(v, "GC"):
        assert (code, out) == (0, None)
        assert leases(str(tmp_path), "specnet") == held          # "stale" collected, c1 kept
    else:
        assert code == 1 and {k: out[k] for k in ("cniVersion", "code", "msg")} == refusal(v, "GC")
        assert len(leases(str(tmp_path), "specnet")) == 4        # nothing collected
        assert run("DEL", cid="stale") == (0, None)

    assert run("DEL", with_prev if allows(v, "CHECK") else conf) == (0, None)
    assert leases(str(tmp_path), "specnet") == {}
    assert run("DEL") == (0, None)                              # DEL is idempotent


# --- cni.libcni over the real executable ------------------------------------------------------

def netlist(v: str, data_dir: str, name: str = "specnet"):
    return conflist_from_bytes(json.dumps({"cniVersion": v, "name": name, "plugins": [
        {k: val for k, val in ipam_conf(v, data_dir).items() if k not in ("cniVersion", "name")}
        | {"type": "podwire-ipam"}]}).encode())


@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_libcni_runs_every_version_and_converts_cached_results(bin_dir, standalone, foreign_netns, tmp_path, v):
    data_dir = str(tmp_path / "ipam")
    cni = CNIConfig([bin_dir], cache_dir=str(tmp_path / "cache"))
    rt = RuntimeConf("c1", foreign_netns, "eth0")
    nets = netlist(v, data_dir)

    result = cni.add_network_list(nets, rt)
    check_result(result, v, ipam=True)
    assert in_subnets(result)
    assert cni.get_cached_result(nets, rt) == result

    # The cached result, read by a list of any other version, comes back in that version.
    for other in SPEC_VERSIONS:
        cached = cni.get_cached_result(netlist(other, data_dir), rt)
        check_result(cached, other, ipam=True)
        assert addresses(cached) == addresses(result), (v, other)

    if allows(v, "CHECK"):
        cni.check_network_list(nets, rt)
    else:
        with pytest.raises(CniError) as err:
            cni.check_network_list(nets, rt)
        assert err.value.code == 1

    # STATUS from 1.1.0 asks the plugin (here one whose store is unusable: 50); before, libcni
    # treats the network as ready without asking.
    (tmp_path / "afile").write_text("")
    broken = netlist(v, str(tmp_path / "afile"))
    if allows(v, "STATUS"):
        cni.get_status_network_list(nets)
        with pytest.raises(CniError) as err:
            cni.get_status_network_list(broken)
        assert err.value.code == 50
    else:
        assert cni.get_status_network_list(broken) is None

    cni.gc_network_list(nets, [("c1", "eth0")])
    assert sorted(leases(data_dir, "specnet").values()) == ["c1\r\neth0"] * 2

    cni.del_network_list(nets, rt)
    assert leases(data_dir, "specnet") == {}
    assert cni.get_cached_result(nets, rt) is None
    assert not os.path.exists(cache.entry_path(str(tmp_path / "cache"), "specnet", "c1", "eth0"))
