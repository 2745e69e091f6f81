"""Image references normalise as the kubelet/docker do (distribution/reference)."""
from __future__ import annotations

import grpc
import pytest

from cri.errors import CriError
from cri.images import reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, normalised", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("quay.io/a/b/c", "quay.io/a/b/c:latest"),
    ("localhost/foo", "localhost/foo:latest"),
    ("localhost:5000/foo/bar:v1", "localhost:5000/foo/bar:v1"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
    ("[::1]:5000/x:y", "[::1]:5000/x:y"),
    ("busybox@" + D, "docker.io/library/busybox@" + D),
    ("busybox:1.36@" + D, "docker.io/library/busybox@" + D),  # the digest wins
    ("host:5000/a-b__c.d/e:TAG_1.x", "host:5000/a-b__c.d/e:TAG_1.x"),
])
def test_normalise(ref, normalised):
    assert reference.normalize(ref) == normalised


def test_parts():
    r = reference.parse("127.0.0.1:5000/podwire-test/busybox:1.0")
    assert (r.domain, r.path, r.tag, r.digest) == ("127.0.0.1:5000", "podwire-test/busybox", "1.0", None)
    assert r.name == "127.0.0.1:5000/podwire-test/busybox"
    assert r.object == "1.0"
    d = reference.parse("busybox@" + D)
    assert (d.tag, d.digest, d.object) == (None, D, D)


@pytest.mark.parametrize("ref, familiar", [
    ("busybox", "busybox:latest"),
    ("docker.io/bitnami/redis:7", "bitnami/redis:7"),
    ("quay.io/x/y:1", "quay.io/x/y:1"),
])
def test_familiar(ref, familiar):
    assert reference.parse(ref).familiar() == familiar


@pytest.mark.parametrize("ref", [
    "", "Busybox", "docker.io/Library/busybox", "busybox:", "busybox@sha256:abc",
    "busybox@sha256:" + "g" * 64, ":tag", "a//b", "-a/b", "busybox:" + "t" * 129,
    "ab" * 32,                       # an image ID is not a name
    "host:port/x", "x/" + "a" * 260,
])
def test_invalid(ref):
    with pytest.raises(CriError) as exc:
        reference.parse(ref)
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_uppercase_hint():
    with pytest.raises(CriError, match="lowercase"):
        reference.parse("docker.io/Library/busybox")
