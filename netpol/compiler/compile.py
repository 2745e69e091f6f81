"""Compiler: pods, namespaces and policies -> the entries of every datapath map, by difference.

Allow entries are keyed (subject, direction, peer identity, L4 prefix): the
subject stands for the local endpoints isolated by the same policies (with the
same named ports), the peer identity for a pod class or an ipBlock prefix
(identities.py).  A packet costs
two trie lookups whatever the number of rules: (peer identity, proto, port) and
(ANY, proto, port).

``Compiler.compile`` diffs its input against the previous call and touches only
what a change reaches:
- a pod add or remove: its ipcache entries; a new (or vanished) class is
  matched against the selector peers (and the ipBlock peers containing its
  region), and only the rules naming a peer whose match set moved are redone;
- a local pod: its endpoint entry, and its subject's entries only if no local
  pod (or, recently, gone pod: up to IDLE_SUBJECTS are kept) had its policies;
- a policy add or remove: the entries of the subjects it selects (moving them to
  subjects with or without it), plus rules of other policies whose ipBlock
  contains one of its new prefixes; a changed rule: that rule's entries;
- a namespace label change: the namespaceSelector peers, for that namespace's classes.
``compile_world`` (a fresh Compiler) is the full rebuild it must always equal.
"""
from __future__ import annotations

import bisect
from typing import Iterable, Iterator, Mapping, Optional, cast

from ..model import PROTO_NUMBERS, IPNetwork, NetworkPolicy, Peer, Pod, PolicyPort, Rule, World, namespace_labels, \
    subnet_of
from .entries import ANY_IDENTITY, DIR_EGRESS, DIRECTIONS, ISOLATE_BIT, Attachment, Desired, EndpointEntry, \
    IpcacheEntry, PolicyKey
from .identities import ClassKey, IdentityAllocator, PrefixSet, SubjectKey, last_address, net_key, \
    pod_key_of, prefix_value
from .ipcache import host_net, host_prefix, policy_prefixes
from .merge import EntrySet
from .ports import range_prefixes

L4Prefix = tuple[int, int, int]  # (proto, port, l4_bits)
ALL_L4: list[L4Prefix] = [(0, 0, 0)]
# A rule is named by one int (a tuple of three was ~120 bytes a rule): its policy's serial number in
# this compiler, its direction and its index.  Its contribution to a subject's entries (the EntrySet's
# source) is that number with the subject's id below it.
RuleRef = int
INDEX_BITS, SUBJECT_BITS = 32, 32


def rule_ref(serial: int, direction: int, index: int) -> RuleRef:
    return (serial << 1 | direction) << INDEX_BITS | index


def ref_parts(ref: RuleRef) -> tuple[int, int, int]:
    """(policy serial, direction, index)"""
    return ref >> (INDEX_BITS + 1), ref >> INDEX_BITS & 1, ref & ((1 << INDEX_BITS) - 1)


def source_of(ref: RuleRef, subject: int) -> int:
    return ref << SUBJECT_BITS | subject
ALL_PODS = ("", None)           # the peer of an egress rule with a named port and no peers: every pod
DIRECTION_NAMES = {d: name for name, d in DIRECTIONS.items()}
IDLE_SUBJECTS = 64              # subjects kept (entries and all) after their last endpoint went


def compile_world(world: World, attachments: dict[str, Attachment], cookies: dict[str, int],
                  identities: IdentityAllocator) -> Desired:
    """``attachments``: pod key -> (ep_id, ifindex) for pods on this node;
    ``cookies``: policy key -> counter index, carried in the entries it produces."""
    return Compiler(identities).compile(world, attachments, cookies)


class _Class:
    __slots__ = ("key", "id", "labels", "refs", "peers", "remote")

    def __init__(self, key: ClassKey, ident: int):
        self.key, self.id, self.labels = key, ident, dict(key.pod.labels)
        self.remote = IpcacheEntry(ident, 0)  # the ipcache entry of every address of it not on this node
        self.refs = 0                        # pod addresses in the class
        self.peers: set[tuple] = set()       # peers whose match set holds it

    def port_number(self, name: str, protocol: str) -> Optional[int]:
        return next((p.port for p in self.key.pod.ports if p.name == name and p.protocol == protocol), None)


