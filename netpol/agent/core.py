"""The agent's core: every change is one transaction State -> compile -> sync -> save.

A transaction that fails (invalid input is rejected before it starts; a full
map or a vanished interface can fail it midway) restores the previous State
and syncs the maps back, so the datapath only ever holds a compiled State.
Locking: one lock serialises transactions; drop events arrive on their own
thread and only read immutable snapshots.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from typing import Callable, Iterable, Optional, TypeVar

from ..compiler import (ISOLATE_EGRESS, ISOLATE_INGRESS, Attachment, Compiler, Desired,
                        IdentityAllocator)
from ..datapath.events import DropEvent
from ..errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from ..manifest import gc_paused, parse_manifest
from ..model import Pod, World
from ..parse import shared_parts
from ..services import Service, frontends
from . import drops as drop_views
from .store import EndpointRecord, PolicyRecord, ServiceRecord, State, Store
from .validate import merge_pod, validate_pod
from .views import EndpointView, PolicyResult, PolicyView

log = logging.getLogger("podwire.netpol")
T = TypeVar("T")
MAX_ENDPOINT_ID = 16383  # PW_MAX_ENDPOINTS - 1 (lib/maps.h)
MAX_COOKIE = 65535       # PW_MAX_COOKIES - 1
BIG_CHANGE = 0.2         # seconds; see _settle_heap


class Agent:
    def __init__(self, datapath, store: Store, drop_history: int = 1024):
        self.datapath = datapath
        self.store = store
        self.state = store.load()
        self._lock = threading.RLock()
        current = datapath.current()
        self.identities = IdentityAllocator()
        self.compiler = Compiler(self.identities, seed=current)  # keeps the pinned maps' numbers
        self._ifindex: dict[str, int] = {}  # pod key -> ifindex of its host veth
        self._touched: set[str] = set()     # pods changed by the transaction in progress
        self._desired = Desired(endpoints=dict(current.endpoints))
        self.drops = drop_views.DropLog(drop_history)
        self._frontends: tuple[dict, frozenset] = ({}, frozenset())  # services -> their frontends, memo
        self._pod_parts: dict[tuple, tuple] = {}  # one object per distinct label set / port list (see _shared)
        # Told of every change: (what changed: "policy", "namespace", "endpoint" or "service", seconds from the
        # change reaching the agent to the maps holding it, whether it took effect) -- the metrics.
        self.update_listeners: list[Callable[[str, float, bool], None]] = []

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Bring the maps in line with the stored state (after a restart: usually no change),
        re-attach the current programs everywhere, then start reading drops."""
        with self._lock:
            for key in self._resolve_interfaces():
                log.info("endpoint %s: host interface is gone, removing it", key, extra={"endpoint": str(key)})
                del self.state.endpoints[key]
            self._reconcile(reattach=True)
            self.store.save(self.state)
        _settle_heap()
        self.datapath.start_drops(self._on_drop)

    def gc(self) -> list[str]:
        """Remove pods whose host veth disappeared without a CNI DEL reaching us."""
        with self._lock:
            gone = [key for key, ifindex in self._ifindex.items() if self._probe(key) != ifindex]
            if gone:
                def mutate(state: State) -> None:
                    for key in gone:
                        state.endpoints.pop(key, None)
                        self._ifindex.pop(key, None)
                        self._touched.add(key)
                self._transaction(mutate, "endpoint")
            return gone

    def close(self) -> None:
        self.datapath.close()

    # -- endpoints ------------------------------------------------------------------------------
    def upsert_endpoint(self, pod: Pod, fields: Optional[set[str]] = None) -> EndpointView:
        validate_pod(pod, fields)

        def mutate(state: State) -> None:
            rec = state.endpoints.get(pod.key)
            merged = merge_pod(rec.pod, pod, fields) if rec is not None and fields else pod
            ep_id = rec.ep_id if rec else 0
            if merged.interface:
                for key, other in state.endpoints.items():  # a stale pod holding the same veth
                    if key != pod.key and other.pod.interface == merged.interface:
                        state.endpoints[key] = EndpointRecord(_without_interface(other.pod))
                        self._ifindex.pop(key, None)
                        self._touched.add(key)
                self._ifindex[pod.key] = self.datapath.ifindex(merged.interface)
                ep_id = ep_id or self._allocate_ep_id(state)
            else:
                self._ifindex.pop(pod.key, None)
                ep_id = 0
            stored = self._shared(merged, state)
            state.endpoints[stored.key] = EndpointRecord(stored, ep_id)  # keyed by its own key string
            self._touched.add(stored.key)

        self._transaction(mutate, "endpoint")
        return self.endpoint(pod.key)

    def remove_endpoint(self, namespace: str = "", name: str = "", interface: str = "") -> bool:
        with self._lock:
            key = f"{namespace}/{name}" if name else next(
                (k for k, r in self.state.endpoints.items() if interface and r.pod.interface == interface), "")
            if key not in self.state.endpoints:
                return False

            def mutate(state: State) -> None:
                del state.endpoints[key]
                self._ifindex.pop(key, None)
                self._touched.add(key)

            self._transaction(mutate, "endpoint")
            return True

    def endpoint(self, key: str) -> EndpointView:
        with self._lock:
            rec = self.state.endpoints.get(key)
            if rec is None:
                raise NotFound(f'endpoint "{key}" not found')
            entry = self._desired.endpoints.get(self._ifindex.get(key, -1))
            flags = entry.flags if entry else 0
            return EndpointView(rec.pod, rec.ep_id, bool(flags & ISOLATE_INGRESS), bool(flags & ISOLATE_EGRESS))

    def endpoints(self) -> list[EndpointView]:
        with self._lock:
            return [self.endpoint(k) for k in sorted(self.state.endpoints)]

    # -- namespaces -----------------------------------------------------------------------------
    def set_namespace(self, name: str, labels: dict[str, str]) -> None:
        if not name:
            raise InvalidArgument("namespace name is required")
        self._transaction(lambda s: s.namespaces.__setitem__(name, dict(labels)), "namespace")

    def remove_namespace(self, name: str) -> None:
        self._transaction(lambda s: s.namespaces.pop(name, None), "namespace")

    def namespaces(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return dict(self.state.namespaces)

    # -- services -------------------------------------------------------------------------------
    # Services never change a verdict, only where egress to them is judged (after DNAT).
    def upsert_service(self, service: Service, source: str = "cli") -> None:
        self._transaction(lambda s: s.services.__setitem__(service.key, ServiceRecord(service, source)), "service")

    def remove_service(self, namespace: str, name: str) -> bool:
        with self._lock:
            key = f"{namespace or 'default'}/{name}"
            if key not in self.state.services:
                return False
            self._transaction(lambda s: s.services.pop(key, None), "service")
            return True

    def service_keys(self, source: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k, r in self.state.services.items() if not source or r.source == source)

    def services(self) -> list[Service]:
        with self._lock:
            return [self.state.services[k].service for k in sorted(self.state.services)]

    # -- policies -------------------------------------------------------------------------------
    def apply(self, text: str, source: str = "cli", default_namespace: str = "default", dry_run: bool = False,
              prune: bool = False) -> list[PolicyResult]:
        received = time.monotonic()
        with gc_paused():  # parsing and compiling a big manifest: see gc_paused; _settle_heap collects after
            return self._apply(received, text, source, default_namespace, dry_run, prune)

    def _apply(self, received: float, text: str, source: str, default_namespace: str, dry_run: bool,
               prune: bool) -> list[PolicyResult]:
        with shared_parts():  # equal rule parts of all its policies: one object each
            # before any change; the objects as stored (canonical JSON), each document's dicts
            # gone before the next is read (the apply's peak memory; fewer objects for
            # _settle_heap's collection to walk after a big apply)
            manifest = parse_manifest(text, source, default_namespace or "default", keep_objects=False)
        raws = manifest.raws
        policies, namespaces, services = manifest.policies, manifest.namespaces, manifest.services
        del manifest

        def mutate(state: State) -> list[PolicyResult]:
            results = []
            for name, labels in namespaces.items():
                state.namespaces[name] = labels
            results.extend(_apply_services(state, services, source, prune))
            for policy in policies:
                raw, old = raws[policy.key], state.policies.get(policy.key)
                if old is not None and old.source == source and old.same_manifest(raw):
                    results.append(PolicyResult(policy.namespace, policy.name, "unchanged"))
                    continue
                cookie = old.cookie if old else self._allocate_cookie(state)
                state.policies[policy.key] = PolicyRecord(policy, raw, source, cookie)
                results.append(PolicyResult(policy.namespace, policy.name, "configured" if old else "created"))
            if prune:
                for key in [k for k, r in state.policies.items() if r.source == source and k not in raws]:
                    rec = state.policies.pop(key)
                    results.append(PolicyResult(rec.policy.namespace, rec.policy.name, "deleted"))
            return results

        if dry_run:
            with self._lock:
                return mutate(self.state.copy())
        return self._transaction(mutate, "policy", received)

    def delete_policies(self, keys: Iterable[str], ignore_not_found: bool = False) -> list[PolicyResult]:
        keys = list(dict.fromkeys(keys))
        with self._lock:
            missing = [k for k in keys if k not in self.state.policies]
            if missing and not ignore_not_found:
                raise NotFound(f'networkpolicies.networking.k8s.io "{missing[0].split("/", 1)[1]}" not found')

            def mutate(state: State) -> list[PolicyResult]:
                gone = [state.policies.pop(k) for k in keys if k in state.policies]
                return [PolicyResult(r.policy.namespace, r.policy.name, "deleted") for r in gone]

            return self._transaction(mutate, "policy")

    def delete(self, namespace: str = "", names: Iterable[str] = (), all_in_namespace: bool = False,
               manifest: str = "", ignore_not_found: bool = False) -> list[PolicyResult]:
        """kubectl delete's forms: names in a namespace, --all, or the objects of a manifest."""
        keys = self.policy_keys(namespace) if all_in_namespace else [f"{namespace or 'default'}/{n}" for n in names]
        services: list[str] = []
        if manifest:
            with shared_parts():  # (and validation's cidr cache is not kept after it)
                parsed = parse_manifest(manifest, "manifest", namespace or "default")
            keys += [p.key for p in parsed.policies]
            services = list(parsed.services)
        results = self.delete_policies(keys, ignore_not_found or all_in_namespace)
        for key in services:
            results += self._removed_service(key)
        return results

    def delete_source(self, source: str) -> list[PolicyResult]:
        results = self.delete_policies(self.policy_keys(source=source), ignore_not_found=True)
        for key in self.service_keys(source):
            results += self._removed_service(key)
        return results

    def _removed_service(self, key: str) -> list[PolicyResult]:
        namespace, name = key.split("/", 1)
        return [PolicyResult(namespace, name, "deleted", "service")] if self.remove_service(namespace, name) else []

    def policy_keys(self, namespace: str = "", source: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k, r in self.state.policies.items()
                          if (not namespace or r.policy.namespace == namespace) and (not source or r.source == source))

    def policies(self, namespace: str = "") -> list[PolicyView]:
        with self._lock:
            local = [r.pod for r in self.state.endpoints.values() if r.ep_id]
            return [PolicyView(r, [p.key for p in local if p.namespace == r.policy.namespace
                                   and r.policy.pod_selector.matches(p.label_map)])
                    for k, r in sorted(self.state.policies.items())
                    if not namespace or r.policy.namespace == namespace]

    # -- observability ---------------------------------------------------------------------------
    def stats(self):
        with self._lock:
            return drop_views.stats_view(self.state, self._desired, self.datapath)

    def _on_drop(self, event: DropEvent) -> None:
        self.drops.add(event)

    # -- internals -------------------------------------------------------------------------------
    def _transaction(self, mutate: Callable[[State], T], change: str, received: Optional[float] = None) -> T:
        """``change``: what kind of object changed; ``received``: when the change reached the
        agent (default now: waiting for the lock is part of its latency)."""
        received = time.monotonic() if received is None else received
        with self._lock:
            started = time.monotonic()
            before, before_ifindex = self.state.copy(), dict(self._ifindex)
            self._touched = set()  # the pods mutate changes: only they are compiled again
            try:
                result = mutate(self.state)
                self._reconcile(touched=self._touched)
            except Exception:
                self.state, self._ifindex = before, before_ifindex
                try:
                    self._reconcile()
                except Exception:  # the original error matters more; the next change retries
                    log.exception("restoring the datapath after a failed change")
                self._updated(change, received, False)
                raise
            self._updated(change, received, True)
            self.store.save(self.state)
            if time.monotonic() - started > BIG_CHANGE:
                _settle_heap()
            return result

    def _updated(self, change: str, received: float, ok: bool) -> None:
        seconds = time.monotonic() - received
        for listener in self.update_listeners:
            listener(change, seconds, ok)

    def _reconcile(self, reattach: bool = False, touched: Optional[set[str]] = None) -> None:
        """``touched``: the only pods that changed (None: compare them all)."""
        eps = self.state.endpoints
        keys = eps.keys() if touched is None else [k for k in touched if k in eps]
        attachments = {k: Attachment(eps[k].ep_id, self._ifindex[k]) for k in keys
                       if eps[k].ep_id and k in self._ifindex}
        cookies = {k: r.cookie for k, r in self.state.policies.items()}
        if touched is None:
            desired = self.compiler.compile(self.state.world(), attachments, cookies)
        else:
            world = World([], dict(self.state.namespaces), [r.policy for r in self.state.policies.values()])
            changed = {k: eps[k].pod if k in eps else None for k in touched}
            desired = self.compiler.compile(world, attachments, cookies, changed_pods=changed)
        desired.services = self._service_frontends()
        old = set(self._desired.endpoints)
        for ifindex in old - set(desired.endpoints):
            self.datapath.detach(ifindex)  # before its entry goes, or it would drop as unknown
        self.datapath.sync(desired)
        for ifindex in desired.endpoints:
            if reattach or ifindex not in old:
                self.datapath.attach(ifindex)
        self._desired = desired
        self.drops.index(self.state, self._desired)

    def _service_frontends(self) -> frozenset:
        if self._frontends[0] != self.state.services:
            services = dict(self.state.services)
            self._frontends = (services, frontends(r.service for r in services.values()))
        return self._frontends[1]

    def _resolve_interfaces(self) -> list[str]:
        gone = []
        for key, rec in self.state.endpoints.items():
            if rec.pod.interface:
                ifindex = self._probe(key)
                if ifindex is None:
                    gone.append(key)
                else:
                    self._ifindex[key] = ifindex
        return gone

    def _probe(self, key: str) -> Optional[int]:
        rec = self.state.endpoints.get(key)
        try:
            return self.datapath.ifindex(rec.pod.interface) if rec and rec.pod.interface else None
        except FailedPrecondition:
            return None

    def _shared(self, pod: Pod, state: State) -> Pod:
        """``pod`` holding the same labels and ports tuples as earlier pods with equal ones (a
        Deployment's pods share one label set: thousands of pods, one tuple).  The table is
        rebuilt from the pods known when it holds many more sets than there are pods."""
        parts = self._pod_parts
        if len(parts) > 4 * len(state.endpoints) + 256:
            parts.clear()
            for rec in state.endpoints.values():
                parts.setdefault(rec.pod.labels, rec.pod.labels)
                parts.setdefault(rec.pod.ports, rec.pod.ports)
        labels, ports = parts.setdefault(pod.labels, pod.labels), parts.setdefault(pod.ports, pod.ports)
        if labels is pod.labels and ports is pod.ports:
            return pod
        return dataclasses.replace(pod, labels=labels, ports=ports)

    def _allocate_ep_id(self, state: State) -> int:
        current = self.datapath.current()
        used = {r.ep_id for r in state.endpoints.values()} | {e.ep_id for e in current.endpoints.values()}
        return _lowest_free(used, MAX_ENDPOINT_ID, "endpoint ids")

    def _allocate_cookie(self, state: State) -> int:
        cookie = _lowest_free({r.cookie for r in state.policies.values()}, MAX_COOKIE, "policy counters")
        self.datapath.reset_policy_counter(cookie)
        return cookie


def _settle_heap() -> None:
    """Move what exists now out of the cyclic collector's view.  After a big policy (10,000
    rules is ~10^6 objects) every full collection would rescan it, stalling later small
    changes by ~150 ms at p99; our records are acyclic, so refcounting still frees them."""
    gc.collect()
    gc.freeze()


def _lowest_free(used: set[int], limit: int, what: str) -> int:
    for candidate in range(1, limit + 1):
        if candidate not in used:
            return candidate
    raise ResourceExhausted(f"no free {what} (limit {limit})")


def _apply_services(state: State, services: dict[str, Service], source: str, prune: bool) -> list[PolicyResult]:
    results = []
    for key, svc in services.items():
        old = state.services.get(key)
        if old is not None and old.service == svc and old.source == source:
            results.append(PolicyResult(svc.namespace, svc.name, "unchanged", "service"))
            continue
        state.services[key] = ServiceRecord(svc, source)
        results.append(PolicyResult(svc.namespace, svc.name, "configured" if old else "created", "service"))
    if prune:
        for key in [k for k, r in state.services.items() if r.source == source and k not in services]:
            svc = state.services.pop(key).service
            results.append(PolicyResult(svc.namespace, svc.name, "deleted", "service"))
    return results


def _without_interface(pod: Pod) -> Pod:
    return dataclasses.replace(pod, interface="", container_id="")
