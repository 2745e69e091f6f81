"""The client verbs of `podwire-netpol` (everything but `serve`)."""
from __future__ import annotations

import datetime
import json
import os
import sys

import yaml
from google.protobuf.json_format import MessageToDict

from .client import Client

KIND = "networkpolicy.networking.k8s.io"
KINDS = {"service": "service"}  # PolicyResult.kind -> what kubectl prints; default KIND


def _read(sources: list[str]) -> list[tuple[str, str]]:
    out = []
    for src in sources:
        if src == "-":
            out.append(("<stdin>", sys.stdin.read()))
        elif os.path.isdir(src):
            for name in sorted(os.listdir(src)):
                if name.endswith((".yaml", ".yml", ".json")):
                    with open(os.path.join(src, name)) as f:
                        out.append((os.path.join(src, name), f.read()))
        else:
            with open(src) as f:
                out.append((src, f.read()))
    return out


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def format_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def dump(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def run(opts) -> int:
    with Client(opts.socket) as client:
        return VERBS[opts.command](client, opts)


def apply(client: Client, opts) -> int:
    for _source, text in _read(opts.filename):
        for r in client.apply(text, source="cli", namespace=opts.namespace, dry_run=opts.dry_run):
            suffix = " (dry run)" if opts.dry_run else ""
            print(f"{KINDS.get(r.kind, KIND)}/{r.name} {r.action}{suffix}")
    return 0


def delete(client: Client, opts) -> int:
    results = []
    if opts.names or opts.all:
        results += client.delete(opts.namespace, tuple(opts.names), opts.all, ignore_not_found=opts.ignore_not_found)
    for _, text in _read(opts.filename):
        results += client.delete(opts.namespace, manifest=text, ignore_not_found=opts.ignore_not_found)
    for r in results:
        print(f'{KINDS.get(r.kind, KIND)} "{r.name}" deleted')
    return 0


def list_policies(client: Client, opts) -> int:
    namespace = "" if opts.all_namespaces else opts.namespace
    policies = client.policies(namespace)
    if opts.output != "table":
        items = [json.loads(p.manifest) for p in policies]
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        print(dump(doc) if opts.output == "json" else yaml.safe_dump(doc, sort_keys=False), end="\n")
        return 0
    rows = [["NAMESPACE", "NAME", "POLICY-TYPES", "SOURCE", "SELECTED-PODS"]]
    rows += [[p.namespace, p.name, ",".join(p.policy_types), p.source, ",".join(p.selected_pods) or "<none>"]
             for p in policies]
    print(_table(rows) if policies else "No resources found.")
    return 0


def drops(client: Client, opts) -> int:
    rows = [["TIME", "SOURCE", "DESTINATION", "PROTO", "PORT", "DIRECTION", "ISOLATED-POD", "REASON"]]
    header_done = False
    for ev in client.drops(opts.recent, opts.follow):
        if opts.output == "json":
            print(json.dumps(MessageToDict(ev, preserving_proto_field_name=True)), flush=True)
            continue
        row = [format_time(ev.time), _end(ev.src_pod, ev.src_ip, ev.src_port), _end(ev.dst_pod, ev.dst_ip, 0),
               ev.protocol, str(ev.dst_port), ev.direction, ev.isolated_pod or "-", ev.reason]
        if opts.follow:  # stream: no column alignment, one line per drop as it happens
            if not header_done:
                print("\t".join(rows[0]), flush=True)
                header_done = True
            print("\t".join(row), flush=True)
        else:
            rows.append(row)
    if not opts.follow and opts.output == "table":
        print(_table(rows) if len(rows) > 1 else "No drops.")
    return 0


def _end(pod: str, ip: str, port: int) -> str:
    where = f"{ip}:{port}" if port else ip
    return f"{pod} ({where})" if pod else where


def stats(client: Client, opts) -> int:
    s = client.stats()
    if opts.output == "json":
        print(dump(MessageToDict(s, preserving_proto_field_name=True)))
        return 0
    rows = [["POD", "IN-ALLOWED", "IN-DENIED", "OUT-ALLOWED", "OUT-DENIED"]]
    rows += [[e.pod, _c(e.ingress_allowed), _c(e.ingress_denied), _c(e.egress_allowed), _c(e.egress_denied)]
             for e in s.endpoints]
    print(_table(rows), end="\n\n")
    rows = [["POLICY", "ENTRIES", "ALLOWED"]]
    rows += [[f"{p.namespace}/{p.name}", str(p.entries), _c(p.allowed)] for p in s.policies]
    print(_table(rows), end="\n\n")
    rows = [["VERDICT", "DIRECTION", "PACKETS", "BYTES"]]
    rows += [[v.reason, v.direction, str(v.counter.packets), str(v.counter.bytes)] for v in s.verdicts]
    print(_table(rows))
    print(f"\nallow entries: {s.policy_entries}   ipcache prefixes: {s.ipcache_entries}   "
          f"drop events suppressed: {s.events_suppressed}")
    print(f"service traffic: {s.service_enforcement or 'unknown'}   service frontends: {s.service_frontends}")
    return 0


def _c(counter) -> str:
    return f"{counter.packets} pkts / {counter.bytes} B"


def endpoints(client: Client, opts) -> int:
    rows = [["POD", "ID", "INTERFACE", "IPS", "ISOLATED", "LABELS"]]
    for e in client.endpoints():
        isolated = ",".join(d for d, on in (("ingress", e.ingress_isolated), ("egress", e.egress_isolated)) if on)
        rows.append([f"{e.namespace}/{e.name}", str(e.endpoint_id or "-"), e.interface or "-", ",".join(e.ips),
                     isolated or "-", ",".join(f"{k}={v}" for k, v in sorted(e.labels.items()))])
    print(_table(rows))
    return 0


VERBS = {"apply": apply, "delete": delete, "list": list_policies, "drops": drops, "stats": stats,
         "endpoints": endpoints}
