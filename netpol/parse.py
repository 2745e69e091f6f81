"""Kubernetes objects (dicts from YAML, JSON or the API) -> model, validated like the API server.

Order as in the API server: decode strictly (decode.py), apply defaults
(protocol TCP, policyTypes), validate (ValidateNetworkPolicy), and only then
build the model.  Every rejection raises InvalidPolicy with the server's text.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Optional

from . import validation as v
from .decode import DecodeErrors, decode_spec
from .errors import InvalidPolicy
from .model import (EGRESS, INGRESS, PROTOCOLS, IPBlock, IPNetwork, LabelSelector, NetworkPolicy, Peer,
                    PolicyPort, Requirement, Rule, subnet_of)

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
QUALIFIED_KIND = "NetworkPolicy.networking.k8s.io"

# Equal immutable rule parts (ports, peers, selectors, whole rules) are built once and shared: 10,000
# rules naming the same port hold one PolicyPort, not 10,000.  The table lives for one policy, or for a
# whole manifest inside shared_parts() (the agent's apply: an ingress and an egress policy naming the
# same peers and ports then share their rules too).
_shared: contextvars.ContextVar[Optional[dict]] = contextvars.ContextVar("netpol_parse_shared", default=None)


@contextlib.contextmanager
def shared_parts() -> Iterator[None]:
    """Policies parsed inside share equal rule parts (not only those within one policy)."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)
        if _shared.get() is None:
            # validation's cidr cache served this manifest (validation and the model parse each
            # cidr); its networks and texts are not kept past it (the model holds compact ones)
            v.parse_cidr.cache_clear()


def _one(table: dict, value):
    """The first value equal to ``value`` seen in this table (one object for equal parts)."""
    return table.setdefault(value, value)


