"""Streaming tokens: single use, one-minute expiry, bounded, safe across threads."""
from __future__ import annotations

import threading

import pytest

from cri.streaming.tokens import TokenCache, TooManyInFlight


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_good_once():
    cache = TokenCache()
    token = cache.insert("req")
    assert cache.consume(token) == "req"
    assert cache.consume(token) is None
    assert cache.consume("never-issued") is None


def test_tokens_are_unguessable_and_url_safe():
    cache = TokenCache()
    tokens = {cache.insert(i) for i in range(200)}
    assert len(tokens) == 200
    assert all(len(t) >= 22 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_a_token_expires_after_a_minute():
    clock = Clock()
    cache = TokenCache(clock=clock)
    early, late = cache.insert("early"), cache.insert("late")
    clock.now += 59.9
    assert cache.consume(early) == "early"
    clock.now += 0.2
    assert cache.consume(late) is None


def test_in_flight_tokens_are_bounded_and_expiry_makes_room():
    clock = Clock()
    cache = TokenCache(max_in_flight=3, clock=clock)
    tokens = [cache.insert(i) for i in range(3)]
    with pytest.raises(TooManyInFlight):
        cache.insert("one too many")
    cache.consume(tokens[0])                    # a used token frees its place
    cache.insert("fits")
    with pytest.raises(TooManyInFlight):
        cache.insert("full again")
    clock.now += 61
    assert len(cache) == 0                      # all expired
    cache.insert("after expiry")


def test_threads_insert_and_consume_concurrently():
    cache = TokenCache(max_in_flight=100000)
    got: list = []

    def work(n: int) -> None:
        for i in range(500):
            got.append(cache.consume(cache.insert((n, i))))
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted((n, i) for n in range(8) for i in range(500))
    assert len(cache) == 0
