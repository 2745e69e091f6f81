"""Manifests: defaults, multi-document files, and rejections worded like the API server's."""
from __future__ import annotations

import pytest

from netpol.errors import InvalidPolicy
from netpol.manifest import parse_manifest
from netpol.model import EGRESS, INGRESS

HEAD = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n"


def spec(body: str) -> str:
    return HEAD + "\n".join("  " + line for line in body.strip("\n").splitlines()) + "\n"


def reject(text: str) -> str:
    with pytest.raises(InvalidPolicy) as err:
        parse_manifest(text, "policy.yaml")
    return str(err.value)


def test_defaults():
    p = parse_manifest(spec("podSelector: {}\ningress: [{ports: [{port: 80}]}]")).policies[0]
    assert p.policy_types == {INGRESS} and p.ingress[0].ports[0].protocol == "TCP"
    assert parse_manifest(spec("podSelector: {}\negress: [{}]")).policies[0].policy_types == {INGRESS, EGRESS}
    assert parse_manifest(spec("podSelector: {}\negress: []")).policies[0].policy_types == {INGRESS}
    assert parse_manifest(spec("podSelector: {}\npolicyTypes: [Egress]")).policies[0].policy_types == {EGRESS}
    no_ns = HEAD.replace(", namespace: x", "") + "  podSelector: {}\n"
    assert parse_manifest(no_ns, default_namespace="dev").policies[0].namespace == "dev"


def test_multi_document_lists_and_namespaces():
    text = spec("podSelector: {}") + "---\n" + spec("podSelector: {}").replace("name: p", "name: q") + """---
apiVersion: v1
kind: List
items:
- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: r, namespace: y}, spec: {podSelector: {}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: blue}}
"""
    m = parse_manifest(text)
    assert [p.key for p in m.policies] == ["x/p", "x/q", "y/r"] and m.namespaces == {"y": {"team": "blue"}}
    assert m.objects["y/r"]["metadata"]["name"] == "r"


def test_malformed_yaml():
    assert reject("apiVersion: v1\nkind: [\n") .startswith(
        "error parsing policy.yaml: error converting YAML to JSON: yaml: line ")


@pytest.mark.parametrize("body, message", [
    ("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]",
     'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, '
     "(e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: banana}}]}]",
     'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "banana": must be a valid CIDR value'),
    ("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]",
     'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
    ("podSelector: {}\negress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]",
     'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`'),
    ("podSelector: {}\ningress: [{ports: [{endPort: 90}]}]",
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified"),
    ("podSelector: {}\ningress: [{ports: [{port: http, endPort: 90}]}]",
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"),
    ("podSelector: {}\ningress: [{ports: [{port: 90, endPort: 80}]}]",
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`"),
    ("podSelector: {}\ningress: [{ports: [{protocol: ICMP, port: 1}]}]",
     'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
    ("podSelector: {}\ningress: [{ports: [{protocol: tcp}]}]",
     'spec.ingress[0].ports[0].protocol: Unsupported value: "tcp"'),
    ("podSelector: {}\ningress: [{ports: [{port: 70000}]}]",
     "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("podSelector: {}\ningress: [{ports: [{port: '80'}]}]",
     'spec.ingress[0].ports[0].port: Invalid value: "80": must contain at least one letter (a-z)'),
    ("podSelector: {}\ningress: [{from: [{}]}]", "spec.ingress[0].from[0]: Required value: must specify a peer"),
    ("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]",
     "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"),
    ("podSelector: {matchExpressions: [{key: a, operator: In}]}",
     "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ("podSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}",
     "spec.podSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists'"),
    ("podSelector: {matchExpressions: [{key: a, operator: Near}]}",
     'spec.podSelector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator'),
    ("podSelector: {matchLabels: {'a b': c}}", 'spec.podSelector.matchLabels: Invalid value: "a b": name part must'),
    ("podSelector: {}\npolicyTypes: [Ingress, Sideways]",
     'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
])
def test_invalid_specs_are_rejected_with_the_api_servers_reason(body, message):
    text = reject(spec(body))
    assert text.startswith('NetworkPolicy.networking.k8s.io "p" is invalid: ')
    assert message in text


def test_several_errors_are_listed_in_brackets():
    text = reject(spec("podSelector: {}\ningress: [{ports: [{endPort: 1}, {protocol: X}]}]"))
    assert text.endswith("spec.ingress[0].ports[0].endPort: Invalid value: 1: may not be specified when `port` "
                         'is not specified, spec.ingress[0].ports[1].protocol: Unsupported value: "X": supported '
                         'values: "TCP", "UDP", "SCTP"]')
    assert 'is invalid: [spec.' in text


def test_strict_decoding_rejects_unknown_fields_and_wrong_types():
    assert reject(spec("podSelector: {}\ningres: [{}]")) == (
        'NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: '
        'strict decoding error: unknown field "spec.ingres"')
    assert reject(spec("podSelector: {}\ningress: [{ports: [{port: {a: 1}}]}]")) == (
        'NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: json: cannot unmarshal object into '
        "Go struct field NetworkPolicyPort.spec.ingress.ports.port of type intstr.IntOrString")
    assert "cannot unmarshal string into Go struct field NetworkPolicySpec.spec.ingress of type " \
           "[]v1.NetworkPolicyIngressRule" in reject(spec("podSelector: {}\ningress: yes-please"))


def test_metadata_and_kind():
    assert 'metadata.name: Required value: name or generateName is required' in reject(
        HEAD.replace("name: p, ", "") + "  podSelector: {}\n")
    assert 'metadata.name: Invalid value: "Bad_Name"' in reject(spec("podSelector: {}").replace("name: p", "name: Bad_Name"))
    assert reject(spec("podSelector: {}").replace("networking.k8s.io/v1", "networking.k8s.io/v2")) == \
        'no matches for kind "NetworkPolicy" in version "networking.k8s.io/v2"'


def test_duplicate_objects_in_one_manifest_are_rejected():
    assert "appears twice" in reject(spec("podSelector: {}") + "---\n" + spec("podSelector: {}"))


def test_host_bits_are_masked_like_the_api_server_does():
    p = parse_manifest(spec("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.1/8}}]}]")).policies[0]
    assert str(p.ingress[0].peers[0].ip_block.cidr) == "10.0.0.0/8"
