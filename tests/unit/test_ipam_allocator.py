"""The pure allocator against the in-memory store."""
from __future__ import annotations

import ipaddress

import pytest

from cni.errors import CniError, Code
from cni.ipam import allocator, config
from cni.ipam.memory import MemoryStore
from cni.ipam.store import Attachment
from cni.skel import CmdArgs

ip = ipaddress.ip_address
A, B, C = Attachment("a", "eth0"), Attachment("b", "eth0"), Attachment("c", "eth0")


def sets(*ranges) -> tuple:
    conf = {"cniVersion": "1.0.0", "name": "n", "ipam": {"ranges": list(ranges)}}
    return config.load(CmdArgs(command="ADD", config=conf)).range_sets


SMALL = sets([{"subnet": "10.1.0.0/29"}])                         # .2 - .6, gateway .1
DUAL = sets([{"subnet": "10.1.0.0/29"}], [{"subnet": "fd00::/125"}])


def addrs(allocs) -> list[str]:
    return [str(a.ip) for a in allocs]


def test_candidates_round_robin_after_the_cursor_and_wrap():
    got = [str(x) for _, x in allocator.candidates(SMALL[0], ip("10.1.0.4"))]
    assert got == ["10.1.0.5", "10.1.0.6", "10.1.0.2", "10.1.0.3", "10.1.0.4"]


