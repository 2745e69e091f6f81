"""Services through the official client against the in-test API server (tests/kubestub.py):
list, then watch; the agent's frontends follow adds, changes and deletes."""
from __future__ import annotations

import ipaddress

from kubestub import KubeStub
from netpol.services import Frontend
from netpol.sources.kube import KubeSource
from netpoltest import fake_agent
from test_netpol_sources import wait_for

TCP, UDP = 6, 17


def service(name: str, ips: list[str], ports: list[dict], ns: str = "x", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ips[0], "clusterIPs": ips, "ports": ports, **spec}}


def test_services_from_the_api_server(tmp_path):
    agent, dp = fake_agent()
    with KubeStub() as api:
        api.put(service("kube-dns", ["10.96.0.10", "fd00:96::a"], [{"name": "dns", "protocol": "UDP", "port": 53}],
                        ns="kube-system"))
        source = KubeSource.from_config(agent, kubeconfig=api.kubeconfig(str(tmp_path / "kubeconfig")))
        source.backoff = 0.1
        source.start()
        try:
            dns4 = Frontend(ipaddress.ip_address("10.96.0.10"), 53, UDP)
            assert wait_for(lambda: dns4 in dp.maps.services and len(dp.maps.services) == 2, 10)
            api.put(service("web", ["10.96.7.1"], [{"port": 80, "nodePort": 30080}], type="NodePort"))
            assert wait_for(lambda: Frontend(None, 30080, TCP) in dp.maps.services, 10)
            api.put(service("web", ["10.96.7.1"], [{"port": 81}]))
            assert wait_for(lambda: Frontend(None, 30080, TCP) not in dp.maps.services
                            and Frontend(ipaddress.ip_address("10.96.7.1"), 81, TCP) in dp.maps.services, 10)
            api.delete("services", "kube-system", "kube-dns")
            assert wait_for(lambda: agent.service_keys() == ["x/web"] and dns4 not in dp.maps.services, 10)
        finally:
            source.stop()
