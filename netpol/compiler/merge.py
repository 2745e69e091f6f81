"""The policy map's desired content, kept by difference.

A contribution is the key list one policy yields for one pod and direction; an
entry exists while some contribution names it and carries the lowest cookie
among them.  Replacing one contribution touches only its keys and records
them, so after a small change the datapath diffs and writes a handful of
entries instead of the whole map.
"""
from __future__ import annotations

import builtins

from typing import Callable, Hashable, Optional, Sequence

from .entries import PolicyKey


class EntrySet:
    def __init__(self, cookie_of: Optional[Callable[[Hashable], int]] = None) -> None:
        """``cookie_of``: a source's cookie, if the caller can tell it (then only the keys are
        held per contribution, and ``set`` must be given that same cookie)."""
        self.entries: dict[PolicyKey, int] = {}
        self._cookie_of = cookie_of
        # key -> its holders: one holder as its source alone, several as a set of sources; a
        # holder's cookie is its contribution's (nearly every entry has one holder, and a set or
        # dict each would be a large part of the compiled state)
        self._by_key: dict[PolicyKey, Hashable | builtins.set[Hashable]] = {}
        # source -> its keys and cookie: (keys, cookie), or with cookie_of the keys alone, and
        # one PolicyKey as itself (most contributions are one key)
        self._contrib: dict[Hashable, object] = {}
        self._changed: builtins.set[PolicyKey] = builtins.set()

    def set(self, source: Hashable, keys: Sequence[PolicyKey], cookie: int) -> None:
        old = self._contrib.get(source)
        if old is not None and self._keys(old) is keys and self._cookie(source, old) == cookie:
            return  # the very same (memoised) keys: nothing changed
        if old is not None:
            self._contrib.pop(source)
            self._drop(source, self._keys(old))
        if self._cookie_of is None:
            self._contrib[source] = (keys, cookie)
        else:
            self._contrib[source] = keys[0] if len(keys) == 1 and type(keys[0]) is PolicyKey else keys
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
            self._drop(source, self._keys(old))

    def retain(self, sources: builtins.set) -> None:
        for source in [s for s in self._contrib if s not in sources]:
            self._drop(source, self._keys(self._contrib.pop(source)))

    def _keys(self, held) -> Sequence[PolicyKey]:
        if self._cookie_of is None:
            return held[0]
        return (held,) if type(held) is PolicyKey else held

    def _cookie(self, source: Hashable, held) -> int:
        return held[1] if self._cookie_of is None else self._cookie_of(source)

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
            cookie = min(self._cookie(h, self._contrib[h]) for h in holders)
        else:
            cookie = self._cookie(holders, self._contrib[holders])
        if self.entries.get(key) != cookie:
            if cookie is None:
                del self.entries[key]
            else:
                self.entries[key] = cookie
            self._changed.add(key)


_NONE = object()
