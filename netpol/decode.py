"""Strict decoding of a NetworkPolicy object, as the API server's decoder does it.

Before validation the API server decodes JSON into Go structs: an unknown
field ("ingres") or a value of the wrong JSON type is rejected there, with the
message "NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy:
...".  This module walks the same struct shapes (a schema of
networking.k8s.io/v1) and produces the same kinds of messages, so typos never
silently widen a policy.
"""
from __future__ import annotations

from typing import Any

# Go type of each field; a dict value is a struct (its Go name, its fields).
_SELECTOR = ("LabelSelector", {
    "matchLabels": "map[string]string",
    "matchExpressions": ["LabelSelectorRequirement"],
})
_STRUCTS: dict[str, tuple[str, dict[str, Any]]] = {
    "LabelSelector": _SELECTOR,
    "LabelSelectorRequirement": ("LabelSelectorRequirement", {
        "key": "string", "operator": "v1.LabelSelectorOperator", "values": ["string"]}),
    "NetworkPolicySpec": ("NetworkPolicySpec", {
        "podSelector": "LabelSelector", "ingress": ["NetworkPolicyIngressRule"],
        "egress": ["NetworkPolicyEgressRule"], "policyTypes": ["v1.PolicyType"]}),
    "NetworkPolicyIngressRule": ("NetworkPolicyIngressRule", {
        "from": ["NetworkPolicyPeer"], "ports": ["NetworkPolicyPort"]}),
    "NetworkPolicyEgressRule": ("NetworkPolicyEgressRule", {
        "to": ["NetworkPolicyPeer"], "ports": ["NetworkPolicyPort"]}),
    "NetworkPolicyPeer": ("NetworkPolicyPeer", {
        "podSelector": "LabelSelector", "namespaceSelector": "LabelSelector", "ipBlock": "IPBlock"}),
    "IPBlock": ("IPBlock", {"cidr": "string", "except": ["string"]}),
    "NetworkPolicyPort": ("NetworkPolicyPort", {
        "protocol": "v1.Protocol", "port": "intstr.IntOrString", "endPort": "int32"}),
}
_STRINGS = ("string", "v1.LabelSelectorOperator", "v1.PolicyType", "v1.Protocol")


class DecodeErrors(Exception):
    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_name(kind: Any) -> str:
    if isinstance(kind, list):
        return "[]" + _go_name(kind[0])
    return f"v1.{kind}" if kind in _STRUCTS else kind


class _Decoder:
    def __init__(self):
        self.unknown: list[str] = []
        self.type_errors: list[str] = []

    def value(self, value: Any, kind: Any, path: str, struct: str) -> Any:
        if value is None:
            return None  # JSON null leaves the Go zero value
        if isinstance(kind, list):
            if not isinstance(value, list):
                return self._type_error(value, kind, path, struct)
            out = [self.value(v, kind[0], path, struct) for v in value]
            return value if all(a is b for a, b in zip(out, value, strict=True)) else out
        if kind in _STRUCTS:
            return self.struct(value, kind, path, struct)
        if kind == "map[string]string":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                return self._type_error(value, kind, path, struct)
            if all(type(k) is str for k in value):
                return value
            return {str(k): v for k, v in value.items()}
        if kind in _STRINGS:
            return value if isinstance(value, str) else self._type_error(value, kind, path, struct)
        if kind == "int32":
            return self._int32(value, kind, path, struct)
        if kind == "intstr.IntOrString":
            return value if isinstance(value, str) else self._int32(value, kind, path, struct)
        raise AssertionError(kind)

    def struct(self, value: Any, kind: str, path: str, outer: str) -> Any:
        name, fields = _STRUCTS[kind]
        if not isinstance(value, dict):
            return self._type_error(value, kind, path, outer)
        out = {}
        same = True  # nothing decoded differently: the value itself is returned (no copy)
        for key, item in value.items():
            if key not in fields:
                self.unknown.append(f'unknown field "{f"{path}.{key}" if path else key}"')
                same = False
                continue
            decoded = out[key] = self.value(item, fields[key], f"{path}.{key}" if path else key, name)
            same = same and decoded is item
        return value if same else out

    def _int32(self, value: Any, kind: str, path: str, struct: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
                or not -2**31 <= value < 2**31:
            return self._type_error(value, kind, path, struct)
        return int(value)

    def _type_error(self, value: Any, kind: Any, path: str, struct: str) -> None:
        self.type_errors.append(f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                                f"{struct}.{path} of type {_go_name(kind)}")
        return None


def decode_spec(spec: Any) -> dict:
    """The spec as plain dicts/lists, or DecodeErrors.  Parts that decode to themselves are
    not copied (the result shares them with ``spec``: read it, never change it)."""
    decoder = _Decoder()
    out = decoder.struct(spec if spec is not None else {}, "NetworkPolicySpec", "spec", "NetworkPolicy")
    if decoder.type_errors:
        raise DecodeErrors(decoder.type_errors[:1])  # encoding/json stops at the first
    if decoder.unknown:
        raise DecodeErrors(["strict decoding error: " + ", ".join(decoder.unknown)])
    return out or {}
