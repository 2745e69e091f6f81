"""The policy map's desired content, kept by difference.

A contribution is the key list one policy yields for one pod and direction; an
entry exists while some contribution names it and carries the lowest cookie
among them.  Replacing one contribution touches only its keys and records
them, so after a small change the datapath diffs and writes a handful of
entries instead of the whole map.
"""
from __future__ import annotations

import builtins

from typing import Hashable, Sequence

from .entries import PolicyKey


class EntrySet:
    def __init__(self) -> None:
        self.entries: dict[PolicyKey, int] = {}
        # key -> its holders: one holder as its source alone, several as a set of sources; a
        # holder's cookie is its contribution's (nearly every entry has one holder, and a set or
        # dict each would be a large part of the compiled state)
        self._by_key: dict[PolicyKey, Hashable | builtins.set[Hashable]] = {}
        self._contrib: dict[Hashable, tuple[Sequence[PolicyKey], int]] = {}
        self._changed: builtins.set[PolicyKey] = builtins.set()

    def set(self, source: Hashable, keys: Sequence[PolicyKey], cookie: int) -> None:
        old = self._contrib.get(source)
        if old is not None and old[0] is keys and old[1] == cookie:
            return  # the very same (memoised) keys: nothing changed
        if old is not None:
            self._contrib.pop(source)
            self._drop(source, old[0])
        self._contrib[source] = (keys, cookie)
        by_key = self._by_key
        for key in keys:
            holders = by_key.get(key, _NONE)
            if isinstance(holders, builtins.set):
                holders.add(source)
            elif holders is _NONE or holders == source:
                by_key[key] = source
            else:
                by_key[key] = {holders, source}
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

    def _drop(self, source: Hashable, keys: Sequence[PolicyKey]) -> None:
        """``source``'s contribution is already out of _contrib."""
        by_key = self._by_key
        for key in keys:
            holders = by_key.get(key, _NONE)
            if holders is _NONE:
                continue
            if isinstance(holders, builtins.set):
                holders.discard(source)
                if len(holders) == 1:
                    by_key[key] = next(iter(holders))
            elif holders == source:
                del by_key[key]
            self._settle(key)

    def _settle(self, key: PolicyKey) -> None:
        holders = self._by_key.get(key, _NONE)
        if holders is _NONE:
            cookie = None
        elif isinstance(holders, builtins.set):
            cookie = min(self._contrib[h][1] for h in holders)
        else:
            cookie = self._contrib[holders][1]
        if self.entries.get(key) != cookie:
            if cookie is None:
                del self.entries[key]
            else:
                self.entries[key] = cookie
            self._changed.add(key)


_NONE = object()
