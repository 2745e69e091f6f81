"""A small client for the agent's gRPC API (the CLI and tests use it; so can the CRI shim)."""
from __future__ import annotations

from typing import Iterator, Optional

import grpc
from google.protobuf import field_mask_pb2

from proto import netpol_pb2 as pb
from proto import netpol_pb2_grpc as pb_grpc

from . import paths

DEFAULT_SOCKET = paths.SOCKET


class Client:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = 30.0):
        target = socket_path if ":" in socket_path.split("/")[0] else f"unix:{socket_path}"
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.NetpolAgentStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_ready(self, timeout: float) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def apply(self, manifest: str, source: str = "cli", namespace: str = "", dry_run: bool = False,
              prune: bool = False) -> list[pb.PolicyResult]:
        req = pb.ApplyPoliciesRequest(manifest=manifest, source=source, default_namespace=namespace,
                                      dry_run=dry_run, prune=prune)
        return list(self.stub.ApplyPolicies(req, timeout=self.timeout).results)

    def delete(self, namespace: str = "", names: tuple[str, ...] = (), all: bool = False, manifest: str = "",
               ignore_not_found: bool = False) -> list[pb.PolicyResult]:
        req = pb.DeletePoliciesRequest(namespace=namespace, names=list(names), all=all, manifest=manifest,
                                       ignore_not_found=ignore_not_found)
        return list(self.stub.DeletePolicies(req, timeout=self.timeout).results)

    def policies(self, namespace: str = "") -> list[pb.Policy]:
        return list(self.stub.ListPolicies(pb.ListPoliciesRequest(namespace=namespace), timeout=self.timeout).policies)

    def upsert_endpoint(self, namespace: str, name: str, labels: Optional[dict] = None, ips: tuple = (),
                        interface: str = "", ports: tuple = (), fields: tuple[str, ...] = ()) -> pb.Endpoint:
        """``ports``: (name, protocol, port) triples; ``fields``: update only these (see the proto)."""
        ep = pb.Endpoint(namespace=namespace, name=name, labels=labels or {}, ips=list(ips), interface=interface,
                         ports=[pb.NamedPort(name=n, protocol=p, port=num) for n, p, num in ports])
        req = pb.UpsertEndpointRequest(endpoint=ep, update_mask=field_mask_pb2.FieldMask(paths=list(fields)))
        return self.stub.UpsertEndpoint(req, timeout=self.timeout)

    def remove_endpoint(self, namespace: str = "", name: str = "", interface: str = "") -> bool:
        req = pb.RemoveEndpointRequest(namespace=namespace, name=name, interface=interface)
        return self.stub.RemoveEndpoint(req, timeout=self.timeout).removed

    def endpoints(self) -> list[pb.Endpoint]:
        return list(self.stub.ListEndpoints(pb.ListEndpointsRequest(), timeout=self.timeout).endpoints)

    def set_namespace(self, name: str, labels: dict) -> None:
        self.stub.SetNamespace(pb.SetNamespaceRequest(namespace=pb.Namespace(name=name, labels=labels)),
                               timeout=self.timeout)

    def drops(self, recent: int = 100, follow: bool = False, timeout: Optional[float] = None) -> Iterator[pb.DropEvent]:
        return self.stub.StreamDrops(pb.StreamDropsRequest(recent=recent, follow=follow),
                                     timeout=timeout if follow else self.timeout)

    def stats(self) -> pb.Stats:
        return self.stub.GetStats(pb.GetStatsRequest(), timeout=self.timeout)
