"""proto messages <-> model and view objects (no logic beyond field mapping)."""
from __future__ import annotations


from proto import netpol_pb2 as pb

from ..model import NamedPort, Pod
from .views import DropView, EndpointView, PolicyResult, PolicyView, StatsView


def pod_of(msg: pb.Endpoint) -> Pod:
    return Pod(namespace=msg.namespace, name=msg.name, labels=tuple(sorted(msg.labels.items())),
               ips=tuple(msg.ips), interface=msg.interface, container_id=msg.container_id,
               ports=tuple(NamedPort(p.name, p.protocol or "TCP", p.port) for p in msg.ports))


def endpoint_message(view: EndpointView) -> pb.Endpoint:
    pod = view.pod
    return pb.Endpoint(namespace=pod.namespace, name=pod.name, labels=dict(pod.labels), ips=list(pod.ips),
                       interface=pod.interface, container_id=pod.container_id,
                       ports=[pb.NamedPort(name=p.name, protocol=p.protocol, port=p.port) for p in pod.ports],
                       endpoint_id=view.ep_id, ingress_isolated=view.ingress_isolated,
                       egress_isolated=view.egress_isolated)


def results_message(results: list[PolicyResult]) -> list[pb.PolicyResult]:
    return [pb.PolicyResult(namespace=r.namespace, name=r.name, action=r.action, kind=r.kind) for r in results]


def policy_message(view: PolicyView) -> pb.Policy:
    rec = view.record
    return pb.Policy(namespace=rec.policy.namespace, name=rec.policy.name, source=rec.source,
                     manifest=rec.manifest,
                     policy_types=sorted(rec.policy.policy_types), selected_pods=view.selected)


def drop_message(view: DropView) -> pb.DropEvent:
    return pb.DropEvent(**{f: getattr(view, f) for f in pb.DropEvent.DESCRIPTOR.fields_by_name})


def _counter(pair) -> pb.Counter:
    return pb.Counter(packets=pair[0], bytes=pair[1])


def stats_message(view: StatsView) -> pb.Stats:
    return pb.Stats(
        endpoints=[pb.EndpointStats(pod=pod, endpoint_id=ep_id, ingress_allowed=_counter(c.ingress_allowed),
                                    ingress_denied=_counter(c.ingress_denied),
                                    egress_allowed=_counter(c.egress_allowed),
                                    egress_denied=_counter(c.egress_denied))
                   for pod, ep_id, c in view.endpoints],
        policies=[pb.PolicyStats(namespace=key.split("/", 1)[0], name=key.split("/", 1)[1], allowed=_counter(pair),
                                 entries=entries) for key, pair, entries in view.policies],
        verdicts=[pb.VerdictStats(reason=r, direction=d, counter=_counter(pair)) for r, d, pair in view.verdicts],
        policy_entries=view.policy_entries, ipcache_entries=view.ipcache_entries,
        events_suppressed=view.events_suppressed, service_enforcement=view.service_enforcement,
        service_frontends=view.service_frontends)
