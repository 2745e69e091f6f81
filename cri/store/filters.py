"""The List RPCs' filters, with containerd's semantics (internal/cri/server
sandbox_list.go / container_list.go):

* ``id`` may be a unique prefix; it is resolved to the full id first, and an
  unknown or ambiguous prefix matches nothing (an empty list, not an error).
* ``state`` is compared only when the filter sets it (the proto wraps it in a
  message for exactly that reason).
* ``label_selector``: every key must be present with an equal value.
* ``pod_sandbox_id`` (containers) may also be a prefix.
"""
from __future__ import annotations

from typing import Iterable

from .records import CTR_STATE_TO_PROTO, POD_STATE_TO_PROTO, ContainerRecord, PodRecord
from .store import RecordStore

_NOTHING = "\0no-match"


def labels_match(selector, labels) -> bool:
    return all(k in labels and labels[k] == v for k, v in selector.items())


def resolve_id(store: RecordStore, id_or_prefix: str) -> str:
    """The full id for a filter, or a sentinel that matches nothing."""
    if not id_or_prefix:
        return ""
    rec = store.find(id_or_prefix)
    return rec.id if rec is not None else _NOTHING


def pods(records: Iterable[PodRecord], store: RecordStore, f) -> list[PodRecord]:
    """``f``: a PodSandboxFilter or PodSandboxStatsFilter (no state), or None."""
    if f is None:
        return list(records)
    want_id = resolve_id(store, f.id)
    want_state = POD_STATE_REV.get(f.state.state) if _has(f, "state") else None
    return [r for r in records
            if (not want_id or r.id == want_id)
            and (want_state is None or r.state == want_state)
            and labels_match(f.label_selector, r.config.labels)]


def containers(records: Iterable[ContainerRecord], ctrs: RecordStore, pods_store: RecordStore,
               f) -> list[ContainerRecord]:
    """``f``: a ContainerFilter or ContainerStatsFilter (no state), or None."""
    if f is None:
        return list(records)
    want_id = resolve_id(ctrs, f.id)
    want_pod = resolve_id(pods_store, f.pod_sandbox_id)
    want_state = CTR_STATE_REV.get(f.state.state) if _has(f, "state") else None
    return [r for r in records
            if (not want_id or r.id == want_id)
            and (not want_pod or r.pod_id == want_pod)
            and (want_state is None or r.state == want_state)
            and labels_match(f.label_selector, r.config.labels)]


def _has(msg, field: str) -> bool:
    try:
        return msg.HasField(field)
    except ValueError:      # the stats filters have no state field
        return False


POD_STATE_REV = {v: k for k, v in POD_STATE_TO_PROTO.items()}
CTR_STATE_REV = {v: k for k, v in CTR_STATE_TO_PROTO.items()}
