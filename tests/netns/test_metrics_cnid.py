"""podwire-cnid's metrics, scraped from a real daemon serving the real plugin: after 3 ADDs
and 1 DEL the counters read 3 and 1, the latency histograms hold as many samples, the lease
gauges read 2 in use and the range's size less 2 free, and in-flight returns to 0."""
from __future__ import annotations

import ipaddress
import random
import time

import pytest

from cnitest import Daemon, Network, unique
from conftest import needs_root
from metricstest import get, scrape, total

pytestmark = needs_root


@pytest.fixture(scope="module")
def bin_dir(podwire_bin_dir) -> str:
    return podwire_bin_dir


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(str(tmp_path), "--metrics-address", "127.0.0.1:0").start()
    yield d
    assert d.stop() == 0, d.log()


@pytest.fixture
def net(bin_dir, bridge_name, tmp_path):
    octet = random.randint(0, 255)
    n = Network(name=unique("pwm-", 20), bridge=bridge_name, subnet4=f"10.{random.randint(100, 250)}.{octet}.0/24",
                subnet6=f"fd{random.randint(16, 255):02x}:{octet:x}::/64", data_dir=str(tmp_path / "ipam"),
                bin_dir=bin_dir)
    yield n
    from cni.context import STANDALONE
    from cni.plugin.gc import remove_stale_links
    remove_stale_links(STANDALONE, n.name, set())


def test_three_adds_and_a_del_read_three_and_one(daemon, net, netns_factory):
    url = daemon.health()["metrics"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url
    conf, via = net.conf(), {"extra_env": {"PODWIRE_CNID_SOCKET": daemon.socket}}
    pods = [(f"metrics{i}", netns_factory()) for i in range(3)]
    added = []
    try:
        for cid, ns in pods:
            code, out = net.run("ADD", conf, cid, ns, **via)
            assert code == 0, out
            added.append((cid, ns))
        assert net.run("DEL", conf, *added.pop(0), **via) == (0, None)
        m = scrape(url)
        assert total(m, "podwire_cni_operations_total", verb="ADD") == 3
        assert get(m, "podwire_cni_operations_total", plugin="podwire", verb="ADD", result="success") == 3
        assert total(m, "podwire_cni_operations_total", verb="DEL") == 1
        assert get(m, "podwire_cni_operations_total", plugin="podwire", verb="DEL", result="success") == 1
        assert get(m, "podwire_cni_operation_duration_seconds_count", plugin="podwire", verb="ADD") == 3
        assert get(m, "podwire_cni_operation_duration_seconds_count", plugin="podwire", verb="DEL") == 1
        assert get(m, "podwire_cni_operation_duration_seconds_bucket", plugin="podwire", verb="ADD", le="+Inf") == 3
        subnet = ipaddress.ip_network(net.subnet4)
        label = f"{subnet.network_address + 2}-{subnet.broadcast_address - 1}"  # .1 is the gateway
        assert len(net.leases()) == 2
        assert get(m, "podwire_cni_ipam_leases_in_use", network=net.name, range=label) == 2
        assert get(m, "podwire_cni_ipam_addresses_free", network=net.name, range=label) == 253 - 2
        deadline = time.monotonic() + 10
        while get(m, "podwire_cni_requests_in_flight") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the answer is out before the connection is closed
            m = scrape(url)
        assert get(m, "podwire_cni_requests_in_flight") == 0
    finally:
        for cid, ns in added:
            net.run("DEL", conf, cid, ns, **via)
    assert net.leases() == {}
    assert get(scrape(url), "podwire_cni_ipam_leases_in_use", network=net.name, range=label) == 0


def test_the_metrics_port_taken_leaves_the_daemon_serving(tmp_path, net, netns):
    first = Daemon(str(tmp_path / "a"), "--metrics-address", "127.0.0.1:0")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first.start()
    second = None
    try:
        address = first.health()["metrics"].split("//")[1].split("/")[0]
        second = Daemon(str(tmp_path / "b"), "--metrics-address", address).start()
        health = second.health()
        assert health["ready"] and health["metrics"].startswith(f"cannot listen on {address}"), health
        assert "cannot listen" in second.log()
        via = {"extra_env": {"PODWIRE_CNID_SOCKET": second.socket}}
        code, out = net.run("ADD", net.conf(), "taken1", netns, **via)
        assert code == 0, out
        assert net.run("DEL", net.conf(), "taken1", netns, **via) == (0, None)
    finally:
        for d in (second, first):
            if d is not None:
                d.stop()
