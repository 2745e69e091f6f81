"""The skel dispatcher: environment validation, error JSON, version handling."""
import io
import json
import os

import pytest

from cni import skel
from cni.errors import CniError, Code

CONF = {"cniVersion": "1.0.0", "name": "net1", "type": "fake"}
ENV = {"CNI_CONTAINERID": "abc123", "CNI_NETNS": "", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


class Recorder:
    def __init__(self, result=None, raises=None):
        self.calls, self.result, self.raises = [], result, raises

    def __call__(self, args):
        self.calls.append(args)
        if self.raises:
            raise self.raises
        return self.result


def run(verbs, command, conf=CONF, **env):
    stdout = io.StringIO()
    stdin = io.BytesIO((conf if isinstance(conf, str) else json.dumps(conf)).encode())
    code = skel.dispatch(verbs, {**ENV, "CNI_COMMAND": command, **env}, stdin, stdout, stderr=io.StringIO())
    text = stdout.getvalue()
    return code, (json.loads(text) if text else None)


@pytest.fixture
def verbs():
    result = {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}]}
    return skel.Verbs(add=Recorder(result), delete=Recorder(), check=Recorder(),
                      status=Recorder(), gc=Recorder())


def test_version_command_lists_supported_versions(verbs):
    code, out = run(verbs, "VERSION", conf="")
    assert code == 0
    assert out["supportedVersions"] == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_del_passes_parsed_args_without_netns(verbs):
    code, out = run(verbs, "DEL", CNI_ARGS="IgnoreUnknown=1;IP=10.0.0.9")
    assert (code, out) == (0, None)
    args = verbs.delete.calls[0]
    assert (args.container_id, args.ifname, args.netns) == ("abc123", "eth0", "")
    assert args.args == {"IgnoreUnknown": "1", "IP": "10.0.0.9"}
    assert args.path == ["/opt/cni/bin"] and args.config == CONF


def test_result_printed_in_config_version(verbs, foreign_netns):
    code, out = run(verbs, "ADD", {**CONF, "cniVersion": "0.3.1"}, CNI_NETNS=foreign_netns)
    assert code == 0
    assert out["cniVersion"] == "0.3.1" and out["ips"][0]["version"] == "4"


@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"])
def test_missing_variables_are_code_4(verbs, missing):
    code, out = run(verbs, "DEL", **{missing: ""})
    assert code == 1 and out["code"] == Code.INVALID_ENVIRONMENT
    assert missing in out["msg"]
    assert not verbs.delete.calls


def test_add_requires_netns(verbs):
    code, out = run(verbs, "ADD")
    assert out["code"] == Code.INVALID_ENVIRONMENT and "CNI_NETNS" in out["msg"]


@pytest.mark.parametrize("cid", ["../x", "a/b", "-lead", "x y", "a" * 129, "ü"])
def test_hostile_container_ids_are_rejected(verbs, cid):
    code, out = run(verbs, "DEL", CNI_CONTAINERID=cid)
    assert code == 1 and out["code"] == Code.INVALID_ENVIRONMENT
    assert not verbs.delete.calls


@pytest.mark.parametrize("ifname", ["a" * 16, ".", "..", "eth/0", "eth:0", "eth 0"])
def test_bad_ifnames_are_rejected(verbs, ifname):
    code, out = run(verbs, "DEL", CNI_IFNAME=ifname)
    assert code == 1 and out["code"] == Code.INVALID_ENVIRONMENT


def test_malformed_json_is_code_6(verbs):
    code, out = run(verbs, "DEL", conf="{not json")
    assert code == 1 and out["code"] == Code.DECODING_FAILURE
    assert out["cniVersion"] == "1.1.0"


def test_unknown_cni_version_is_code_1(verbs):
    code, out = run(verbs, "DEL", {**CONF, "cniVersion": "7.0.0"})
    assert out["code"] == Code.INCOMPATIBLE_VERSION


def test_check_needs_0_4_0_and_gc_needs_1_1_0(verbs, foreign_netns):
    assert run(verbs, "CHECK", {**CONF, "cniVersion": "0.3.1"}, CNI_NETNS=foreign_netns)[1]["code"] == 1
    assert run(verbs, "GC", {**CONF, "cniVersion": "1.0.0"})[1]["code"] == 1
    assert run(verbs, "GC", {**CONF, "cniVersion": "1.1.0"}) == (0, None)


def test_bad_network_name_is_code_7(verbs):
    assert run(verbs, "DEL", {**CONF, "name": "../etc"})[1]["code"] == Code.INVALID_CONFIG
    assert run(verbs, "DEL", {k: v for k, v in CONF.items() if k != "name"})[1]["code"] == Code.INVALID_CONFIG


def test_unknown_command_is_code_4(verbs):
    assert run(verbs, "FROB")[1]["code"] == Code.INVALID_ENVIRONMENT


def test_verb_cni_error_is_passed_through(verbs):
    verbs.delete.raises = CniError(Code.TRY_AGAIN_LATER, "busy", "lock held")
    code, out = run(verbs, "DEL")
    assert code == 1
    assert out == {"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": "lock held"}


def test_unexpected_exception_becomes_internal_error(verbs):
    verbs.delete.raises = RuntimeError("boom")
    code, out = run(verbs, "DEL")
    assert code == 1 and out["code"] == Code.INTERNAL and out["msg"] == "boom"


def test_regular_file_as_netns_is_code_8(verbs, tmp_path):
    fake = tmp_path / "notns"
    fake.write_text("")
    code, out = run(verbs, "ADD", CNI_NETNS=str(fake))
    assert out["code"] == Code.INVALID_NETNS
    assert not verbs.add.calls


def test_missing_netns_on_add_is_code_8_but_fine_for_del(verbs, tmp_path):
    assert run(verbs, "ADD", CNI_NETNS=str(tmp_path / "gone"))[1]["code"] == Code.INVALID_NETNS
    assert run(verbs, "DEL", CNI_NETNS=str(tmp_path / "gone")) == (0, None)


def test_own_netns_is_rejected(verbs):
    if not os.access("/proc/self/ns/net", os.R_OK):
        pytest.skip("cannot open own netns")
    code, out = run(verbs, "ADD", CNI_NETNS="/proc/self/ns/net")
    assert out["code"] == Code.INVALID_NETNS and "own" in out["msg"]