def parse_policy(obj: Any, default_namespace: str = "default") -> NetworkPolicy:
    if not isinstance(obj, dict):
        raise InvalidPolicy(f"cannot handle {type(obj).__name__} as a Kubernetes object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if kind != KIND or api_version != API_VERSION:
        raise InvalidPolicy(f'no matches for kind "{kind}" in version "{api_version}"')
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise InvalidPolicy(_cannot_handle("json: cannot unmarshal into Go struct field "
                                           "NetworkPolicy.metadata of type v1.ObjectMeta"))
    name = meta.get("name") or ""
    namespace = meta.get("namespace") or default_namespace
    try:
        spec = decode_spec(obj.get("spec"))
    except DecodeErrors as exc:
        raise InvalidPolicy(_cannot_handle(exc.messages[0]), exc.messages) from None
    errors = _validate_meta(name, namespace) + validate_spec(spec)
    if errors:
        text = f"{QUALIFIED_KIND} {v._go_value(name)} is invalid: {v.aggregate(errors)}"
        raise InvalidPolicy(text, [str(e) for e in errors])
    return _build(namespace, name, spec)


def _cannot_handle(detail: str) -> str:
    return f'{KIND} in version "v1" cannot be handled as a {KIND}: {detail}'


def _validate_meta(name: str, namespace: str) -> list[v.FieldError]:
    errs = []
    if not name:
        errs.append(v.required("metadata.name", "name or generateName is required"))
    else:
        errs += [v.invalid("metadata.name", name, m) for m in v.dns_subdomain_errors(name)]
    errs += [v.invalid("metadata.namespace", namespace, m) for m in v.dns_label_errors(namespace)]
    return errs


def validate_spec(spec: dict) -> list[v.FieldError]:
    """ValidateNetworkPolicySpec, rule for rule."""
    errs = validate_selector(spec.get("podSelector"), "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            path = f"spec.{direction}[{i}]"
            for j, port in enumerate((rule or {}).get("ports") or []):
                errs += _validate_port(port or {}, f"{path}.ports[{j}]")
            for j, peer in enumerate((rule or {}).get(peers_key) or []):
                errs += _validate_peer(peer or {}, f"{path}.{peers_key}[{j}]")
    types = spec.get("policyTypes") or []
    if len(types) > 2:
        return errs + [v.invalid("spec.policyTypes", types, "may not specify more than two policyTypes")]
    for i, kind in enumerate(types):
        if kind not in (INGRESS, EGRESS):
            errs.append(v.not_supported(f"spec.policyTypes[{i}]", kind, [INGRESS, EGRESS]))
    return errs


def _validate_port(port: dict, path: str) -> list[v.FieldError]:
    errs = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        errs.append(v.not_supported(f"{path}.protocol", protocol, list(PROTOCOLS)))
    number, end = port.get("port"), port.get("endPort")
    if number is None:
        if end is not None:
            errs.append(v.invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified"))
    elif isinstance(number, int):
        errs += [v.invalid(f"{path}.port", number, m) for m in v.port_number_errors(number)]
        if end is not None:
            if end < number:  # the API server reports `port`'s value here
                errs.append(v.invalid(f"{path}.endPort", number, "must be greater than or equal to `port`"))
            errs += [v.invalid(f"{path}.endPort", end, m) for m in v.port_number_errors(end)]
    else:
        if end is not None:
            errs.append(v.invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric"))
        errs += [v.invalid(f"{path}.port", number, m) for m in v.port_name_errors(number)]
    return errs


def _validate_peer(peer: dict, path: str) -> list[v.FieldError]:
    errs, count = [], 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            count += 1
            errs += validate_selector(peer[key], f"{path}.{key}")
    if peer.get("ipBlock") is not None:
        count += 1
        errs += _validate_ip_block(peer["ipBlock"], f"{path}.ipBlock")
    if count == 0:
        errs.append(v.required(path, "must specify a peer"))
    elif count > 1 and peer.get("ipBlock") is not None:
        errs.append(v.forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def _validate_ip_block(block: dict, path: str) -> list[v.FieldError]:
    cidr_text = block.get("cidr") or ""
    if not cidr_text:
        return [v.required(f"{path}.cidr")]
    cidr = v.parse_cidr(cidr_text)
    if cidr is None:
        return [v.invalid(f"{path}.cidr", cidr_text, v.CIDR_MSG)]
    errs = []
    for i, text in enumerate(block.get("except") or []):
        exc = v.parse_cidr(text)
        if exc is None:
            errs.append(v.invalid(f"{path}.except[{i}]", text, v.CIDR_MSG))
        elif not subnet_of(exc, cidr) or exc.prefixlen <= cidr.prefixlen:
            errs.append(v.invalid(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`"))
    return errs


def validate_selector(sel: Optional[dict], path: str) -> list[v.FieldError]:
    """ValidateLabelSelector (label keys/values and requirement operators)."""
    errs: list[v.FieldError] = []
    if not sel:
        return errs
    for key, value in (sel.get("matchLabels") or {}).items():
        errs += [v.invalid(f"{path}.matchLabels", key, m) for m in v.qualified_name_errors(key)]
        errs += [v.invalid(f"{path}.matchLabels", value, m) for m in v.label_value_errors(value)]
    for i, req in enumerate(sel.get("matchExpressions") or []):
        rpath, req = f"{path}.matchExpressions[{i}]", req or {}
        op, values = req.get("operator") or "", req.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(v.required(f"{rpath}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(v.forbidden(f"{rpath}.values",
                                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(v.invalid(f"{rpath}.operator", op, "not a valid selector operator"))
        key = req.get("key") or ""
        errs += [v.invalid(f"{rpath}.key", key, m) for m in v.qualified_name_errors(key)]
        for j, value in enumerate(values):
            errs += [v.invalid(f"{rpath}.values[{j}]", value, m) for m in v.label_value_errors(value)]
    return errs


def _build(namespace: str, name: str, spec: dict) -> NetworkPolicy:
    table = _shared.get()
    table = {} if table is None else table
    egress_rules = spec.get("egress") or []
    types = spec.get("policyTypes") or []
    if not types:  # SetDefaults_NetworkPolicy: Ingress always, Egress only with egress rules
        types = [INGRESS] + ([EGRESS] if egress_rules else [])
    return NetworkPolicy(
        namespace=namespace, name=name, pod_selector=build_selector(spec.get("podSelector"), table),
        policy_types=_one(table, frozenset(types)),
        ingress=tuple(_rule(r or {}, "from", table) for r in spec.get("ingress") or []),
        egress=tuple(_rule(r or {}, "to", table) for r in egress_rules))


def _rule(rule: dict, peers_key: str, table: dict) -> Rule:
    peers = _one(table, tuple(_peer(p, table) for p in rule.get(peers_key) or []))
    ports = _one(table, tuple(_one(table, PolicyPort(protocol=p.get("protocol") or "TCP", port=p.get("port"),
                                                     end_port=p.get("endPort")))
                              for p in (q or {} for q in rule.get("ports") or [])))
    return _one(table, Rule(peers=peers, ports=ports))


def _valid_cidr(text: str) -> IPNetwork:
    """A CIDR that validation has already accepted (a model.HostPrefix)."""
    cidr = v.parse_cidr(text)
    assert cidr is not None, text
    return cidr


def _peer(peer: dict, table: dict) -> Peer:
    block = peer.get("ipBlock")
    if block is not None:
        return _one(table, Peer(ip_block=IPBlock(_valid_cidr(block["cidr"]),
                                                 tuple(_valid_cidr(e) for e in block.get("except") or []))))
    return _one(table, Peer(
        pod_selector=build_selector(peer["podSelector"], table) if peer.get("podSelector") is not None else None,
        namespace_selector=(build_selector(peer["namespaceSelector"], table)
                            if peer.get("namespaceSelector") is not None else None)))


def build_selector(sel: Optional[dict], table: Optional[dict] = None) -> LabelSelector:
    sel = sel or {}
    selector = LabelSelector(
        match_labels=tuple(sorted((sel.get("matchLabels") or {}).items())),
        match_expressions=tuple(Requirement(r["key"], r["operator"], tuple(r.get("values") or []))
                                for r in sel.get("matchExpressions") or []))
    return selector if table is None else _one(table, selector)
