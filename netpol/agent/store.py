"""The agent's own record of pods, namespaces, policies and Services, persisted under a state directory.

The pinned BPF maps are the truth for what is enforced now; this store is the
truth for *why* (the objects).  On restart the agent recompiles from the store
and syncs the maps, changing nothing if nothing changed.

Layout: namespaces.json, endpoints.json, services.json and one policies/<namespace>_<name>.json
per policy, so a change rewrites only what changed (a 10,000-rule policy is not
rewritten because a pod came up).  Every file is replaced atomically (temp
file, fsync, rename).  Records are immutable and replaced on change, which
makes a State snapshot a cheap shallow copy.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zlib
from typing import Optional

from cni import atomic

from ..manifest import canonical_json
from ..model import NamedPort, NetworkPolicy, Pod, World
from ..parse import parse_policy, shared_parts
from ..services import Service, service_from_dict, service_to_dict


class PolicyRecord:
    """policy, manifest (the object as applied, as canonical JSON), source, cookie (index of its
    counter in pw_policy_stats).  Immutable.  The manifest is held zlib-compressed: a 10,000-rule
    policy's JSON is ~350 KiB, compressed a few KiB."""

    __slots__ = ("policy", "_packed", "source", "cookie")
    policy: NetworkPolicy
    _packed: bytes
    source: str
    cookie: int

    def __init__(self, policy: NetworkPolicy, manifest: str, source: str, cookie: int):
        for name, value in (("policy", policy), ("_packed", zlib.compress(manifest.encode(), 1)),
                            ("source", source), ("cookie", cookie)):
            object.__setattr__(self, name, value)

    @property
    def manifest(self) -> str:
        return zlib.decompress(self._packed).decode()

    def same_manifest(self, manifest: str) -> bool:
        return zlib.compress(manifest.encode(), 1) == self._packed  # deterministic within a process

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __eq__(self, other) -> bool:
        if type(other) is not PolicyRecord:
            return NotImplemented
        return (self.policy, self._packed, self.source, self.cookie) == (
            other.policy, other._packed, other.source, other.cookie)

    def __hash__(self) -> int:
        return hash((self.policy, self._packed, self.source, self.cookie))

    def __repr__(self) -> str:
        return f"PolicyRecord(policy={self.policy!r}, source={self.source!r}, cookie={self.cookie!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointRecord:
    pod: Pod
    ep_id: int = 0   # datapath id while the pod has an interface on this node


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceRecord:
    service: Service
    source: str


@dataclasses.dataclass
class State:
    namespaces: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    endpoints: dict[str, EndpointRecord] = dataclasses.field(default_factory=dict)
    policies: dict[str, PolicyRecord] = dataclasses.field(default_factory=dict)
    services: dict[str, ServiceRecord] = dataclasses.field(default_factory=dict)

    def world(self) -> World:
        return World(pods=[r.pod for r in self.endpoints.values()], namespaces=dict(self.namespaces),
                     policies=[r.policy for r in self.policies.values()])

    def copy(self) -> "State":
        """A snapshot: records are never mutated, only replaced, so the dicts suffice."""
        return State(dict(self.namespaces), dict(self.endpoints), dict(self.policies), dict(self.services))


class Store:
    def __init__(self, state_dir: Optional[str]):
        self.dir = state_dir  # None: memory only (tests)
        self._saved = State()

    def load(self) -> State:
        state = State()
        if not self.dir or not os.path.isdir(self.dir):
            return state
        state.namespaces = _read(os.path.join(self.dir, "namespaces.json"), {})
        for key, e in _read(os.path.join(self.dir, "endpoints.json"), {}).items():
            state.endpoints[key] = EndpointRecord(_pod_from(e["pod"]), e.get("ep_id", 0))
        for key, e in _read(os.path.join(self.dir, "services.json"), {}).items():
            state.services[key] = ServiceRecord(service_from_dict(e["service"]), e["source"])
        pdir = os.path.join(self.dir, "policies")
        with shared_parts():  # equal rule parts of all stored policies: one object each
            for name in sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []:
                if name.endswith(".json"):
                    p = _read(os.path.join(pdir, name), None)
                    rec = PolicyRecord(parse_policy(p["manifest"]), canonical_json(p["manifest"]), p["source"],
                                       p["cookie"])
                    state.policies[rec.policy.key] = rec
        self._saved = state.copy()
        return state

    def save(self, state: State) -> None:
        if not self.dir:
            return
        os.makedirs(os.path.join(self.dir, "policies"), mode=0o700, exist_ok=True)
        if state.namespaces != self._saved.namespaces:
            _write(os.path.join(self.dir, "namespaces.json"), state.namespaces)
        if state.endpoints != self._saved.endpoints:
            _write(os.path.join(self.dir, "endpoints.json"),
                   {k: {"pod": _pod_to(r.pod), "ep_id": r.ep_id} for k, r in state.endpoints.items()})
        if state.services != self._saved.services:
            _write(os.path.join(self.dir, "services.json"),
                   {k: {"service": service_to_dict(r.service), "source": r.source} for k, r in state.services.items()})
        for key, rec in state.policies.items():
            if self._saved.policies.get(key) is not rec:
                _write(self._policy_path(key), {"manifest": json.loads(rec.manifest), "source": rec.source,
                                                "cookie": rec.cookie})
        for key in set(self._saved.policies) - set(state.policies):
            try:
                os.unlink(self._policy_path(key))
            except FileNotFoundError:
                pass
        self._saved = state.copy()

    def _policy_path(self, key: str) -> str:
        namespace, name = key.split("/", 1)  # a namespace has no "_": the file name is unambiguous
        assert self.dir, "a memory-only store has no files"
        return os.path.join(self.dir, "policies", f"{namespace}_{name}.json")


def _read(path: str, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def _write(path: str, value) -> None:
    atomic.write_bytes(path, json.dumps(value, sort_keys=True).encode())


def _pod_to(pod: Pod) -> dict:
    return {"namespace": pod.namespace, "name": pod.name, "labels": dict(pod.labels), "ips": list(pod.ips),
            "ports": [dataclasses.asdict(p) for p in pod.ports], "interface": pod.interface,
            "container_id": pod.container_id}


def _pod_from(raw: dict) -> Pod:
    return Pod(namespace=raw["namespace"], name=raw["name"], labels=tuple(sorted(raw.get("labels", {}).items())),
               ips=tuple(raw.get("ips", [])), ports=tuple(NamedPort(**p) for p in raw.get("ports", [])),
               interface=raw.get("interface", ""), container_id=raw.get("container_id", ""))
