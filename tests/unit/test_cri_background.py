"""cri.background: a call on a thread of its own, joined for its value or exception."""
from __future__ import annotations

import threading

import pytest

from cri import background


def test_value_and_truth():
    assert background.call(lambda a, b: a + b, 2, 3).result() == 5
    assert background.call(lambda: True).succeeded()
    assert not background.call(lambda: False).succeeded()


def test_exception_is_raised_by_result_and_is_no_success():
    def boom():
        raise ValueError("agent down")
    call = background.call(boom)
    assert not call.succeeded()
    with pytest.raises(ValueError, match="agent down"):
        call.result()


def test_runs_while_the_caller_works():
    go, done = threading.Event(), []
    call = background.call(lambda: (go.wait(5), done.append(1)))
    assert done == []            # still waiting for the caller
    go.set()
    call.result()
    assert done == [1]