class _Subject:
    __slots__ = ("key", "id", "endpoints")

    def __init__(self, key: SubjectKey, ident: int):
        self.key, self.id = key, ident
        self.endpoints: set[str] = set()  # local pod keys

    @property
    def flags(self) -> int:
        return sum(ISOLATE_BIT[d] for d, keys in enumerate(self.key.policies) if keys)

    def port_number(self, name: str, protocol: str) -> Optional[int]:
        return next((p.port for p in self.key.ports if p.name == name and p.protocol == protocol), None)


class _Peer:
    __slots__ = ("key", "namespace", "peer", "matches", "rules")

    def __init__(self, key: tuple):
        self.key = key                   # (namespace, peer): the rules hold this one tuple
        self.namespace, self.peer = key
        # small sets of ints (see _add): most peers match one identity and serve one or two rules
        self.matches: int | tuple[int, ...] | set[int] = ()   # identities
        self.rules: int | tuple[RuleRef, ...] | set[RuleRef] = ()


class _Policy:
    __slots__ = ("policy", "cookie", "serial", "rules", "prefixes")

    def __init__(self, policy: NetworkPolicy, cookie: int, serial: int):
        self.policy, self.cookie, self.serial = policy, cookie, serial  # serial: never reused by a compiler
        # by direction, by index: the rule's peer keys (one: the key itself, see _peer_keys)
        self.rules: tuple[list, list] = ([], [])
        self.prefixes = policy_prefixes(policy)

    def items(self) -> Iterator[tuple[RuleRef, tuple]]:
        """(rule_ref, peer keys as held) of every rule."""
        for direction, held in enumerate(self.rules):
            for index, peers in enumerate(held):
                yield rule_ref(self.serial, direction, index), peers


