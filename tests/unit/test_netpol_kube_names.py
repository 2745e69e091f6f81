"""Objects as a real cluster may hold them, through the official client and the API stub:
names at their length limits (a 63-character namespace, 253-character pod and policy names
with dots), prefixed label keys, label values with capitals, dots and underscores, a pod with
no labels at all and one with only the old single `podIP`.  The agent must take every one of
them as the API server did, and judge by them exactly."""
from __future__ import annotations

from kubestub import KubeStub, namespace, network_policy, pod
from netpol.compiler.entries import DIR_INGRESS
from netpol.compiler.simulate import Simulator
from netpol.evaluator import Flow
from netpol.model import Pod
from netpol.sources.kube import KubeSource
from netpoltest import fake_agent
from test_netpol_sources import wait_for

NS = "n" + "-long" * 12 + "-x"                       # 63 characters, the DNS label limit
SERVER = ("web." * 62 + "server")[:253]              # 253: the DNS subdomain limit, with dots
CLIENT = "Client".lower() + "-" + "c" * 240          # pod names are lowercase subdomains
POLICY = ("allow." * 43)[:252] + "x"                 # 253
TIER = "tier.example.com/Role_Name"                  # prefixed key, capitals and _ in the name part
VALUE = "Front_End.V2-" + "Z" * 50                   # 63: a label value's limit, capitals allowed


def test_long_names_and_unusual_labels_are_taken_as_the_api_server_takes_them(tmp_path):
    assert (len(NS), len(SERVER), len(POLICY), len(VALUE)) == (63, 253, 253, 63)
    agent, dp = fake_agent(interfaces={"veth-server": 7})
    with KubeStub() as api:
        api.put(namespace(NS, {"team.example.com/Owner": "Ops_Team"}))
        api.put(pod(NS, CLIENT, {TIER: VALUE}, ["10.9.0.21", "fd09::21"]))
        plain = pod(NS, "nolabels", None, ["10.9.0.22"])
        del plain["metadata"]["labels"]                  # absent, not empty
        api.put(plain)
        old = pod(NS, "old-client", {TIER: VALUE}, [])
        old["status"]["podIP"] = "10.9.0.23"              # no podIPs: what old kubelets reported
        api.put(old)
        api.put(network_policy(NS, POLICY, {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                {"key": TIER, "operator": "In", "values": [VALUE, "other"]}]},
                "namespaceSelector": {"matchLabels": {"team.example.com/Owner": "Ops_Team"}}}],
                "ports": [{"port": 80}]}]}))
        agent.upsert_endpoint(Pod(NS, SERVER, (("app", "web"),), ("10.9.0.20", "fd09::20"), interface="veth-server"))
        source = KubeSource.from_config(agent, kubeconfig=api.kubeconfig(str(tmp_path / "kubeconfig")))
        source.backoff = 0.1
        source.start()
        try:
            assert wait_for(lambda: agent.policy_keys() == [f"{NS}/{POLICY}"]
                            and {f"{NS}/{CLIENT}", f"{NS}/nolabels", f"{NS}/old-client"}
                            <= {v.pod.key for v in agent.endpoints()}, 10)
            assert agent.endpoint(f"{NS}/{SERVER}").ingress_isolated
            sim = Simulator(dp.maps)
            for src, allowed in (("10.9.0.21", True), ("fd09::21", True), ("10.9.0.23", True),
                                 ("10.9.0.22", False)):
                dst = "fd09::20" if ":" in src else "10.9.0.20"
                assert sim.verdict(7, DIR_INGRESS, Flow(src, dst, "TCP", 80)) is allowed, src
                assert not sim.verdict(7, DIR_INGRESS, Flow(src, dst, "TCP", 81)), src
            # The value differs only in case: another value, as for the API server's selectors.
            api.put(pod(NS, CLIENT, {TIER: VALUE.lower()}, ["10.9.0.21", "fd09::21"]))
            assert wait_for(lambda: not Simulator(dp.maps).verdict(7, DIR_INGRESS,
                                                                   Flow("10.9.0.21", "10.9.0.20", "TCP", 80)), 10)
        finally:
            source.stop()
