"""Allocation logic over a :class:`~cni.ipam.store.Store`; no filesystem here.

Every function expects the caller to hold the store's lock, so one call is
atomic with respect to other plugins (and to host-local on the same store).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Optional, Sequence

from ..errors import CniError, Code, invalid_config
from .config import IP, Range, RangeSet
from .store import Attachment, Store


@dataclasses.dataclass(frozen=True)
class Allocation:
    """One address of an attachment: which range set, which range, which IP."""

    range_id: int
    range: Range
    ip: IP

    def to_result(self) -> dict:
        """The result's ``ips[]`` entry (IPAM results carry no ``interface``)."""
        return {"address": f"{self.ip}/{self.range.subnet.prefixlen}",
                "gateway": str(self.range.gateway)}


def candidates(range_set: RangeSet, last: Optional[IP]) -> Iterator[tuple[Range, IP]]:
    """Every allocatable address of ``range_set`` once, gateways skipped.

    Round robin like host-local: start right after ``last`` (the set's cursor)
    and wrap around, so a crash-looping pod does not get its old address back
    (with stale routes or conntrack entries elsewhere) until the set wraps.
    """
    ranges = range_set.ranges
    at = next((i for i, r in enumerate(ranges) if last is not None and last in r), None)
    segments: list[tuple[Range, int, int]]
    if last is None or at is None:
        segments = [(r, int(r.start), int(r.end)) for r in ranges]
    else:
        here = ranges[at]
        segments = [(here, int(last) + 1, int(here.end))] if int(last) < int(here.end) else []
        segments += [(r, int(r.start), int(r.end)) for r in ranges[at + 1:] + ranges[:at]]
        segments.append((here, int(here.start), int(last)))
    for r, lo, hi in segments:
        for n in range(lo, hi + 1):  # ints: no overflow past the last IPv6 address
            ip = type(r.start)(n)
            if ip != r.gateway:
                yield r, ip


def allocate(store: Store, range_sets: Sequence[RangeSet], owner: Attachment,
             requested: Iterable[IP] = ()) -> list[Allocation]:
    """One address from every range set for ``owner``, all or nothing.

    If a later set fails, the addresses reserved by this call in earlier sets
    are released again before the error propagates.
    """
    wanted = assign_requested(range_sets, requested)
    held = store.leases_of(owner)
    out: list[Allocation] = []
    fresh: list[IP] = []
    try:
        for idx, range_set in enumerate(range_sets):
            alloc, is_new = _allocate_one(store, idx, range_set, owner, held, wanted.get(idx))
            out.append(alloc)
            if is_new:
                fresh.append(alloc.ip)
    except BaseException:
        for ip in fresh:
            store.release(ip, owner)
        raise
    return out


def _allocate_one(store: Store, idx: int, range_set: RangeSet, owner: Attachment,
                  held: list[IP], want: Optional[IP]) -> tuple[Allocation, bool]:
    mine = next((ip for ip in held if ip in range_set), None)
    if mine is not None:
        # Idempotent ADD: a runtime that timed out waiting for our answer retries
        # ADD with the same (containerID, ifname).  Handing back the lease it
        # already holds beats host-local's "duplicate allocation" error, which
        # leaves the pod stuck until a DEL.
        if want is not None and want != mine:
            raise invalid_config(f"{owner} already holds {mine} in range set {range_set}, "
                                 f"not the requested {want}")
        return Allocation(idx, range_set.range_for(mine), mine), False
    if want is not None:
        return _reserve_requested(store, idx, range_set, owner, want), True
    for r, ip in candidates(range_set, store.last_reserved(idx)):
        if not store.is_reserved(ip) and store.reserve(owner, ip, idx):
            return Allocation(idx, r, ip), True
    # Code 11: addresses free up as pods go away, so the runtime should retry.
    raise CniError(Code.TRY_AGAIN_LATER, f"no IP addresses available in range set {range_set}")


def _reserve_requested(store: Store, idx: int, range_set: RangeSet, owner: Attachment,
                       ip: IP) -> Allocation:
    if not store.reserve(owner, ip, idx):
        # Code 11: typically a StatefulSet pod whose predecessor's DEL is still due.
        raise CniError(Code.TRY_AGAIN_LATER,
                       f"requested IP address {ip} is not available in range set {range_set}",
                       "it is leased to another attachment")
    return Allocation(idx, range_set.range_for(ip), ip)


def assign_requested(range_sets: Sequence[RangeSet], requested: Iterable[IP]) -> dict[int, IP]:
    """Which range set each requested address takes; at most one per set."""
    out: dict[int, IP] = {}
    for ip in requested:
        idx = next((i for i, s in enumerate(range_sets) if ip in s), None)
        if idx is None:
            raise invalid_config(f"requested IP address {ip} is not in any range set",
                                 "; ".join(str(s) for s in range_sets))
        if ip == range_sets[idx].range_for(ip).gateway:
            raise invalid_config(f"requested IP address {ip} is the gateway of range set {range_sets[idx]}")
        if idx in out:
            raise invalid_config(f"requested IP addresses {out[idx]} and {ip} are in the same "
                                 f"range set {range_sets[idx]}", "one address per range set")
        out[idx] = ip
    return out


def release(store: Store, owner: Attachment) -> list[IP]:
    """Drop every lease of ``owner``; the addresses released (maybe none)."""
    out = [ip for ip in store.leases_of(owner) if store.release(ip, owner)]
    if not out and owner.ifname:
        # Like host-local: a lease by container ID only (pre-0.7 CNI) goes with
        # any interface of that container.
        legacy = Attachment(owner.container_id, "")
        out = [ip for ip in store.leases_of(legacy) if store.release(ip, legacy)]
    return out


def collect_garbage(store: Store, valid: Iterable[Attachment]) -> tuple[list[IP], list[str]]:
    """Release every lease whose owner is not in ``valid``; (released, errors).

    Unparseable leases belong to nobody and go too.  Errors do not stop the
    sweep: the spec asks GC to continue past them.
    """
    valid = set(valid)
    valid_ids = {a.container_id for a in valid}
    released, errors = [], []
    for ip, owner in store.all_leases().items():
        if owner in valid or (owner is not None and not owner.ifname and owner.container_id in valid_ids):
            continue
        try:
            if store.release(ip, owner):
                released.append(ip)
        except Exception as exc:  # noqa: BLE001 - reported, and the sweep goes on
            errors.append(f"{ip}: {exc}")
    return released, errors


def has_free(store: Store, idx: int, range_set: RangeSet) -> bool:
    """Whether the next allocation from ``range_set`` would succeed."""
    return any(not store.is_reserved(ip) for _, ip in candidates(range_set, store.last_reserved(idx)))


def verify(store: Store, range_sets: Sequence[RangeSet], owner: Attachment,
           ips: Optional[Iterable[IP]]) -> None:
    """CHECK: ``owner`` holds one lease per range set, and every address of
    ``ips`` (the prevResult's) that lies in our ranges is leased to it."""
    held = set(store.leases_of(owner))
    for range_set in range_sets:
        if not any(ip in range_set for ip in held):
            raise CniError(Code.INTERNAL, f"{owner} holds no address in range set {range_set}")
    for ip in ips or ():
        if any(ip in s for s in range_sets) and ip not in held:
            raise CniError(Code.INTERNAL, f"{ip} of prevResult is not leased to {owner}")