class Compiler:
    def __init__(self, identities: IdentityAllocator, seed: Optional[Desired] = None,
                 idle_subjects: int = IDLE_SUBJECTS):
        self.identities = identities
        self.subject_ids = IdentityAllocator(floor=1)
        # hints from the maps an earlier agent left: keep their numbers so a restart rewrites nothing
        self._ip_hint = {net: e.identity for net, e in seed.ipcache.items()} if seed else {}
        self._subject_hint = {i: e.subject for i, e in seed.endpoints.items()} if seed else {}
        if seed:
            top = max([0, *self._ip_hint.values(), *(k.identity for k in seed.policy)])
            self.identities.reserve_below(top + 1)
            self.subject_ids.reserve_below(max([0, *self._subject_hint.values()]) + 1)
        self._namespaces: dict[str, dict[str, str]] = {}
        self._policies: dict[str, _Policy] = {}
        self._by_serial: dict[int, _Policy] = {}
        self._serials = 0
        self._by_ns: dict[str, set[str]] = {}                  # namespace -> policy keys
        self._pods: dict[str, Pod | tuple[Pod, Attachment]] = {}  # see _pod (a remote pod: itself)
        self._addrs: dict[IPNetwork, tuple[str, ClassKey, int]] = {}  # pod address -> (pod, class, ep_id)
        self._sorted_addrs: dict[int, list[int]] = {4: [], 6: []}
        self._classes: dict[ClassKey, _Class] = {}
        self._class_by_id: dict[int, _Class] = {}
        self._classes_by_ns: dict[str, set[ClassKey]] = {}
        self._classes_by_region: dict[IPNetwork, set[ClassKey]] = {}
        self._subjects: dict[SubjectKey, _Subject] = {}
        self._local: dict[str, tuple[SubjectKey, Attachment]] = {}   # local pod -> its subject, attachment
        self._owned: dict[str, IPNetwork | tuple[IPNetwork, ...]] = {}  # pod -> its addresses (one: itself)
        self._subjects_by_policy: dict[str, set[SubjectKey]] = {}
        self._idle: dict[SubjectKey, None] = {}  # subjects without endpoints, oldest first
        self._idle_limit = idle_subjects
        self._prefix_refs: dict[IPNetwork, int] = {}
        self._prefixes = PrefixSet()
        self._peers: dict[tuple, _Peer] = {}
        self._selector_peers: dict[tuple, _Peer] = {}  # the peers a new class is matched against
        # ipBlock cidr -> its peer key, or a set of them if several (one each is the common case)
        self._blocks: dict[IPNetwork, tuple | set[tuple]] = {}
        self._block_lens: dict[int, dict[int, int]] = {4: {}, 6: {}}  # version -> cidr length -> blocks
        serial_shift = SUBJECT_BITS + INDEX_BITS + 1
        self._entries = EntrySet(lambda source: self._by_serial[cast(int, source) >> serial_shift].cookie)
        self._ipcache: dict[IPNetwork, IpcacheEntry] = {}
        self._ipcache_changes: set[IPNetwork] = set()
        self._dirty: set[RuleRef] = set()
        self._first = True

    # -- the one entry point ----------------------------------------------------------------------
    def compile(self, world: World, attachments: Mapping[str, Attachment], cookies: dict[str, int],
                changed_pods: Optional[Mapping[str, Optional[Pod]]] = None) -> Desired:
        """``changed_pods``: when the caller knows which pods changed, those pods (None: gone) and
        ``world.pods`` is ignored, so a pod change costs nothing per other pod; else all are diffed."""
        self._dirty = set()
        changed_ns = {n for n in world.namespaces.keys() | self._namespaces.keys()
                      if world.namespaces.get(n) != self._namespaces.get(n)}
        self._namespaces = {n: dict(v) for n, v in world.namespaces.items()} if changed_ns else self._namespaces
        current = {p.key: p for p in world.policies}
        stale = [k for k, rec in self._policies.items()
                 if current.get(k) is not rec.policy or cookies.get(k, 0) != rec.cookie]
        added_prefixes: list[IPNetwork] = []
        removed_prefixes: list[IPNetwork] = []
        reselect = set()  # namespaces whose local pods may be isolated by other policies now
        for key in stale:
            old = self._policies[key].policy
            new = current.get(key)
            if new is None or (new.pod_selector, new.policy_types) != (old.pod_selector, old.policy_types):
                reselect.add(old.namespace)
            removed_prefixes += self._remove_policy(key)
        fresh = [p for k, p in current.items() if k not in self._policies]
        reselect.update(p.namespace for p in fresh if p.key not in stale)
        for policy in fresh:
            self._serials += 1
            rec = self._policies[policy.key] = _Policy(policy, cookies.get(policy.key, 0), self._serials)
            self._by_serial[rec.serial] = rec
            self._by_ns.setdefault(policy.namespace, set()).add(policy.key)
            for net in rec.prefixes:
                self._prefix_refs[net] = self._prefix_refs.get(net, 0) + 1
                if self._prefix_refs[net] == 1:
                    added_prefixes.append(net)
        moved = self._settle_prefixes(added_prefixes, removed_prefixes)
        touched = self._update_pods(world.pods, attachments, moved, changed_pods)
        for ns in changed_ns:
            self._renamespace(ns)
        for policy in fresh:
            self._add_policy(self._policies[policy.key])
        for ref in self._dirty:  # rules whose peers' match sets moved
            serial, direction, index = ref_parts(ref)
            dirty = self._by_serial.get(serial)
            if dirty is None:
                continue
            peers = dirty.rules[direction][index]
            rule = dirty.policy.rules(DIRECTION_NAMES[direction])[index]
            for skey in self._subjects_by_policy.get(dirty.policy.key, ()):
                self._contribute(dirty, ref, rule, peers, self._subjects[skey])
        if reselect:
            touched |= {k for k in self._local if cast(tuple, self._pod(k))[0].namespace in reselect}
        for key in touched:
            self._place_subject(key)
        for skey in [k for k in self._idle if any(p not in self._policies for ps in k.policies for p in ps)]:
            self._drop_subject(self._subjects[skey])  # isolated by a policy that is gone: never again
        while len(self._idle) > self._idle_limit:
            self._drop_subject(self._subjects[next(iter(self._idle))])
        return self._desired()

    # -- policies -------------------------------------------------------------------------------
    def _remove_policy(self, key: str) -> list[IPNetwork]:
        rec = self._policies.pop(key)
        self._by_ns[rec.policy.namespace].discard(key)
        for skey in self._subjects_by_policy.get(key, ()):
            subject = self._subjects[skey].id
            for ref, _ in rec.items():
                self._entries.remove(source_of(ref, subject))
        for ref, held in rec.items():
            for pk in _peer_keys(held):
                self._unuse_peer(pk, ref)
        gone = []
        for net in rec.prefixes:
            self._prefix_refs[net] -= 1
            if not self._prefix_refs[net]:
                del self._prefix_refs[net]
                gone.append(net)
        del self._by_serial[rec.serial]  # after its entries went (their cookies are read through it)
        return gone

    def _add_policy(self, rec: _Policy) -> None:
        policy = rec.policy
        for name, direction in DIRECTIONS.items():
            for index, rule in enumerate(policy.rules(name)):
                ref = rule_ref(rec.serial, direction, index)
                peers = tuple(dict.fromkeys(  # a peer named twice in one rule is one peer
                    self._use_peer(policy.namespace, p, ref) for p in rule.peers))
                if not rule.peers and direction == DIR_EGRESS and any(
                        p.port is not None and isinstance(p.port, str) for p in rule.ports):
                    peers = (self._use_peer("", None, ref),)
                rec.rules[direction].append(peers[0] if len(peers) == 1 else peers)  # one peer key: itself
        for skey in self._subjects_by_policy.get(policy.key, ()):  # a changed policy: same subjects
            self._select(rec, self._subjects[skey])

    def _select(self, rec: _Policy, subj: _Subject) -> None:
        policy = rec.policy
        for ref, peers in rec.items():
            _, direction, index = ref_parts(ref)
            self._contribute(rec, ref, policy.rules(DIRECTION_NAMES[direction])[index], peers, subj)

    def _contribute(self, rec: _Policy, ref: RuleRef, rule: Rule, peers: tuple[tuple, ...], subj: _Subject) -> None:
        direction = ref >> INDEX_BITS & 1
        if rec.policy.key not in subj.key.policies[direction]:
            return  # the policy selects the subject, but not for this direction
        self._entries.set(source_of(ref, subj.id), self._rule_keys(subj, direction, rule, peers), rec.cookie)

    def _rule_keys(self, subj: _Subject, direction: int, rule: Rule, held: tuple) -> tuple[PolicyKey, ...]:
        peers = _peer_keys(held)
        out: list[PolicyKey] = []
        matched: Optional[set[int]] = None
        for port in rule.ports or (None,):
            if matched is None and peers:
                matched = set().union(*(_members(self._peers[pk].matches) for pk in peers))
            if port is not None and isinstance(port.port, str) and direction == DIR_EGRESS:
                # Egress named ports resolve on the destination: a pod class knows its ports.
                for ident in matched or ():
                    cls = self._class_by_id.get(ident)
                    number = cls.port_number(port.port, port.protocol) if cls else None
                    if number is not None:
                        out.extend(_keys(subj.id, direction, [ident], _l4(port, number)))
                continue
            number = subj.port_number(port.port, port.protocol) if port and isinstance(port.port, str) else None
            l4 = _l4(port, number)
            if l4:
                out.extend(_keys(subj.id, direction, [ANY_IDENTITY] if not rule.peers else sorted(matched or ()), l4))
        return tuple(out)  # held as long as the rule applies: no list over-allocation

    # -- peers ----------------------------------------------------------------------------------
    def _use_peer(self, namespace: str, peer: Optional[Peer], ref: RuleRef) -> tuple:
        pk = ("", peer) if peer is None or peer.ip_block is not None else (namespace, peer)
        state = self._peers.get(pk)
        if state is None:
            state = self._peers[pk] = _Peer(pk)
            if peer is not None and peer.ip_block is not None:
                block = peer.ip_block
                bkey = net_key(block.cidr)
                holders = self._blocks.get(bkey)
                if holders is None:
                    lens = self._block_lens[block.cidr.version]
                    lens[block.cidr.prefixlen] = lens.get(block.cidr.prefixlen, 0) + 1
                    self._blocks[bkey] = pk
                elif isinstance(holders, set):
                    holders.add(pk)
                else:
                    self._blocks[bkey] = {holders, pk}
                for net in self._prefixes.inside(block.cidr):
                    if _in_block(block, net):
                        state.matches = _add(state.matches, self.identities.get(net))
                        for ckey in self._classes_by_region.get(net, ()):
                            self._join(pk, state, self._classes[ckey])
            else:
                self._selector_peers[pk] = state
                for cls in self._classes.values():
                    if self._peer_matches(state, cls):
                        self._join(pk, state, cls)
        state.rules = _add(state.rules, ref)
        return state.key

    def _unuse_peer(self, pk: tuple, ref: RuleRef) -> None:
        state = self._peers[pk]
        state.rules = _discard(state.rules, ref)
        if state.rules:
            return
        del self._peers[pk]
        self._selector_peers.pop(pk, None)
        for ident in _members(state.matches):
            cls = self._class_by_id.get(ident)
            if cls is not None:
                cls.peers.discard(pk)
        if pk[1] is not None and pk[1].ip_block is not None:
            cidr = pk[1].ip_block.cidr
            bkey = net_key(cidr)
            holders = self._blocks[bkey]
            if isinstance(holders, set):
                holders.discard(pk)
                if len(holders) == 1:
                    self._blocks[bkey] = next(iter(holders))
            else:
                del self._blocks[bkey]
                lens = self._block_lens[cidr.version]
                lens[cidr.prefixlen] -= 1
                if not lens[cidr.prefixlen]:
                    del lens[cidr.prefixlen]

    def _peer_matches(self, state: _Peer, cls: _Class) -> bool:
        peer = state.peer
        if peer is None:
            return True  # ALL_PODS
        if peer.ip_block is not None:
            return cls.key.region is not None and _in_block(peer.ip_block, cls.key.region)
        ns = cls.key.pod.namespace
        if peer.namespace_selector is None:
            if ns != state.namespace:
                return False
        elif not peer.namespace_selector.matches(namespace_labels(ns, self._namespaces.get(ns))):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(cls.labels)

    def _join(self, pk: tuple, state: _Peer, cls: _Class) -> None:
        state.matches = _add(state.matches, cls.id)
        cls.peers.add(pk)
        self._dirty.update(_members(state.rules))

    def _leave(self, pk: tuple, state: _Peer, cls: _Class) -> None:
        state.matches = _discard(state.matches, cls.id)
        cls.peers.discard(pk)
        self._dirty.update(_members(state.rules))

    def _blocks_containing(self, net: IPNetwork) -> Iterable[tuple]:
        value, top = prefix_value(net), net.max_prefixlen
        for plen in [p for p in self._block_lens[net.version] if p <= net.prefixlen]:  # lengths in use only
            holders = self._blocks.get(host_net(net.version, value >> (top - plen) << (top - plen), plen), ())
            for pk in (holders,) if type(holders) is tuple and holders else holders:
                if _in_block(pk[1].ip_block, net):
                    yield pk

    # -- prefixes and classes -------------------------------------------------------------------
    def _settle_prefixes(self, added: list[IPNetwork], removed_list: list[IPNetwork]) -> set[str]:
        """Write CIDR identities; returns the pods with an address whose region may have moved."""
        moved: set[str] = set()
        removed = set(removed_list)
        for net in removed:
            if net in self._prefix_refs:
                continue  # removed and added back in one change
            ident = self.identities.get(net)
            for pk in list(self._blocks_containing(net)):
                state = self._peers[pk]
                state.matches = _discard(state.matches, ident)
                self._dirty.update(_members(state.rules))
            self._prefixes.remove(net)
            self.identities.release(net)
            moved |= self._pods_inside(net)
            self._settle_ip(net)
        for net in added:
            if net in removed:
                continue  # removed and added back in one change: it never went
            self._prefixes.add(net)
            ident = self.identities.get(net, self._ip_hint.get(net))
            for pk in self._blocks_containing(net):
                state = self._peers[pk]
                state.matches = _add(state.matches, ident)
                self._dirty.update(_members(state.rules))
            moved |= self._pods_inside(net)
            self._settle_ip(net)
        return moved

    def _pods_inside(self, net: IPNetwork) -> set[str]:
        rows = self._sorted_addrs[net.version]
        if not rows:
            return set()
        lo = bisect.bisect_left(rows, int(net.network_address))
        hi = bisect.bisect_right(rows, last_address(net))
        out = set()
        for value in rows[lo:hi]:
            out.add(self._addrs[host_net(net.version, value)][0])
        return out

    def _update_pods(self, pods: list[Pod], attachments: Mapping[str, Attachment], moved: set[str],
                     changed: Optional[Mapping[str, Optional[Pod]]]) -> set[str]:
        """Classes and ipcache entries; returns the pods touched (their subjects are placed later)."""
        touched = set(moved)
        if changed is None:
            changed = {pod.key: pod for pod in pods}
            changed.update({k: None for k in self._pods if k not in changed})
        for key, pod in changed.items():
            old = self._pod(key)
            if pod is None:
                if old is not None:
                    touched.add(key)
                    del self._pods[key]
                continue
            att = attachments.get(key)
            if old is None or (old[0] is not pod and old[0] != pod) or old[1] != att:
                touched.add(key)
                self._pods[key] = pod if att is None else (pod, att)
        empty: set[ClassKey] = set()
        for key in touched:
            self._place(key, empty)
        for ckey in empty:
            cls = self._classes.get(ckey)
            if cls is not None and not cls.refs:
                self._drop_class(cls)
        return touched

    def _place(self, pod_key: str, empty: set[ClassKey]) -> None:
        """Make a pod's addresses (or their absence) what its current record says."""
        entry = self._pod(pod_key)
        wanted: dict[IPNetwork, tuple[ClassKey, int]] = {}
        if entry is not None:
            pod, att = entry
            subject = pod_key_of(pod)
            for ip in pod.ips:
                net = host_prefix(ip)
                wanted[net] = (ClassKey(subject, self._prefixes.longest(net)), att.ep_id if att else 0)
        owned = self._owned.get(pod_key, ())
        # a pod's one address is held bare (HostPrefix is no tuple: exact type, not isinstance)
        nets = cast(tuple, owned) if type(owned) is tuple else (owned,)
        old: dict = {net: self._addrs[net][1:] for net in nets}
        for net, (ckey, ep_id) in wanted.items():
            if old.get(net) == (ckey, ep_id):
                continue
            cls = self._classes.get(ckey) or self._new_class(ckey, self._ip_hint.get(net))
            ckey = cls.key  # the class's own key object: not one per address
            cls.refs += 1
            if net in self._addrs:
                self._release_addr(net, empty)
            else:
                bisect.insort(self._sorted_addrs[net.version], int(net.network_address))
            self._addrs[net] = (pod_key, ckey, ep_id)
            self._settle_ip(net)
        for net in old:
            if net not in wanted:
                self._release_addr(net, empty)
                del self._addrs[net]
                rows = self._sorted_addrs[net.version]
                del rows[bisect.bisect_left(rows, int(net.network_address))]
                self._settle_ip(net)
        if wanted:
            if wanted.keys() != old.keys():
                self._owned[pod_key] = next(iter(wanted)) if len(wanted) == 1 else tuple(wanted)
        else:
            self._owned.pop(pod_key, None)

    def _pod(self, key: str) -> Optional[tuple[Pod, Optional[Attachment]]]:
        """A known pod and its attachment (None for a pod not on this node)."""
        entry = self._pods.get(key)
        return cast(Optional[tuple[Pod, Optional[Attachment]]],
                    entry if entry is None or type(entry) is tuple else (entry, None))

    def _release_addr(self, net: IPNetwork, empty: set[ClassKey]) -> None:
        ckey = self._addrs[net][1]
        cls = self._classes[ckey]
        cls.refs -= 1
        if not cls.refs:
            empty.add(ckey)

    def _new_class(self, key: ClassKey, hint: Optional[int]) -> _Class:
        cls = self._classes[key] = _Class(key, self.identities.get(key, hint))
        self._class_by_id[cls.id] = cls
        self._classes_by_ns.setdefault(key.pod.namespace, set()).add(key)
        if key.region is not None:
            self._classes_by_region.setdefault(key.region, set()).add(key)
            for pk in self._blocks_containing(key.region):
                self._join(pk, self._peers[pk], cls)
        for pk, state in self._selector_peers.items():
            if self._peer_matches(state, cls):
                self._join(pk, state, cls)
        return cls

    def _drop_class(self, cls: _Class) -> None:
        for pk in list(cls.peers):
            self._leave(pk, self._peers[pk], cls)
        del self._classes[cls.key]
        del self._class_by_id[cls.id]
        self._classes_by_ns[cls.key.pod.namespace].discard(cls.key)
        if cls.key.region is not None:
            self._classes_by_region[cls.key.region].discard(cls.key)
            if not self._classes_by_region[cls.key.region]:
                del self._classes_by_region[cls.key.region]
        self.identities.release(cls.key)

    def _renamespace(self, ns: str) -> None:
        """A namespace's labels changed: only namespaceSelector peers read them."""
        for ckey in self._classes_by_ns.get(ns, ()):
            cls = self._classes[ckey]
            for pk, state in self._selector_peers.items():
                if pk[1] is None or pk[1].namespace_selector is None:
                    continue
                now, before = self._peer_matches(state, cls), pk in cls.peers
                if now and not before:
                    self._join(pk, state, cls)
                elif before and not now:
                    self._leave(pk, state, cls)

    # -- subjects (local endpoints) ---------------------------------------------------------------
    def _subject_key(self, pod: Pod) -> SubjectKey:
        labels, chosen = pod.label_map, ([], [])  # type: tuple[dict[str, str], tuple[list[str], list[str]]]
        for pkey in self._by_ns.get(pod.namespace, ()):
            policy = self._policies[pkey].policy
            if policy.pod_selector.matches(labels):
                for name, direction in DIRECTIONS.items():
                    if name in policy.policy_types:
                        chosen[direction].append(pkey)
        return SubjectKey(pod.namespace, pod_key_of(pod).ports, (frozenset(chosen[0]), frozenset(chosen[1])))

    def _place_subject(self, pod_key: str) -> None:
        entry = self._pod(pod_key)
        want = self._subject_key(entry[0]) if entry is not None and entry[1] is not None else None
        have = self._local.get(pod_key)
        if have is not None and (want is None or have[0] != want):
            subj = self._subjects[have[0]]
            subj.endpoints.discard(pod_key)
            if not subj.endpoints:
                self._idle[subj.key] = None
        if want is None or entry is None or entry[1] is None:
            self._local.pop(pod_key, None)
            return
        found = self._subjects.get(want)
        subj = found if found is not None else self._new_subject(want, self._subject_hint.get(entry[1].ifindex))
        subj.endpoints.add(pod_key)
        self._idle.pop(want, None)
        self._local[pod_key] = (want, entry[1])

    def _new_subject(self, key: SubjectKey, hint: Optional[int]) -> _Subject:
        subj = self._subjects[key] = _Subject(key, self.subject_ids.get(key, hint))
        for pkey in key.policies[0] | key.policies[1]:
            self._subjects_by_policy.setdefault(pkey, set()).add(key)
            self._select(self._policies[pkey], subj)
        return subj

    def _drop_subject(self, subj: _Subject) -> None:
        for pkey in subj.key.policies[0] | subj.key.policies[1]:
            rec = self._policies.get(pkey)
            for ref, _ in rec.items() if rec is not None else ():
                self._entries.remove(source_of(ref, subj.id))
            holders = self._subjects_by_policy[pkey]
            holders.discard(subj.key)
            if not holders:
                del self._subjects_by_policy[pkey]
        del self._subjects[subj.key]
        self._idle.pop(subj.key, None)
        self.subject_ids.release(subj.key)

    # -- output ---------------------------------------------------------------------------------
    def _settle_ip(self, net: IPNetwork) -> None:
        addr = self._addrs.get(net)
        if addr is not None:
            cls = self._classes[addr[1]]
            entry: Optional[IpcacheEntry] = IpcacheEntry(cls.id, addr[2]) if addr[2] else cls.remote
        elif net in self._prefix_refs:
            entry = IpcacheEntry(self.identities.get(net), 0)
        else:
            entry = None
        if self._ipcache.get(net) != entry:
            if entry is None:
                del self._ipcache[net]
            else:
                self._ipcache[net] = entry
            self._ipcache_changes.add(net)

    def _desired(self) -> Desired:
        desired = Desired(ipcache=self._ipcache)
        for subject_key, att in self._local.values():
            subj = self._subjects[subject_key]
            desired.endpoints[att.ifindex] = EndpointEntry(att.ep_id, subj.flags, subj.id)
        desired.policy = self._entries.entries  # the compiler's own dicts: read them, never change them
        changes, ipchanges = self._entries.take_changes(), self._ipcache_changes
        self._ipcache_changes = set()
        desired.policy_changes = None if self._first else changes  # None: compare everything
        desired.ipcache_changes = None if self._first else ipchanges
        self._first = False
        return desired

    def names(self) -> dict[str, dict[int, object]]:
        """What each number stands for: identity -> ClassKey or prefix, subject -> SubjectKey."""
        idents: dict[int, object] = {c.id: c.key for c in self._classes.values()}
        idents.update({self.identities.get(n): n for n in self._prefix_refs})
        return {"identity": idents, "subject": {s.id: s.key for s in self._subjects.values()}}