def test_candidates_skip_the_gateway_and_cross_ranges():
    rs = sets([{"subnet": "10.1.0.0/29", "gateway": "10.1.0.3"}, {"subnet": "10.1.1.0/30"}])[0]
    got = [str(x) for _, x in allocator.candidates(rs, ip("10.1.0.6"))]
    assert got == ["10.1.1.2", "10.1.0.1", "10.1.0.2", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    first = [str(x) for _, x in allocator.candidates(rs, None)]
    assert first[:3] == ["10.1.0.1", "10.1.0.2", "10.1.0.4"]


def test_cursor_outside_the_set_starts_at_the_beginning():
    assert next(allocator.candidates(SMALL[0], ip("192.168.0.1")))[1] == ip("10.1.0.2")


def test_allocation_is_round_robin_not_lowest_free():
    store = MemoryStore()
    assert addrs(allocator.allocate(store, SMALL, A)) == ["10.1.0.2"]
    assert addrs(allocator.allocate(store, SMALL, B)) == ["10.1.0.3"]
    allocator.release(store, A)
    # .2 is free again, but a crash-looping pod should not get its old address back at once
    assert addrs(allocator.allocate(store, SMALL, C)) == ["10.1.0.4"]
    assert store.last_reserved(0) == ip("10.1.0.4")


def test_result_entry_has_prefix_and_gateway():
    alloc = allocator.allocate(MemoryStore(), DUAL, A)
    assert [a.to_result() for a in alloc] == [
        {"address": "10.1.0.2/29", "gateway": "10.1.0.1"},
        {"address": "fd00::2/125", "gateway": "fd00::1"}]


def test_exhaustion_is_try_again_later_naming_the_range_set():
    store = MemoryStore()
    for n in range(5):
        allocator.allocate(store, SMALL, Attachment(f"c{n}", "eth0"))
    with pytest.raises(CniError) as info:
        allocator.allocate(store, SMALL, A)
    assert info.value.code == Code.TRY_AGAIN_LATER
    assert info.value.msg == "no IP addresses available in range set 10.1.0.2-10.1.0.6"
    assert len(store.leases) == 5


def test_requested_ip():
    store = MemoryStore()
    assert addrs(allocator.allocate(store, SMALL, A, [ip("10.1.0.5")])) == ["10.1.0.5"]
    assert store.last_reserved(0) == ip("10.1.0.5")  # host-local moves the cursor too
    with pytest.raises(CniError) as info:
        allocator.allocate(store, SMALL, B, [ip("10.1.0.5")])
    assert info.value.code == Code.TRY_AGAIN_LATER and "10.1.0.5" in info.value.msg
    assert store.leases == {ip("10.1.0.5"): A}


GW_INSIDE = sets([{"subnet": "10.1.0.0/29", "rangeStart": "10.1.0.1"}])


@pytest.mark.parametrize("range_sets, requested, words", [
    (SMALL, ["10.9.0.5"], "not in any range set"),
    (SMALL, ["10.1.0.7"], "not in any range set"),  # the broadcast address
    (SMALL, ["10.1.0.1"], "not in any range set"),  # the gateway, outside the default range
    (GW_INSIDE, ["10.1.0.1"], "is the gateway"),
    (SMALL, ["10.1.0.3", "10.1.0.4"], "same range set"),
])
def test_unusable_requested_ips_are_config_errors(range_sets, requested, words):
    store = MemoryStore()
    with pytest.raises(CniError) as info:
        allocator.allocate(store, range_sets, A, [ip(x) for x in requested])
    assert info.value.code == Code.INVALID_CONFIG and words in info.value.msg
    assert store.leases == {}


def test_dual_stack_gets_one_address_per_set():
    store = MemoryStore()
    assert addrs(allocator.allocate(store, DUAL, A, [ip("fd00::5")])) == ["10.1.0.2", "fd00::5"]
    assert store.leases_of(A) == [ip("10.1.0.2"), ip("fd00::5")]


def test_re_add_returns_the_existing_leases():
    store = MemoryStore()
    first = allocator.allocate(store, DUAL, A)
    assert allocator.allocate(store, DUAL, A) == first
    assert allocator.allocate(store, DUAL, A, [first[0].ip]) == first
    assert len(store.leases) == 2
    with pytest.raises(CniError) as info:
        allocator.allocate(store, DUAL, A, [ip("10.1.0.6")])
    assert "already holds 10.1.0.2" in info.value.msg


def test_same_container_other_interface_gets_its_own_lease():
    store = MemoryStore()
    allocator.allocate(store, SMALL, A)
    assert addrs(allocator.allocate(store, SMALL, Attachment("a", "net1"))) == ["10.1.0.3"]


def test_all_or_nothing_across_range_sets():
    store = MemoryStore({ip(f"fd00::{n}"): Attachment(f"x{n}", "eth0") for n in range(2, 8)})
    with pytest.raises(CniError) as info:
        allocator.allocate(store, DUAL, A)
    assert "fd00::2-fd00::7" in info.value.msg
    assert store.leases_of(A) == []  # the v4 lease of the first set was given back
    assert not store.is_reserved(ip("10.1.0.2"))


def test_release():
    store = MemoryStore()
    allocator.allocate(store, DUAL, A)
    allocator.allocate(store, DUAL, B)
    assert allocator.release(store, A) == [ip("10.1.0.2"), ip("fd00::2")]
    assert allocator.release(store, A) == []
    assert set(store.leases.values()) == {B}


def test_release_of_a_pre_0_7_lease_by_container_id():
    store = MemoryStore({ip("10.1.0.2"): Attachment("a", "")})
    assert allocator.release(store, A) == [ip("10.1.0.2")]


def test_collect_garbage():
    store = MemoryStore({ip("10.1.0.2"): A, ip("10.1.0.3"): B, ip("10.1.0.4"): None,
                         ip("10.1.0.5"): Attachment("c", ""), ip("10.1.0.6"): Attachment("d", "")})
    released, errors = allocator.collect_garbage(store, [A, C])
    assert errors == []
    assert sorted(released) == [ip("10.1.0.3"), ip("10.1.0.4"), ip("10.1.0.6")]
    assert store.leases == {ip("10.1.0.2"): A, ip("10.1.0.5"): Attachment("c", "")}


def test_collect_garbage_goes_on_past_errors():
    class Flaky(MemoryStore):
        def release(self, addr, owner):
            if addr == ip("10.1.0.2"):
                raise OSError("disk on fire")
            return super().release(addr, owner)

    store = Flaky({ip("10.1.0.2"): A, ip("10.1.0.3"): B})
    released, errors = allocator.collect_garbage(store, [])
    assert released == [ip("10.1.0.3")] and "10.1.0.2: disk on fire" in errors[0]


def test_has_free():
    store = MemoryStore()
    for n in range(4):
        allocator.allocate(store, SMALL, Attachment(f"c{n}", "eth0"))
    assert allocator.has_free(store, 0, SMALL[0])
    allocator.allocate(store, SMALL, A)
    assert not allocator.has_free(store, 0, SMALL[0])


def test_verify():
    store = MemoryStore()
    allocator.allocate(store, DUAL, A)
    allocator.allocate(store, DUAL, B)
    allocator.verify(store, DUAL, A, None)
    allocator.verify(store, DUAL, A, [ip("10.1.0.2"), ip("fd00::2"), ip("192.168.9.9")])
    with pytest.raises(CniError, match="10.1.0.3 of prevResult is not leased to a/eth0"):
        allocator.verify(store, DUAL, A, [ip("10.1.0.3")])
    with pytest.raises(CniError, match="holds no address"):
        allocator.verify(store, DUAL, C, None)
