"""Kernel refusals become typed CNI errors that name the object (cni/netlink.py)."""
from __future__ import annotations

import errno

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from cni import netlink
from cni.errors import CniError, Code


@pytest.mark.parametrize("err, code", [
    (errno.EEXIST, Code.EXISTS), (errno.ENODEV, Code.NOT_FOUND), (errno.ENOENT, Code.NOT_FOUND),
    (errno.EBUSY, Code.TRY_AGAIN_LATER), (errno.ENETUNREACH, Code.INTERNAL), (errno.EPERM, Code.INTERNAL)])
def test_errno_maps_to_a_code_and_the_message_names_the_object(err, code):
    with pytest.raises(CniError) as caught:
        with netlink.about("cannot add route 10.0.0.0/8 on pod interface 'eth0'", "in netns /x"):
            raise NetlinkError(err)
    assert caught.value.code == code
    assert caught.value.msg.startswith("cannot add route 10.0.0.0/8 on pod interface 'eth0': ")
    assert caught.value.msg.endswith(__import__("os").strerror(err))
    assert caught.value.details == "in netns /x"
    assert "(%d," % err not in caught.value.msg  # never the raw pyroute2 tuple


def test_codes_are_the_plugins_own_range():
    # The spec reserves 1-99 for itself; a plugin's own codes start at 100.
    assert Code.EXISTS >= 100 and Code.NOT_FOUND >= 100


def test_the_verbs_turn_an_unnamed_refusal_into_a_typed_error():
    from cni.plugin import main
    with pytest.raises(CniError) as caught:
        main._in_kernel_terms("ADD", lambda: (_ for _ in ()).throw(NetlinkError(errno.EBUSY)))
    assert caught.value.code == Code.TRY_AGAIN_LATER and caught.value.msg.startswith("ADD: ")


def test_other_exceptions_pass_through_untouched():
    with pytest.raises(KeyError):
        with netlink.about("x"):
            raise KeyError("y")
