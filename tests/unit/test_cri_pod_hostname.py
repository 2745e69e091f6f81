"""The pod hostname as real clients send it: none (critest, crictl's minimal runp), long and
capitalised metadata names, what sethostname(2) takes and what it refuses, host networking.
The same rules must hold in hostname_for (the files, the kernel's name) and in RunPodSandbox's
up-front validate (refusing before anything is made)."""
from __future__ import annotations

import socket

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.rpc import sandbox_run
from cri.sandbox import files

NODE = socket.gethostname()
CRITEST_NAME = "create-PodSandbox-for-container-0f7e4fd4-3c0a-4d7e-9a2b-5d1c3e7f9a11"   # > 64, capitals


def _config(hostname: str = "", name: str = CRITEST_NAME, host_network: bool = False) -> api.PodSandboxConfig:
    cfg = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=name, namespace="ns", uid="u"),
                               hostname=hostname)
    if host_network:
        cfg.linux.security_context.namespace_options.network = api.NODE
    return cfg


def test_the_critest_name_is_what_the_old_rule_refused():
    """The shape behind most of critest's failures: no hostname and a metadata name that is no
    hostname (so a fallback to it, as before, must not come back)."""
    assert len(CRITEST_NAME.encode()) > files.HOSTNAME_MAX and any(c.isupper() for c in CRITEST_NAME)
    assert files.hostname_for(_config()) == NODE


@pytest.mark.parametrize("hostname, host_network, expect", [
    ("", False, NODE),                          # none: the node's, as containerd (never metadata.name)
    ("", True, NODE),
    ("web-0", True, "web-0"),                   # host network: containerd still writes the config's
    ("web-0", False, "web-0"),
    ("Web-0.Example", False, "Web-0.Example"),  # capitals
    ("a" * 64, False, "a" * 64),                # the kernel's limit, inclusive
    ("a" * 64, True, "a" * 64),
    ("under_score with space/slash", False, "under_score with space/slash"),   # the kernel takes it
    ("-leading-dash", False, "-leading-dash"),
    ("é" * 32, False, "é" * 32),               # 32 characters, 64 bytes of UTF-8
    ("日本" * 10 + "a" * 4, False, "日本" * 10 + "a" * 4),   # 3-byte characters: 60 + 4 bytes
])
def test_accepted(hostname, host_network, expect):
    cfg = _config(hostname, host_network=host_network)
    assert files.hostname_for(cfg) == expect
    sandbox_run.validate(cfg, "")               # RunPodSandbox's up-front checks agree


@pytest.mark.parametrize("hostname, words", [
    ("a" * 65, "is 65 bytes; the kernel allows at most 64 (sethostname)"),
    ("é" * 33, "is 66 bytes"),                  # bytes, not characters: 33 characters
    ("a" * 63 + "é", "is 65 bytes"),            # 64 characters, one byte over
    ("a\nb", "contains '\\n'"),
    ("a\rb", "contains '\\r'"),
    ("a\0b", "contains '\\x00'"),
])
@pytest.mark.parametrize("host_network", [False, True])
def test_refused_with_the_rule(hostname, words, host_network):
    cfg = _config(hostname, host_network=host_network)
    for check in (lambda: files.hostname_for(cfg), lambda: sandbox_run.validate(cfg, "")):
        with pytest.raises(CriError) as err:
            check()
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert words in err.value.message and "pod hostname" in err.value.message


def test_pod_files_with_no_hostname(tmp_path):
    files.write_pod_files(str(tmp_path), _config(), False, "/nonexistent")
    assert (tmp_path / "hostname").read_text() == NODE + "\n"
    # No entry for the pod's hostname in /etc/hosts (containerd adds none): localhost only.
    assert NODE not in (tmp_path / "hosts").read_text().split()


def test_pod_files_with_host_network_and_a_hostname(tmp_path):
    """containerd's setupSandboxFiles: /etc/hostname is the config's whatever the network; the
    hosts file is the node's (it is the node's network)."""
    files.write_pod_files(str(tmp_path), _config("web-0", host_network=True), True, "/nonexistent")
    assert (tmp_path / "hostname").read_text() == "web-0\n"
    with open("/etc/hosts") as f:
        assert (tmp_path / "hosts").read_text() == f.read()


def test_a_refused_hostname_writes_no_files(tmp_path):
    with pytest.raises(CriError):
        files.write_pod_files(str(tmp_path), _config("a" * 65), False, "/nonexistent")
    assert list(tmp_path.iterdir()) == []
