"""Make the maps hold a Desired state, without a window that widens or narrows policy.

Order of writes (each write is atomic for the datapath):
  1. add new allow entries;
  2. add/update ipcache prefixes and endpoint entries (identities, isolation flags);
  3. remove endpoints, prefixes, then the allow entries no longer wanted.
Mid-way, packets see the old or new identity of an address and the union of
old and new allow entries, so a flow passes only if the old or the new policy
allows it, and a flow both allow is never cut.  Identities are never reused
while stale entries may still name them (see compiler/identities.py).
"""
from __future__ import annotations

import ctypes as ct
import dataclasses

from ..compiler import Desired, EndpointEntry, IpcacheEntry
from . import maps as m


@dataclasses.dataclass
class SyncStats:
    added: int = 0
    updated: int = 0
    removed: int = 0


def read_current(programs) -> Desired:
    """What the pinned maps hold right now (after an agent restart, the truth)."""
    cur = Desired()
    for key, info in programs.endpoints.items():
        cur.endpoints[key.value] = EndpointEntry(info.ep_id, info.flags, info.subject)
    for key, value in programs.ipcache.items():
        cur.ipcache[m.ipcache_net(key)] = IpcacheEntry(value.identity, value.ep_id)
    for key, value in programs.policy.items():
        cur.policy[m.policy_key_of(key)] = value.cookie
    for key, ref in programs.ep_ids.items():
        cur.ep_ids[key.value] = (ref.ifindex, ref.flags, ref.subject)
    cur.services = frozenset(m.frontend_of(key) for key, _ in programs.services.items())
    return cur


def apply(programs, current: Desired, desired: Desired) -> SyncStats:
    """Write the difference; ``current`` is updated entry by entry, so after a
    failure it still describes the maps exactly.  With ``desired.policy_changes``
    and ``desired.ipcache_changes`` only those keys are compared (the compiler
    knows nothing else moved): a pod add is one ipcache write, not a scan."""
    stats = SyncStats()
    candidates = desired.policy if desired.policy_changes is None else desired.policy_changes
    for key in candidates:
        cookie = desired.policy.get(key)
        if cookie is not None and current.policy.get(key) != cookie:
            programs.policy.update(m.policy_key(key), m.PolicyValue(cookie=cookie))
            stats.added += key not in current.policy
            stats.updated += key in current.policy
            current.policy[key] = cookie
    ip_candidates = desired.ipcache if desired.ipcache_changes is None else desired.ipcache_changes
    for net in ip_candidates:
        entry = desired.ipcache.get(net)
        if entry is not None and current.ipcache.get(net) != entry:
            programs.ipcache.update(m.ipcache_key(net), m.ipcache_value(entry))
            current.ipcache[net] = entry
            stats.updated += 1
    known_ids = {e.ep_id for e in current.endpoints.values()}
    # pw_ep_ids before pw_endpoints: once from_pod defers a pod's packet, the netfilter
    # program must find the pod by id.
    ep_ids = {ep.ep_id: (ifindex, ep.flags, ep.subject) for ifindex, ep in desired.endpoints.items()}
    for ep_id, ref in ep_ids.items():
        if current.ep_ids.get(ep_id) != ref:
            programs.ep_ids.update(ct.c_uint32(ep_id), m.EpRef(ifindex=ref[0], flags=ref[1], subject=ref[2]))
            current.ep_ids[ep_id] = ref
            stats.updated += 1
    for ifindex, ep in desired.endpoints.items():
        if current.endpoints.get(ifindex) != ep:
            if ep.ep_id not in known_ids:
                reset_endpoint_stats(programs, ep.ep_id)
            programs.endpoints.update(ct.c_uint32(ifindex), m.endpoint_info(ep))
            current.endpoints[ifindex] = ep
            stats.updated += 1
    for ifindex in [i for i in current.endpoints if i not in desired.endpoints]:
        programs.endpoints.delete(ct.c_uint32(ifindex))
        del current.endpoints[ifindex]
        stats.removed += 1
    ip_stale = current.ipcache if desired.ipcache_changes is None else desired.ipcache_changes
    for net in [n for n in ip_stale if n not in desired.ipcache and n in current.ipcache]:
        programs.ipcache.delete(m.ipcache_key(net))
        del current.ipcache[net]
        stats.removed += 1
    for ep_id in [i for i in current.ep_ids if i not in ep_ids]:
        programs.ep_ids.delete(ct.c_uint32(ep_id))
        del current.ep_ids[ep_id]
        stats.removed += 1
    _sync_services(programs, current, desired, stats)
    stale = current.policy if desired.policy_changes is None else desired.policy_changes
    for key in [k for k in stale if k not in desired.policy and k in current.policy]:
        programs.policy.delete(m.policy_key(key))
        del current.policy[key]
        stats.removed += 1
    return stats


def _sync_services(programs, current: Desired, desired: Desired, stats: SyncStats) -> None:
    """Either order is safe: a frontend deferred or not is judged by the same policy."""
    if desired.services == current.services:
        return
    value = m.ServiceValue(flags=0)
    for frontend in desired.services - current.services:
        programs.services.update(m.service_key(frontend), value)
        current.services = current.services | {frontend}
        stats.added += 1
    for frontend in current.services - desired.services:
        programs.services.delete(m.service_key(frontend))
        current.services = current.services - {frontend}
        stats.removed += 1


def bump_generation(programs) -> int:
    """Invalidate the verdicts cached in pw_ct: called after every change, once all of it is
    written, so that established flows are judged again by the policy now in force."""
    key = ct.c_uint32(0)
    current = programs.config.lookup(key)
    generation = (current.generation if current is not None else 0) + 1
    programs.config.update(key, m.Config(generation=generation))
    return generation


def reset_endpoint_stats(programs, ep_id: int) -> None:
    for direction in (0, 1):
        programs.ep_stats.zero(ct.c_uint32(ep_id * 2 + direction))


def reset_policy_stats(programs, cookie: int) -> None:
    programs.policy_stats.zero(ct.c_uint32(cookie))
