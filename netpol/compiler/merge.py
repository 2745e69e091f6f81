"""The policy map's desired content, kept by difference.

A contribution is the key list one policy yields for one pod and direction; an
entry exists while some contribution names it and carries the lowest cookie
among them.  Replacing one contribution touches only its keys and records
them, so after a small change the datapath diffs and writes a handful of
entries instead of the whole map.
"""
from __future__ import annotations

import builtins

from typing import Hashable

from .entries import PolicyKey


class EntrySet:
    def __init__(self) -> None:
        self.entries: dict[PolicyKey, int] = {}
        self._by_key: dict[PolicyKey, dict[Hashable, int]] = {}
        self._contrib: dict[Hashable, tuple[list[PolicyKey], int]] = {}
        self._changed: set[PolicyKey] = set()

    def set(self, source: Hashable, keys: list[PolicyKey], cookie: int) -> None:
        old = self._contrib.get(source)
        if old is not None and old[0] is keys and old[1] == cookie:
            return  # the very same (memoised) list: nothing changed
        if old is not None:
            self._drop(source, old[0])
        self._contrib[source] = (keys, cookie)
        for key in keys:
            self._by_key.setdefault(key, {})[source] = cookie
            self._settle(key)

    def remove(self, source: Hashable) -> None:
        old = self._contrib.pop(source, None)
        if old is not None:
            self._drop(source, old[0])

    def retain(self, sources: builtins.set) -> None:
        for source in [s for s in self._contrib if s not in sources]:
            self._drop(source, self._contrib.pop(source)[0])

    def take_changes(self) -> builtins.set[PolicyKey]:
        changed, self._changed = self._changed, builtins.set()
        return changed

    def _drop(self, source: Hashable, keys: list[PolicyKey]) -> None:
        for key in keys:
            holders = self._by_key.get(key)
            if holders is not None:
                holders.pop(source, None)
                self._settle(key)

    def _settle(self, key: PolicyKey) -> None:
        holders = self._by_key.get(key)
        cookie = min(holders.values()) if holders else None
        if not holders:
            self._by_key.pop(key, None)
        if self.entries.get(key) != cookie:
            if cookie is None:
                del self.entries[key]
            else:
                self.entries[key] = cookie
            self._changed.add(key)
