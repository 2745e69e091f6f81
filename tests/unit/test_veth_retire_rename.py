"""Retiring a veth end renames a link that may be up: kernels before 6.2 refuse that with
EBUSY (the VM's 6.1 did), so the link goes down first and is renamed in a second request."""
from __future__ import annotations

import errno

import pytest

from cni import netlink
from cni.plugin import veth


class Kernel:
    """set_link as a pre-6.2 kernel answers it: no rename of a link that is up."""

    def __init__(self, live_rename: bool):
        self.live_rename, self.up, self.name, self.calls = live_rename, True, "eth0", []

    def set_link(self, ipr, index, *, up=None, ifname="", alias="", master=None):
        self.calls.append({"up": up, "ifname": ifname, "master": master})
        if ifname and self.up and not self.live_rename:
            raise netlink.NetlinkError(errno.EBUSY, "Device or resource busy")
        if ifname:
            self.name = ifname
        if up is not None:
            self.up = up


@pytest.mark.parametrize("live_rename", [True, False])
def test_a_retired_end_is_renamed_on_old_and_new_kernels(monkeypatch, live_rename):
    kernel = Kernel(live_rename)
    monkeypatch.setattr(netlink, "set_link", kernel.set_link)
    veth._rename(None, 7, "pwx0123456789ab", up=False)
    assert (kernel.name, kernel.up) == ("pwx0123456789ab", False)
    assert len(kernel.calls) == (1 if live_rename else 3)  # one request where the kernel allows it


def test_other_refusals_are_not_retried(monkeypatch):
    def refuse(*args, **kwargs):
        raise netlink.NetlinkError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(netlink, "set_link", refuse)
    with pytest.raises(netlink.NetlinkError):
        veth._rename(None, 7, "pwx0123456789ab", master=0)
