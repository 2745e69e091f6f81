"""RunPodSandbox's up-front checks over the request shapes real clients send: the minimal
config (metadata only), empty optional fields, old clients' runtime handlers.  containerd
refuses only a missing metadata message; every other refusal here has a reason in
sandbox_run.validate (hostnames: test_cri_pod_hostname.py)."""
from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.rpc import sandbox_run


def _minimal(**md) -> api.PodSandboxConfig:
    fields = {"name": "p", "namespace": "ns", "uid": "u", **md}
    return api.PodSandboxConfig(metadata=api.PodSandboxMetadata(**fields))


@pytest.mark.parametrize("cfg", [
    _minimal(),                                             # metadata only: no linux, dns, log dir
    _minimal(uid=""),                                       # containerd takes an empty uid
    _minimal(attempt=2 ** 32 - 1),
    _minimal(name="create-PodSandbox-for-container-" + "0" * 36),
    _minimal(name=".".join(["a" * 63] * 3) + "." + "b" * 61),           # 253 characters
    api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="p", namespace="ns"),
                         log_directory="/var/log/pods/x", labels={"": ""}, annotations={"a/b": ""}),
], ids=["minimal", "no-uid", "large-attempt", "critest-name", "253-char-name", "labels-and-logdir"])
@pytest.mark.parametrize("handler", ["", "runc"])          # old clients send none
def test_accepted(cfg, handler):
    sandbox_run.validate(cfg, handler)


@pytest.mark.parametrize("cfg, handler, words", [
    (api.PodSandboxConfig(), "", "needs a name and a namespace"),          # no metadata at all
    (_minimal(name=""), "", "needs a name and a namespace"),
    (_minimal(namespace=""), "", "needs a name and a namespace"),
    (_minimal(), "kata", "runtime handler 'kata' is not configured"),
    (api.PodSandboxConfig(metadata=_minimal().metadata, log_directory="logs"), "", "must be absolute"),
])
def test_refused_with_the_rule(cfg, handler, words):
    with pytest.raises(CriError) as err:
        sandbox_run.validate(cfg, handler)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.message


def test_sandbox_name_with_no_uid_is_still_unique_per_attempt():
    """An empty uid still gives distinct names per attempt (the name index keys on them)."""
    a, b = _minimal(uid="").metadata, _minimal(uid="", attempt=1).metadata
    assert sandbox_run.sandbox_name(a) == "p_ns__0" != sandbox_run.sandbox_name(b)
