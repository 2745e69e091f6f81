"""The agent's front ends over the in-memory datapath: gRPC (status codes at one
boundary), the CNI hook socket and its stdlib client, and the CLI."""
from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import types

import grpc
import pytest

from cni.errors import CniError, Code
from cni.plugin import netpol as hook_client
from netpol import cli
from netpol.agent.cnihook import CniHookServer
from netpol.agent.server import create_server
from netpol.client import Client
from netpol.compiler.entries import DIR_INGRESS
from netpol.datapath.events import DropEvent
from netpol.datapath.reasons import DROP_POLICY
from netpoltest import CASES, fake_agent, fake_ips, register_all

IPS = fake_ips()


@pytest.fixture
def served(tmp_path):
    agent, dp = fake_agent(tmp_path)
    path = str(tmp_path / "netpol.sock")
    server, _ = create_server(agent, f"unix:{path}")
    server.start()
    client = Client(path, timeout=10)
    yield agent, dp, client, path
    client.close()
    server.stop(grace=0).wait()


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_endpoints_and_policies_over_grpc(served):
    agent, dp, client, _ = served
    client.set_namespace("y", {"ns": "y"})
    ep = client.upsert_endpoint("x", "a", {"pod": "a"}, ips=(IPS["x/a"][0],), interface="veth-x-a",
                                ports=(("http", "TCP", 8080),))
    assert ep.endpoint_id == 1 and not ep.ingress_isolated
    results = client.apply(CASES["namespace-selector"](IPS))
    assert [(r.namespace, r.name, r.action) for r in results] == [("x", "from-y", "created")]
    [ep] = client.endpoints()
    assert ep.ingress_isolated and not ep.egress_isolated and list(ep.ports)[0].port == 8080
    [policy] = client.policies("x")
    assert policy.selected_pods == ["x/a"] and json.loads(policy.manifest)["metadata"]["name"] == "from-y"
    updated = client.upsert_endpoint("x", "a", {"pod": "zzz"}, fields=("labels",))
    assert not updated.ingress_isolated and list(updated.ips) == [IPS["x/a"][0]]
    assert [r.action for r in client.delete("x", ("from-y",))] == ["deleted"]
    assert client.remove_endpoint("x", "a") and not client.remove_endpoint("x", "a")


