"""The pod hostname as real clients send it: none (critest, crictl's minimal runp), long and
capitalised metadata names, what sethostname(2) takes and what it refuses."""
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


@pytest.mark.parametrize("hostname, host_network, expect", [
    ("", False, NODE),                          # none: the node's, as containerd (never metadata.name)
    ("", True, NODE),
    ("web-0", True, NODE),                      # host network: the node's UTS namespace
    ("web-0", False, "web-0"),
    ("Web-0.Example", False, "Web-0.Example"),  # capitals
    ("a" * 64, False, "a" * 64),                # the kernel's limit, inclusive
    ("under_score with space/slash", False, "under_score with space/slash"),   # the kernel takes it
    ("-leading-dash", False, "-leading-dash"),
    ("é" * 32, False, "é" * 32),               # 64 bytes of UTF-8
])
def test_accepted(hostname, host_network, expect):
    cfg = _config(hostname, host_network=host_network)
    assert files.hostname_for(cfg, host_network) == expect
    sandbox_run.validate(cfg, "")               # RunPodSandbox's up-front checks agree


@pytest.mark.parametrize("hostname, words", [
    ("a" * 65, "is 65 bytes; the kernel allows at most 64"),
    ("é" * 33, "is 66 bytes"),                  # bytes, not characters
    ("a\nb", "line break"),
    ("a\0b", "NUL"),
])
def test_refused_with_the_rule(hostname, words):
    cfg = _config(hostname)
    for check in (lambda: files.hostname_for(cfg, False), lambda: sandbox_run.validate(cfg, "")):
        with pytest.raises(CriError) as err:
            check()
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.message


def test_a_long_name_never_matters_with_host_network():
    """A 65-byte hostname is not set anywhere when the pod uses the node's UTS namespace."""
    assert files.hostname_for(_config("a" * 65, host_network=True), True) == NODE


def test_pod_files_with_no_hostname(tmp_path):
    files.write_pod_files(str(tmp_path), _config(), False, "/nonexistent")
    assert (tmp_path / "hostname").read_text() == NODE + "\n"