def _peer_keys(held: tuple) -> tuple[tuple, ...]:
    """A rule's peer keys as _Policy.rules holds them: a tuple of them, or one peer key itself
    (a (namespace, peer) pair, whose first item is a string)."""
    return (held,) if held and type(held[0]) is str else held


SMALL_SET = 8  # up to this many members a set is kept as a tuple (a set is 216 bytes even with one)


def _members(members: int | tuple | set) -> tuple | set:
    """A small set of ints as _add keeps it: one member as itself, a few as a tuple, then a set."""
    return (members,) if isinstance(members, int) else members


def _add(members: int | tuple | set, value: int) -> int | tuple | set:
    """``members`` with ``value`` (the caller stores the result)."""
    if isinstance(members, int):
        return members if members == value else (members, value)
    if isinstance(members, set):
        members.add(value)
        return members
    if value in members:
        return members
    if not members:
        return value
    return members + (value,) if len(members) < SMALL_SET else {*members, value}


def _discard(members: int | tuple | set, value: int) -> int | tuple | set:
    if isinstance(members, int):
        return () if members == value else members
    if isinstance(members, set):
        members.discard(value)
        return members
    if value not in members:
        return members
    rest = tuple(m for m in members if m != value)
    return rest[0] if len(rest) == 1 else rest


def _in_block(block, net: IPNetwork) -> bool:
    return subnet_of(net, block.cidr) and not any(subnet_of(net, e) for e in block.excepts)


def _l4(port: Optional[PolicyPort], named_number: Optional[int]) -> list[L4Prefix]:
    if port is None:
        return ALL_L4
    proto = PROTO_NUMBERS[port.protocol]
    if port.port is None:
        return [(proto, 0, 8)]
    if isinstance(port.port, str):
        if named_number is None:
            return []  # the pod has no such named port: the rule matches nothing here
        lo = hi = named_number
    else:
        lo, hi = port.port, port.end_port if port.end_port is not None else port.port
    return [(proto, value, 8 + bits) for value, bits in range_prefixes(lo, hi)]


def _keys(subject: int, direction: int, identities: Iterable[int], l4: list[L4Prefix]) -> Iterable[PolicyKey]:
    for identity in identities:
        for proto, port, bits in l4:
            yield PolicyKey(subject, direction, identity, proto, port, bits)
