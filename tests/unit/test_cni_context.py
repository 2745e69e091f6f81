"""The verbs' context is passed, not switched on: skel hands the caller's to the verb,
the daemon's handler passes its own per request, and nothing module-level changes."""
from __future__ import annotations

import io

import pytest

from cni import skel
from cni.context import STANDALONE, Context
from cni.daemon import registry, wire
from cni.daemon.handler import Handler, Request
from cni.daemon.health import Health

CONF = b'{"cniVersion": "1.1.0", "name": "n", "type": "podwire"}'
# DEL: the one verb that needs no real namespace.
ENV = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def _recording_verbs(seen: list):
    def verb(args: skel.CmdArgs):
        seen.append(args.context)
    return skel.Verbs(add=verb, delete=verb)


def test_dispatch_defaults_to_the_standalone_context():
    seen: list = []
    assert skel.dispatch(_recording_verbs(seen), ENV, io.BytesIO(CONF), io.StringIO()) == 0
    assert seen == [STANDALONE]
    assert all(getattr(STANDALONE, f) is None for f in ("host_sockets", "ns_sockets", "link_deleter",
                                                         "open_store", "caller_environ"))


def test_dispatch_hands_the_given_context_to_the_verb():
    seen: list = []
    ctx = Context(open_store=lambda path: None)
    skel.dispatch(_recording_verbs(seen), ENV, io.BytesIO(CONF), io.StringIO(), io.StringIO(), ctx)
    assert seen[0] is ctx


class _Client:
    def __init__(self):
        self.answers = []

    def gone(self):
        return False

    def deliver(self, answer, wait_ack):
        self.answers.append(answer)
        return True

    def decline(self):
        raise AssertionError("declined")


def test_the_daemon_passes_its_context_with_the_callers_environment():
    seen: list = []
    deleter = object()
    ctx = Context(link_deleter=deleter)  # type: ignore[arg-type]
    handler = Handler(Health(), {"podwire": _recording_verbs(seen)}, ctx, 5.0)
    client = _Client()
    handler.handle(Request("podwire", {**ENV, "PATH": "/caller/bin"}, CONF), client)
    assert client.answers[0].code == 0, client.answers[0].stdout
    got = seen[0]
    assert got.link_deleter is deleter  # the daemon's own machinery...
    assert got.caller_environ["PATH"] == "/caller/bin"  # ...with this caller's environment
    # Plugins exec'd for this request must not call back into the busy daemon.
    assert got.caller_environ[wire.SOCKET_ENV.decode()] == ""
    assert ctx.caller_environ is None  # the daemon's context itself is unchanged


def test_the_daemon_serves_the_executables_the_thin_client_knows():
    from cni.daemon.client import PLUGINS as CLIENT_PLUGINS
    assert set(registry.PLUGINS) == set(CLIENT_PLUGINS)
    for name, verbs in registry.PLUGINS.items():
        assert verbs is __import__(CLIENT_PLUGINS[name], fromlist=["VERBS"]).VERBS


@pytest.mark.parametrize("module", ["cni.netlink", "cni.ipam.stores", "cni.invoke"])
def test_no_module_level_switches_remain(module):
    mod = __import__(module, fromlist=["_"])
    for name in ("keep_warm", "batch_deletions", "open_sockets_with", "use", "using", "CALLER_ENVIRON"):
        assert not hasattr(mod, name), f"{module}.{name}"
