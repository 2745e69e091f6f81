"""The gRPC front end: thin handlers over Agent, and the one place errors become status codes."""
from __future__ import annotations

import logging
import queue
from concurrent import futures

import grpc

from cni import unixsock
from proto import boundary
from proto import netpol_pb2 as pb
from proto import netpol_pb2_grpc as pb_grpc

from .. import errors
from . import convert
from .core import Agent

log = logging.getLogger("podwire.netpol")

STATUS_OF = {
    errors.InvalidPolicy: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DatapathError: grpc.StatusCode.INTERNAL,
}


def status_of(exc: BaseException) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def _abort(context, exc: Exception) -> None:
    if not isinstance(exc, errors.NetpolError):
        log.exception("unexpected error in an RPC")
    context.abort(status_of(exc), str(exc) or type(exc).__name__)


def rpc(method):
    """The error boundary: typed errors -> status codes, for unary and streaming handlers."""
    return boundary.guarded(method, _abort)


class NetpolServicer(pb_grpc.NetpolAgentServicer):
    def __init__(self, agent: Agent):
        self.agent = agent

    @rpc
    def UpsertEndpoint(self, request, context):
        fields = set(request.update_mask.paths) or None
        return convert.endpoint_message(self.agent.upsert_endpoint(convert.pod_of(request.endpoint), fields))

    @rpc
    def RemoveEndpoint(self, request, context):
        return pb.RemoveEndpointResponse(removed=self.agent.remove_endpoint(request.namespace, request.name,
                                                                             request.interface))

    @rpc
    def ListEndpoints(self, request, context):
        return pb.ListEndpointsResponse(endpoints=[convert.endpoint_message(v) for v in self.agent.endpoints()])

    @rpc
    def SetNamespace(self, request, context):
        self.agent.set_namespace(request.namespace.name, dict(request.namespace.labels))
        return request.namespace

    @rpc
    def RemoveNamespace(self, request, context):
        self.agent.remove_namespace(request.name)
        return pb.RemoveNamespaceResponse()

    @rpc
    def ListNamespaces(self, request, context):
        return pb.ListNamespacesResponse(namespaces=[pb.Namespace(name=n, labels=labels)
                                                     for n, labels in sorted(self.agent.namespaces().items())])

    @rpc
    def ApplyPolicies(self, request, context):
        results = self.agent.apply(request.manifest, request.source or "cli", request.default_namespace,
                                   request.dry_run, request.prune)
        return pb.ApplyPoliciesResponse(results=convert.results_message(results))

    @rpc
    def DeletePolicies(self, request, context):
        results = self.agent.delete(request.namespace, list(request.names), request.all, request.manifest,
                                    request.ignore_not_found)
        return pb.DeletePoliciesResponse(results=convert.results_message(results))

    @rpc
    def ListPolicies(self, request, context):
        return pb.ListPoliciesResponse(policies=[convert.policy_message(v)
                                                 for v in self.agent.policies(request.namespace)])

    @rpc
    def StreamDrops(self, request, context):
        recent, q = self.agent.drops.follow(request.recent or 100, subscribe=request.follow)
        try:
            for view in recent:
                yield convert.drop_message(view)
            while q is not None and context.is_active():
                try:
                    yield convert.drop_message(q.get(timeout=0.5))
                except queue.Empty:
                    continue
        finally:
            if q is not None:
                self.agent.drops.unsubscribe(q)

    @rpc
    def GetStats(self, request, context):
        return convert.stats_message(self.agent.stats())


def create_server(agent: Agent, address: str, max_workers: int = 16) -> tuple[grpc.Server, int]:
    """Build (not start) the server; ``address`` like "unix:/run/podwire/netpol.sock" or "[::]:0"."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="netpol-rpc"))
    pb_grpc.add_NetpolAgentServicer_to_server(NetpolServicer(agent), server)
    if address.startswith("unix:"):
        remove_stale_socket(unix_path(address))
    port = server.add_insecure_port(address)
    return server, port


def unix_path(address: str) -> str:
    """The file of a "unix:/path" or "unix:///path" address."""
    return "/" + address[len("unix:"):].lstrip("/")


def remove_stale_socket(path: str) -> None:
    """A socket file nobody listens on is a leftover of a crash; one in use is another agent."""
    try:
        unixsock.clear_stale(path)
    except unixsock.SocketInUse:
        raise errors.FailedPrecondition(f"another agent is serving on {path}") from None
