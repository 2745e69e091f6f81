"""podwire-cnid's metrics without root: the request counters and histograms through a real
unix socket with fake verbs, the lease collector against lease directories made here, the
in-flight gauge, the settings, and the endpoint itself (docs/cni.md, "Metrics")."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cni import metrics, skel
from cni.context import STANDALONE
from cni.daemon import main as cnid_main
from cni.daemon import wire
from cni.daemon.handler import Handler
from cni.daemon.health import Health
from cni.daemon.metrics import CnidMetrics, Networks, count_leases
from cni.daemon.server import Server
from cni.errors import CniError, Code
from cni.ipam.config import configured_ranges

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition (parsed back, so the text format is checked too)."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(registry: CollectorRegistry, name: str, **labels) -> float | None:
    return samples(registry).get((name, tuple(sorted(labels.items()))))


# -- requests through the daemon's socket ------------------------------------------------------

class Verbs:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def add(self, args):
        self.gate.wait(10)
        if args.container_id.startswith("bad"):
            raise CniError(Code.INVALID_CONFIG, "no")
        return {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}]}

    def delete(self, args):
        pass

    def verbs(self) -> skel.Verbs:
        return skel.Verbs(add=self.add, delete=self.delete, check=None, status=lambda a: None, gc=None)


@pytest.fixture
def served(tmp_path):
    health, verbs = Health(), Verbs()
    cnid = CnidMetrics(health, data_dirs=(), conf_dir="")
    server = Server(str(tmp_path / "cni.sock"), Handler(health, {"podwire": verbs.verbs()}, STANDALONE, 5.0, cnid),
                    workers=4)
    server.start()
    yield server, cnid, verbs, health
    verbs.gate.set()
    server.stop()


def ask(server: Server, command: str, cid: str, conf: dict | None = None) -> tuple:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
           "CNI_NETNS": "/var/run/netns/x", "CNI_NETNS_OVERRIDE": "1"}
    conf = conf or {"cniVersion": "1.0.0", "name": "net1", "type": "podwire"}
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(server.path)
        sock.sendall(wire.encode_request(b"podwire", wire.encode_env({k.encode(): v.encode() for k, v in env.items()}),
                                         json.dumps(conf).encode(), 0))
        answer = wire.recv_answer(sock)
        if command == "ADD" and answer[1] == 0:
            sock.sendall(wire.ACK)
        return answer


def test_each_answer_is_counted_by_verb_and_result_and_timed(served):
    server, cnid, _, _ = served
    for cid in ("a", "b", "c"):
        assert ask(server, "ADD", cid)[1] == 0
    assert ask(server, "ADD", "bad1")[1] == 1
    assert ask(server, "DEL", "a")[1] == 0
    assert ask(server, "NOPE", "a")[1] == 1
    reg = cnid.registry
    assert value(reg, "podwire_cni_operations_total", plugin="podwire", verb="ADD", result="success") == 3
    assert value(reg, "podwire_cni_operations_total", plugin="podwire", verb="ADD", result="7") == 1
    assert value(reg, "podwire_cni_operations_total", plugin="podwire", verb="DEL", result="success") == 1
    assert value(reg, "podwire_cni_operations_total", plugin="podwire", verb="other", result="4") == 1
    assert value(reg, "podwire_cni_operation_duration_seconds_count", plugin="podwire", verb="ADD") == 4
    assert value(reg, "podwire_cni_operation_duration_seconds_count", plugin="podwire", verb="DEL") == 1
    assert 0 < value(reg, "podwire_cni_operation_duration_seconds_sum", plugin="podwire", verb="ADD") < 5


def test_a_slow_add_lands_in_its_bucket(served):
    server, cnid, verbs, _ = served
    verbs.gate.clear()
    threading.Timer(0.3, verbs.gate.set).start()
    assert ask(server, "ADD", "slow")[1] == 0
    reg = cnid.registry
    assert value(reg, "podwire_cni_operation_duration_seconds_bucket", plugin="podwire", verb="ADD", le="0.25") == 0
    assert value(reg, "podwire_cni_operation_duration_seconds_bucket", plugin="podwire", verb="ADD", le="0.5") == 1


def test_in_flight_counts_requests_being_served_and_returns_to_zero(served):
    server, cnid, verbs, health = served
    verbs.gate.clear()
    threads = [threading.Thread(target=ask, args=(server, "ADD", f"held{i}")) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while value(cnid.registry, "podwire_cni_requests_in_flight") != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert value(cnid.registry, "podwire_cni_requests_in_flight") == 3
    verbs.gate.set()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 5
    while health.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert value(cnid.registry, "podwire_cni_requests_in_flight") == 0


# -- leases ----------------------------------------------------------------------------------

def lease_dir(tmp_path, name: str, ips: list[str]) -> str:
    path = tmp_path / name
    (path / ".podwire-index" / "attachments").mkdir(parents=True)
    for ip in ips:
        (path / ip).write_text(f"c-{ip}\r\neth0")
    (path / "lock").write_text("")
    (path / "last_reserved_ip.0").write_text(ips[-1] if ips else "")
    return str(path)


def test_leases_are_counted_per_range_from_the_directory(tmp_path):
    store = lease_dir(tmp_path, "net1", ["10.1.0.2", "10.1.0.3", "10.1.1.9", "fd00::5", "192.168.9.9"])
    _, sets = configured_ranges({"name": "net1", "ipam": {"ranges": [
        [{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.1.0/24", "rangeStart": "10.1.1.8", "rangeEnd": "10.1.1.15",
                                     "gateway": "10.1.1.10"}],
        [{"subnet": "fd00::/120"}]]}})
    ranges = tuple(r for s in sets for r in s.ranges)
    assert count_leases(store, ranges) == {
        "10.1.0.2-10.1.0.254": (2, 253 - 2),   # .1 is the gateway, outside the range
        "10.1.1.8-10.1.1.15": (1, 8 - 1 - 1),  # the gateway .10 inside the range is never handed out
        "fd00::2-fd00::ff": (1, 254 - 1),
        "unknown": (1, -1),                    # 192.168.9.9: in no range of the config
    }
    assert count_leases(str(tmp_path / "gone"), ranges) is None


def test_the_collector_reads_learned_networks_and_any_directory_under_the_data_dir(tmp_path):
    data = tmp_path / "networks"
    data.mkdir()
    lease_dir(data, "known", ["10.7.0.2", "10.7.0.3"])
    lease_dir(data, "stranger", ["10.8.0.2"])
    conf = {"cniVersion": "1.0.0", "name": "known", "type": "podwire",
            "ipam": {"type": "podwire-ipam", "dataDir": str(data), "subnet": "10.7.0.0/28"}}
    cnid = CnidMetrics(Health(), data_dirs=(str(data),), conf_dir="")
    assert value(cnid.registry, "podwire_cni_ipam_leases_in_use", network="known", range="unknown") == 2
    cnid.networks.learn_request(json.dumps(conf).encode())
    assert value(cnid.registry, "podwire_cni_ipam_leases_in_use", network="known", range="10.7.0.2-10.7.0.14") == 2
    assert value(cnid.registry, "podwire_cni_ipam_addresses_free", network="known", range="10.7.0.2-10.7.0.14") == 11
    assert value(cnid.registry, "podwire_cni_ipam_leases_in_use", network="known", range="unknown") is None
    assert value(cnid.registry, "podwire_cni_ipam_leases_in_use", network="stranger", range="unknown") == 1
    assert value(cnid.registry, "podwire_cni_ipam_addresses_free", network="stranger", range="unknown") is None
    (data / "known" / "10.7.0.4").write_text("x\r\neth0")  # written by someone else (host-local)
    assert value(cnid.registry, "podwire_cni_ipam_leases_in_use", network="known", range="10.7.0.2-10.7.0.14") == 3


def test_networks_are_learned_from_the_cni_config_dir(tmp_path):
    confdir = tmp_path / "net.d"
    confdir.mkdir()
    (confdir / "10-a.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "a", "plugins": [
        {"type": "podwire", "ipam": {"type": "podwire-ipam", "dataDir": str(tmp_path / "d"),
                                     "ranges": [[{"subnet": "10.9.0.0/24"}]]}}, {"type": "portmap"}]}))
    (confdir / "20-b.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "b", "plugins": [
        {"type": "bridge", "ipam": {"type": "dhcp"}}]}))
    (confdir / "30-broken.conf").write_text("{")
    networks = Networks()
    networks.learn_conf_dir(str(confdir))
    found = networks.directories(())
    assert list(found) == [os.path.realpath(tmp_path / "d" / "a")]
    assert [str(r) for r in found[os.path.realpath(tmp_path / "d" / "a")][1]] == ["10.9.0.2-10.9.0.254"]


# -- settings and the endpoint --------------------------------------------------------------

def test_cnid_metrics_address_default_config_key_and_flag(tmp_path):
    config = tmp_path / "cnid.toml"
    assert cnid_main.parse_args(["--config", str(config)]).metrics_address == "127.0.0.1:9741"
    config.write_text('metrics_address = "[::1]:9999"\n')
    assert cnid_main.parse_args(["--config", str(config)]).metrics_address == "[::1]:9999"
    config.write_text('metrics_address = ""\n')
    assert cnid_main.parse_args(["--config", str(config)]).metrics_address == ""
    assert cnid_main.parse_args(["--config", str(config), "--metrics-address", "0.0.0.0:1"]).metrics_address \
        == "0.0.0.0:1"
    with pytest.raises(SystemExit):
        cnid_main.parse_args(["--config", str(config), "--metrics-address", "localhost:9741"])
    config.write_text("metrics_address = 9741\n")
    with pytest.raises(SystemExit):
        cnid_main.parse_args(["--config", str(config)])


@pytest.mark.parametrize("text,parsed", [("", None), ("127.0.0.1:9741", ("127.0.0.1", 9741)),
                                         ("[::1]:0", ("::1", 0)), ("0.0.0.0:80", ("0.0.0.0", 80))])
def test_addresses_parse(text, parsed):
    assert metrics.parse_address(text) == parsed


@pytest.mark.parametrize("text", ["9741", "localhost:9741", "127.0.0.1:http", "127.0.0.1:70000", "::1:9741"])
def test_bad_addresses_are_refused(text):
    with pytest.raises(ValueError):
        metrics.parse_address(text)


def test_the_endpoint_serves_the_registry_and_a_taken_port_does_not_raise(caplog):
    cnid = CnidMetrics(Health(), data_dirs=(), conf_dir="")
    import logging
    log = logging.getLogger("test-metrics")
    server, problem = metrics.serve(cnid.registry, "127.0.0.1:0", log)
    assert server is not None and problem == ""
    try:
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            assert resp.status == 200
            assert b"podwire_cni_requests_in_flight 0.0" in resp.read()
        second, problem = metrics.serve(cnid.registry, server.address, log)
        assert second is None and "cannot listen" in problem
        assert metrics.serve(cnid.registry, "", log) == (None, "off")
    finally:
        server.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)


def test_prometheus_client_stays_off_the_executables_start_up_path():
    code = ("import sys, cni.plugin.main, cni.ipam.main, cni.daemon.client, cni.metrics;"
            "print(sorted(m for m in sys.modules if m.startswith('prometheus')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