def test_errors_become_status_codes(served):
    _, dp, client, _ = served
    code, details = code_of(lambda: client.apply(CASES["end-port"](IPS).replace("port: 81,", "")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == ('NetworkPolicy.networking.k8s.io "end-port" is invalid: spec.ingress[0].ports[0].endPort: '
                       "Invalid value: 90: may not be specified when `port` is not specified")
    assert code_of(lambda: client.delete("x", ("nope",)))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: client.upsert_endpoint("x", "a", interface="nope"))[0] == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: client.upsert_endpoint("", "a"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    dp.fail_next_sync = RuntimeError("boom")
    assert code_of(lambda: client.apply(CASES["deny-all"](IPS))) == (grpc.StatusCode.INTERNAL, "boom")
    assert client.policies() == []


def test_drop_stream_sends_recent_then_follows(served):
    agent, dp, client, _ = served
    register_all(agent, IPS)

    def drop(port):
        dp.emit_drop(DropEvent(time.time(), port, IPS["y/a"][0], IPS["x/a"][0], 40000, port, 17, DIR_INGRESS,
                               DROP_POLICY, 1, 100, 300))

    drop(1)
    assert [d.dst_port for d in client.drops(recent=10)] == [1]
    stream = client.drops(recent=10, follow=True, timeout=10)
    first = next(stream)
    threading.Timer(0.2, drop, (2,)).start()
    second = next(stream)
    stream.cancel()
    assert (first.dst_port, second.dst_port) == (1, 2)
    assert (second.src_pod, second.isolated_pod, second.protocol, second.reason) == \
        ("y/a", "x/a", "UDP", "Policy denied")


def test_cni_hook_protocol_and_its_stdlib_client(tmp_path):
    agent, dp = fake_agent(tmp_path)
    agent.apply(CASES["deny-all"](IPS))
    path = str(tmp_path / "cni.sock")
    server = CniHookServer(agent, path).start()
    try:
        args = types.SimpleNamespace(config={"netpolSocket": path}, container_id="c1",
                                     args={"K8S_POD_NAMESPACE": "x", "K8S_POD_NAME": "a"})
        with contextlib.ExitStack() as undo:
            hook_client.register(args, "veth-x-a", [{"address": IPS["x/a"][0] + "/24"}], undo)
            view = agent.endpoint("x/a")
            assert view.ingress_isolated and view.pod.ips == (IPS["x/a"][0],) and 100 in dp.attached_to
        assert agent.endpoints() == []  # the undo stack unregistered it (ADD failing later)
        with pytest.raises(CniError) as err:
            hook_client.register(args, "no-such-veth", [], contextlib.ExitStack())
        assert err.value.code == Code.TRY_AGAIN_LATER and "FAILED_PRECONDITION" in err.value.details
        no_k8s = types.SimpleNamespace(config={"netpolSocket": path}, container_id="c2", args={})
        hook_client.register(no_k8s, "veth-x-b", [], contextlib.ExitStack())
        assert agent.endpoints() == []
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(path)
            raw.sendall(b"not json\n")
            assert json.loads(raw.makefile().readline())["code"] == "INVALID_ARGUMENT"
    finally:
        server.stop()
    # Agent gone, socket gone: nothing to do.  Socket left behind by a crash: fail closed.
    hook_client.register(args, "veth-x-a", [], contextlib.ExitStack())
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    try:
        with pytest.raises(CniError) as err:
            hook_client.register(args, "veth-x-a", [], contextlib.ExitStack())
        assert err.value.code == Code.TRY_AGAIN_LATER
        hook_client.unregister(args, "veth-x-a")  # DEL never fails
    finally:
        stale.close()


def run_cli(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def test_cli_verbs(served, tmp_path):
    agent, dp, client, path = served
    register_all(agent, IPS)
    policy = tmp_path / "p.yaml"
    policy.write_text(CASES["union"](IPS))
    assert run_cli("--socket", path, "apply", "-f", str(policy)) == (0, (
        "networkpolicy.networking.k8s.io/deny-all created\n"
        "networkpolicy.networking.k8s.io/allow-yb-udp created\n"))
    code, out = run_cli("--socket", path, "list", "-A")
    assert code == 0 and "x           allow-yb-udp   Ingress" in out and "x/a" in out
    code, out = run_cli("--socket", path, "list", "-o", "yaml", "-n", "x")
    assert code == 0 and "kind: List" in out and "name: deny-all" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(CASES["deny-all"](IPS).replace("podSelector: {}", "podSelector: {}\n  ingres: []"))
    code, out = run_cli("--socket", path, "apply", "-f", str(bad))
    assert code == 1 and out == ('error: NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: '
                                 'strict decoding error: unknown field "spec.ingres"\n')
    dp.emit_drop(DropEvent(time.time(), 1, IPS["y/a"][0], IPS["x/a"][0], 40000, 81, 132, DIR_INGRESS,
                           DROP_POLICY, 1, 100, 300))
    code, out = run_cli("--socket", path, "drops")
    assert code == 0 and "y/a (10.9.1.10:40000)" in out and "SCTP" in out and "Policy denied" in out
    code, out = run_cli("--socket", path, "stats")
    assert code == 0 and "x/deny-all" in out and "allow entries:" in out
    code, out = run_cli("--socket", path, "endpoints")
    assert code == 0 and "veth-x-a" in out and "ingress" in out
    assert run_cli("--socket", path, "delete", "-n", "x", "deny-all")[1] == \
        'networkpolicy.networking.k8s.io "deny-all" deleted\n'
    assert run_cli("--socket", path, "delete", "-f", str(policy), "--ignore-not-found")[0] == 0
    assert client.policies() == []
