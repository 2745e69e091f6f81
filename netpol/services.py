"""Services, as far as policy enforcement needs them: their frontends.

A frontend is an (address, port, protocol) that kube-proxy DNATs to a backend:
each ClusterIP (both families) and external IP with each service port, and each
NodePort on any address (``addr`` None).  The datapath defers the egress check
of a packet to a frontend until after DNAT (netpol/bpf/lib/services.h); the
verdict itself never depends on the Service, only on the backend kube-proxy
picked, so the reference evaluator knows nothing of Services and needs none.
Endpoints (EndpointSlices) are not needed: kube-proxy's choice is read from the
packet itself.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Iterable, NamedTuple, Optional

from .errors import InvalidPolicy
from .model import PROTO_NUMBERS, PROTOCOLS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Frontend(NamedTuple):
    addr: Optional[IPAddress]  # None: a NodePort, on every address
    port: int
    proto: int


@dataclasses.dataclass(frozen=True)
class ServicePort:
    protocol: str
    port: int
    node_port: int = 0


@dataclasses.dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def frontends(self) -> set[Frontend]:
        out: set[Frontend] = set()
        addrs = [ipaddress.ip_address(a) for a in (*self.cluster_ips, *self.external_ips)]
        for p in self.ports:
            proto = PROTO_NUMBERS[p.protocol]
            out.update(Frontend(a, p.port, proto) for a in addrs)
            if p.node_port:
                out.add(Frontend(None, p.node_port, proto))
        return out


def frontends(services: Iterable[Service]) -> frozenset[Frontend]:
    out: set[Frontend] = set()
    for svc in services:
        out |= svc.frontends()
    return frozenset(out)


def service_from_object(obj: dict, default_namespace: str = "default") -> Service:
    """A v1 Service object (as the API serves it, or from a manifest) -> Service."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    name = meta.get("name")
    if not name:
        raise InvalidPolicy('Service "" is invalid: metadata.name: Required value')
    where = f'Service "{name}" is invalid'
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    external = list(spec.get("externalIPs") or [])
    for ip in (*ips, *external):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidPolicy(f"{where}: spec.clusterIPs: Invalid value: {ip!r}: must be a valid IP address") \
                from None
    ports = []
    for i, p in enumerate(spec.get("ports") or []):
        protocol = p.get("protocol") or "TCP"
        port, node_port = p.get("port"), p.get("nodePort") or 0
        if protocol not in PROTOCOLS:
            raise InvalidPolicy(f'{where}: spec.ports[{i}].protocol: Unsupported value: "{protocol}"')
        if not isinstance(port, int) or not 0 < port < 65536 or not isinstance(node_port, int) \
                or not 0 <= node_port < 65536:
            raise InvalidPolicy(f"{where}: spec.ports[{i}].port: Invalid value: {port!r}")
        ports.append(ServicePort(protocol, port, node_port))
    return Service(meta.get("namespace") or default_namespace, name, tuple(ips), tuple(external), tuple(ports))


def service_to_dict(svc: Service) -> dict:
    return {"namespace": svc.namespace, "name": svc.name, "cluster_ips": list(svc.cluster_ips),
            "external_ips": list(svc.external_ips), "ports": [dataclasses.asdict(p) for p in svc.ports]}


def service_from_dict(raw: dict) -> Service:
    return Service(raw["namespace"], raw["name"], tuple(raw.get("cluster_ips", [])),
                   tuple(raw.get("external_ips", [])), tuple(ServicePort(**p) for p in raw.get("ports", [])))
