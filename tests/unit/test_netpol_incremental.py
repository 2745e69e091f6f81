"""Property: random sequences of pod, namespace and policy changes, compiled incrementally and
written to the maps as diffs, leave exactly the map state a full rebuild produces, after every step.

The maps are dict-backed stand-ins driven by the real sync (netpol/datapath/sync.py), so only the
keys the compiler reports as changed are written; the state read back is compared with a fresh
compiler's output, identity and subject numbers replaced by what they stand for."""
from __future__ import annotations

import ctypes as ct
import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_netpol_property import NAMED, NAMESPACES, V4_POOL, V6_POOL, labels, policy

from netpol.compiler import Attachment, Compiler, IdentityAllocator
from netpol.datapath import maps as m
from netpol.datapath import sync
from netpol.model import Pod, World


class DictMap:
    def __init__(self, key_type, value_type):
        self.key_type, self.value_type, self.data = key_type, value_type, {}

    def update(self, key, value) -> None:
        self.data[bytes(key)] = bytes(value)

    def delete(self, key) -> None:
        del self.data[bytes(key)]

    def items(self):
        return [(self.key_type.from_buffer_copy(k), self.value_type.from_buffer_copy(v)) for k, v in self.data.items()]

    def zero(self, key) -> None:
        pass


class FakePrograms:
    def __init__(self):
        self.endpoints = DictMap(ct.c_uint32, m.EndpointInfo)
        self.ipcache = DictMap(m.IpcacheKey, m.IpcacheValue)
        self.policy = DictMap(m.PolicyKeyC, m.PolicyValue)
        self.ep_ids = DictMap(ct.c_uint32, m.EpRef)
        self.services = DictMap(m.ServiceKey, m.ServiceValue)
        self.ep_stats = DictMap(ct.c_uint32, ct.c_uint32)


def canonical(state, compiler):
    """The maps with numbers replaced by what they stand for; allow entries of subjects no endpoint
    uses (kept for a while after their last pod went) left out: a rebuild has none."""
    names = compiler.names()
    ident, subj = names["identity"], names["subject"]
    live = {e.subject for e in state.endpoints.values()}
    return ({i: (e.ep_id, e.flags, subj[e.subject]) for i, e in state.endpoints.items()},
            {n: (ident[e.identity], e.ep_id) for n, e in state.ipcache.items()},
            {(subj[k.subject], k.direction, ident.get(k.identity, k.identity), k.proto, k.port, k.l4_bits): c
             for k, c in state.policy.items() if k.subject in live},
            {ep_id: (ifindex, flags, subj[s]) for ep_id, (ifindex, flags, s) in state.ep_ids.items()})


@st.composite
def pod(draw, index):
    addrs = [draw(st.sampled_from(V4_POOL))] + ([draw(st.sampled_from(V6_POOL))] if draw(st.booleans()) else [])
    ports = draw(st.lists(st.sampled_from(NAMED), max_size=2, unique_by=lambda p: (p.name, p.protocol)))
    return Pod(draw(st.sampled_from(NAMESPACES)), f"pod{index}", tuple(sorted(draw(labels).items())), tuple(addrs),
               tuple(ports)), draw(st.booleans())


@st.composite
def step(draw):
    kind = draw(st.sampled_from(["pod", "pod", "unpod", "relabel", "namespace", "policy", "policy", "unpolicy"]))
    index = draw(st.integers(0, 5))
    if kind in ("pod", "relabel"):
        return kind, index, draw(pod(index))
    if kind == "namespace":
        return kind, draw(st.sampled_from(NAMESPACES)), draw(
            st.dictionaries(st.sampled_from(["app", "ns"]), st.sampled_from(["web", "n1", "db"]), max_size=1))
    if kind == "policy":
        return kind, index, draw(policy(index))
    return kind, index, None


def apply_step(world: World, local: dict[str, bool], change) -> set[str]:
    """Apply one change; returns the keys of the pods it changed."""
    kind, key, value = change
    if kind in ("pod", "relabel"):
        new, is_local = value
        if kind == "relabel":
            old = next((p for p in world.pods if p.key == new.key), None)
            if old is None:
                return set()
            new = dataclasses.replace(old, labels=new.labels, ports=new.ports)
            is_local = local[new.key]
        taken = {ip for p in world.pods if p.key != new.key for ip in p.ips}
        if taken & set(new.ips):
            return set()  # addresses are unique among pods
        world.pods = [p for p in world.pods if p.key != new.key] + [new]
        local[new.key] = is_local
        return {new.key}
    elif kind == "unpod":
        gone = {p.key for p in world.pods if p.name == f"pod{key}"}
        world.pods = [p for p in world.pods if p.name != f"pod{key}"]
        return gone
    elif kind == "namespace":
        world.namespaces[key] = value
    elif kind == "policy":
        world.policies = [p for p in world.policies if p.key != value.key] + [value]
    else:
        world.policies = [p for p in world.policies if p.name != f"p{key}"][:]
    return set()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step(), min_size=1, max_size=14), st.sampled_from([0, 1, 64]), st.booleans())
def test_incremental_diffs_leave_the_maps_a_full_rebuild_would(steps, idle, hinted):
    """``idle``: how many subjects without endpoints the compiler keeps; with 0 the maps must
    equal the rebuild's exactly, idle entries included.  ``hinted``: the compiler is told which
    pods changed (as the agent does) instead of diffing them all."""
    world, local = World([], {}, []), {}
    compiler, programs, current = Compiler(IdentityAllocator(), idle_subjects=idle), FakePrograms(), sync.Desired()
    cookies: dict[str, int] = {}
    slots: dict[str, int] = {}
    for number, change in enumerate(steps):
        pods_changed = apply_step(world, local, change)
        for p in world.policies:
            cookies.setdefault(p.key, len(cookies) + 1)
        for p in world.pods:  # a pod keeps its endpoint id and veth, as on a node
            slots.setdefault(p.key, len(slots) + 1)
        attachments = {p.key: Attachment(slots[p.key], 100 + slots[p.key]) for p in world.pods if local.get(p.key)}
        by_key = {p.key: p for p in world.pods}
        hint = {k: by_key.get(k) for k in pods_changed} if hinted else None
        desired = compiler.compile(World([] if hinted else list(world.pods), dict(world.namespaces),
                                         list(world.policies)), attachments, cookies, changed_pods=hint)
        assert number == 0 or desired.policy_changes is not None  # the diff path, not a full compare
        sync.apply(programs, current, desired)
        written = sync.read_current(programs)
        rebuild = Compiler(IdentityAllocator())
        fresh = rebuild.compile(World(list(world.pods), dict(world.namespaces), list(world.policies)),
                                attachments, cookies)
        fresh.ep_ids = {e.ep_id: (i, e.flags, e.subject) for i, e in fresh.endpoints.items()}
        assert canonical(written, compiler) == canonical(fresh, rebuild), (number, change)
        if idle == 0:
            assert len(written.policy) == len(fresh.policy), (number, change)
