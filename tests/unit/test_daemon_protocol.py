"""podwire-cnid over a real unix socket, with fake verbs: answers, serialization,
deadlines, and what happens to a request whose client goes away (no root needed)."""
from __future__ import annotations

import io
import json
import socket
import threading
import time

import pytest

from cni import skel
from cni.context import STANDALONE
from cni.daemon import wire
from cni.daemon.handler import Handler
from cni.daemon.health import Health
from cni.daemon.server import Server
from cni.errors import CniError, Code

CONF = {"cniVersion": "1.0.0", "name": "net1", "type": "podwire"}


class FakeVerbs:
    """Records calls; ADD can be held (``gate``) to keep a request in flight."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.add_delay = 0.0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def add(self, args):
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.gate.wait(10)
            time.sleep(self.add_delay)
            self.calls.append(("ADD", args.container_id))
            return {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}]}
        finally:
            with self._lock:
                self.running -= 1

    def delete(self, args):
        self.calls.append(("DEL", args.container_id))

    def verbs(self) -> skel.Verbs:
        return skel.Verbs(add=self.add, delete=self.delete, check=None, status=lambda a: None, gc=None)


@pytest.fixture
def fake():
    return FakeVerbs()


@pytest.fixture
def daemon(fake, tmp_path):
    health = Health()
    server = Server(str(tmp_path / "cni.sock"), Handler(health, {"podwire": fake.verbs()}, STANDALONE, 5.0), workers=8)
    server.start()
    yield server
    fake.gate.set()
    server.stop()


def env_for(command: str, cid: str = "c1") -> dict:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
            "CNI_NETNS": "/var/run/netns/x", "CNI_NETNS_OVERRIDE": "1"}  # no real netns: fake verbs


def send(server, command="ADD", cid="c1", timeout_ms=0, plugin=b"podwire", conf=CONF) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(server.path)
    env = wire.encode_env({k.encode(): v.encode() for k, v in env_for(command, cid).items()})
    sock.sendall(wire.encode_request(plugin, env, json.dumps(conf).encode(), timeout_ms))
    return sock


def ask(server, command="ADD", cid="c1", ack=True, **kw) -> tuple:
    with send(server, command, cid, **kw) as sock:
        answer = wire.recv_answer(sock)
        if ack:
            try:
                sock.sendall(wire.ACK)  # the daemon waits for it after a successful ADD only
            except BrokenPipeError:
                pass
            time.sleep(0.05)
        return answer


def eventually(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def in_process(verbs, command, cid="c1", conf=CONF) -> tuple[int, bytes]:
    out = io.StringIO()
    code = skel.dispatch(verbs, env_for(command, cid), io.BytesIO(json.dumps(conf).encode()), out, io.StringIO())
    return code, out.getvalue().encode()


@pytest.mark.parametrize("command,conf", [("ADD", CONF), ("DEL", CONF), ("VERSION", CONF),
                                          ("ADD", {**CONF, "cniVersion": "9.9.9"}), ("BOGUS", CONF)])
def test_answers_are_what_the_verbs_print_in_process(daemon, fake, command, conf):
    status, code, stdout, _ = ask(daemon, command, conf=conf)
    assert status == wire.ANSWERED
    assert (code, stdout) == in_process(FakeVerbs().verbs(), command, conf=conf)


def test_an_acknowledged_add_is_kept(daemon, fake):
    assert ask(daemon, "ADD")[1] == 0
    assert eventually(lambda: daemon.handler.health.in_flight == 0)
    assert fake.calls == [("ADD", "c1")]


def test_an_add_whose_answer_is_never_acknowledged_is_undone(daemon, fake):
    assert ask(daemon, "ADD", ack=False)[1] == 0  # read, then the client dies without acking
    assert eventually(lambda: fake.calls == [("ADD", "c1"), ("DEL", "c1")])


def test_an_add_whose_client_dies_mid_request_is_finished_then_undone(daemon, fake):
    fake.gate.clear()
    sock = send(daemon, "ADD")
    assert eventually(lambda: fake.running == 1)
    sock.close()  # the runtime killed the plugin while the daemon worked
    fake.gate.set()
    assert eventually(lambda: fake.calls == [("ADD", "c1"), ("DEL", "c1")])


def test_a_del_whose_client_dies_mid_request_is_finished(daemon, fake):
    fake.gate.clear()
    holder = send(daemon, "ADD")  # keeps the container busy, so the DEL queues behind it
    assert eventually(lambda: fake.running == 1)
    send(daemon, "DEL").close()
    fake.gate.set()
    wire.recv_answer(holder)
    holder.sendall(wire.ACK)
    holder.close()
    # The DEL's client left while it queued: it never started, and nothing is half-done.
    assert eventually(lambda: daemon.handler.health.in_flight == 0)
    assert fake.calls == [("ADD", "c1")]


def test_requests_for_one_container_are_serialized_others_run_in_parallel(daemon, fake):
    fake.add_delay = 0.2
    with_threads = [threading.Thread(target=ask, args=(daemon, "ADD", cid)) for cid in ("a", "b", "c", "a")]
    for t in with_threads:
        t.start()
    for t in with_threads:
        t.join()
    assert sorted(fake.calls) == [("ADD", "a"), ("ADD", "a"), ("ADD", "b"), ("ADD", "c")]
    assert fake.most_at_once == 3  # a, b, c together; the second "a" waited for the first


def test_a_request_that_waits_past_its_deadline_fails_with_code_11_and_does_nothing(daemon, fake):
    fake.gate.clear()
    holder = send(daemon, "ADD")
    assert eventually(lambda: fake.running == 1)
    status, code, stdout, _ = ask(daemon, "DEL", timeout_ms=200)
    assert (status, code) == (wire.ANSWERED, 1)
    assert json.loads(stdout)["code"] == Code.TRY_AGAIN_LATER
    fake.gate.set()
    holder.close()
    assert eventually(lambda: ("DEL", "c1") in fake.calls)  # the holder's undo, not the refused DEL
    assert fake.calls.count(("DEL", "c1")) == 1


def test_an_add_that_overruns_its_deadline_is_undone(daemon, fake):
    fake.add_delay = 0.3
    status, code, stdout, _ = ask(daemon, "ADD", timeout_ms=100)
    assert code == 1 and json.loads(stdout)["code"] == Code.TRY_AGAIN_LATER
    assert fake.calls == [("ADD", "c1"), ("DEL", "c1")]


def test_status_reports_the_daemons_own_health(daemon, fake):
    conf = {**CONF, "cniVersion": "1.1.0"}
    assert ask(daemon, "STATUS", conf=conf)[1] == 0
    daemon.handler.health.checks.append(lambda: "pod CIDR of Node 'n1' not known yet")
    status, code, stdout, _ = ask(daemon, "STATUS", conf=conf)
    assert code == 1 and json.loads(stdout) == {"cniVersion": "1.1.0", "code": 50,
                                                 "msg": "pod CIDR of Node 'n1' not known yet"}


def test_an_unknown_plugin_is_declined(daemon):
    assert ask(daemon, plugin=b"someone-else")[0] == wire.DECLINED


def test_health_report(daemon):
    status, code, stdout, _ = ask(daemon, plugin=b"health")
    report = json.loads(stdout)
    assert report["ready"] is True and report["problems"] == []


def test_stop_finishes_requests_in_flight_and_removes_the_socket(fake, tmp_path):
    server = Server(str(tmp_path / "s.sock"), Handler(Health(), {"podwire": fake.verbs()}, STANDALONE, 5.0))
    server.start()
    fake.gate.clear()
    sock = send(server, "ADD")
    assert eventually(lambda: fake.running == 1)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    assert eventually(lambda: not (tmp_path / "s.sock").exists())  # new clients go in process
    fake.gate.set()
    assert wire.recv_answer(sock)[1] == 0
    sock.sendall(wire.ACK)
    sock.close()
    stopper.join(10)
    assert not stopper.is_alive() and fake.calls == [("ADD", "c1")]


def test_a_live_socket_is_not_taken_over(daemon, fake):
    with pytest.raises(RuntimeError, match="another podwire-cnid"):
        Server(daemon.path, Handler(Health(), {"podwire": fake.verbs()}, STANDALONE, 5.0)).start()


def test_a_stale_socket_is_replaced(fake, tmp_path):
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays; nobody listens (a daemon killed with SIGKILL)
    server = Server(str(path), Handler(Health(), {"podwire": fake.verbs()}, STANDALONE, 5.0))
    server.start()
    try:
        assert ask(server, "ADD")[1] == 0
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()


def test_refusals_leave_through_skel():
    from cni.daemon.handler import refusing
    code, out = in_process(refusing(CniError(Code.TRY_AGAIN_LATER, "busy")), "ADD")
    assert code == 1 and json.loads(out) == {"cniVersion": "1.0.0", "code": 11, "msg": "busy"}


def test_past_the_pending_bound_clients_are_declined_at_once(fake, tmp_path, monkeypatch):
    """Connections beyond MAX_PENDING are not queued behind the workers: they get DECLINED
    (the client then runs the plugin in its own process); once the queue drains, served again."""
    from cni.daemon import server as server_mod
    monkeypatch.setattr(server_mod, "MAX_PENDING", 3)
    srv = Server(str(tmp_path / "cni.sock"), Handler(Health(), {"podwire": fake.verbs()}, STANDALONE, 5.0), workers=2)
    srv.start()
    fake.gate.clear()                                  # ADDs hold their workers
    held = [send(srv, cid=f"c{i}") for i in range(3)]
    try:
        assert eventually(lambda: fake.running == 2)
        t0 = time.monotonic()
        # The daemon declines at accept time, before reading a request, and closes: a client
        # still sending could get EPIPE (the real client treats that like DECLINED), so this
        # one only reads.  A daemon that waited for the request would time out here.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(srv.path)
            assert wire.recv_answer(sock)[0] == wire.DECLINED
        assert time.monotonic() - t0 < 2
        fake.gate.set()
        for sock in held:
            assert wire.recv_answer(sock)[0] == wire.ANSWERED
            sock.sendall(wire.ACK)
        assert eventually(lambda: srv._pending == 0)
        assert ask(srv, cid="after")[0] == wire.ANSWERED
    finally:
        fake.gate.set()
        for sock in held:
            sock.close()
        srv.stop()


@pytest.mark.parametrize("index, limit", [(0, wire.MAX_PLUGIN), (1, wire.MAX_ENV), (2, wire.MAX_STDIN),
                                          (3, wire.MAX_TIMEOUT)])
def test_each_request_field_has_its_own_bound(index, limit):
    fields = [b"podwire", b"", b"{}", b"0"]
    fields[index] = b"x" * (limit + 1)
    a, b = socket.socketpair()
    with a, b:
        def write() -> None:
            try:
                a.sendall(wire.REQUEST + b"".join(map(wire.field, fields)))
            except OSError:
                pass                        # the reader gave up at the oversized field: expected
        threading.Thread(target=write, daemon=True).start()
        with pytest.raises(ValueError, match="too large"):
            wire.recv_request(b)
