"""runp, stopp, rmp, pods, inspectp."""
from __future__ import annotations

import json
import sys

from cri_api.v1 import api_pb2 as api

from . import output
from .configs import pod_config

STATES = {api.SANDBOX_READY: "Ready", api.SANDBOX_NOTREADY: "NotReady"}
STATE_ARGS = {"ready": api.SANDBOX_READY, "notready": api.SANDBOX_NOTREADY}


def add_parsers(sub) -> None:
    p = sub.add_parser("runp", help="run a new pod sandbox")
    p.add_argument("config", help="pod-config.json|yaml")
    p.add_argument("--runtime", "-r", default="", help="runtime handler")
    p.set_defaults(func=runp)
    p = sub.add_parser("stopp", help="stop one or more pod sandboxes")
    p.add_argument("ids", nargs="+")
    p.set_defaults(func=stopp)
    p = sub.add_parser("rmp", help="remove one or more pod sandboxes")
    p.add_argument("ids", nargs="*")
    p.add_argument("--all", "-a", action="store_true", help="remove all pods")
    p.add_argument("--force", "-f", action="store_true", help="stop running pods first (always done)")
    p.set_defaults(func=rmp)
    p = sub.add_parser("pods", help="list pod sandboxes")
    p.add_argument("--id", default="")
    p.add_argument("--name", default="", help="filter by pod name (substring)")
    p.add_argument("--namespace", default="", help="filter by namespace (substring)")
    p.add_argument("--label", action="append", default=[], help="key=value")
    p.add_argument("--state", "-s", default="", choices=["", "ready", "notready"])
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--latest", "-l", action="store_true")
    p.add_argument("--last", "-n", type=int, default=0)
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--output", "-o", default="table", choices=["table", "json", "yaml"])
    p.set_defaults(func=pods)
    p = sub.add_parser("inspectp", help="status of one or more pod sandboxes")
    p.add_argument("ids", nargs="+")
    p.add_argument("--output", "-o", default="json", choices=["json", "yaml", "table"])
    p.set_defaults(func=inspectp)


def runp(c, opts) -> int:
    cfg = pod_config(opts.config)
    resp = c.call(c.runtime.RunPodSandbox,
                  api.RunPodSandboxRequest(config=cfg, runtime_handler=opts.runtime))
    print(resp.pod_sandbox_id)
    return 0


def stopp(c, opts) -> int:
    for id_ in opts.ids:
        c.call(c.runtime.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=id_))
        print(f"Stopped sandbox {id_}")
    return 0


def rmp(c, opts) -> int:
    ids = list(opts.ids)
    if opts.all:
        ids = [p.id for p in c.call(c.runtime.ListPodSandbox, api.ListPodSandboxRequest()).items]
    if not ids:
        print("podwire-ctl rmp: give pod ids or --all", file=sys.stderr)
        return 1
    for id_ in ids:
        c.call(c.runtime.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=id_))
        print(f"Removed sandbox {id_}")
    return 0


def list_pods(c, opts) -> list:
    f = api.PodSandboxFilter(id=opts.id)
    if opts.state:
        f.state.state = STATE_ARGS[opts.state]
    output.label_selector(f.label_selector, opts.label)
    items = c.call(c.runtime.ListPodSandbox, api.ListPodSandboxRequest(filter=f)).items
    items = [p for p in items if opts.name in p.metadata.name and opts.namespace in p.metadata.namespace]
    return output.newest(items, opts)


def pods(c, opts) -> int:
    items = list_pods(c, opts)
    if output.ids_or_dump(items, opts, "items"):
        return 0
    rows = [[output.truncate(p.id, opts.no_trunc), output.ago(p.created_at), STATES.get(p.state, "?"),
             p.metadata.name, p.metadata.namespace, str(p.metadata.attempt), p.runtime_handler or "(default)"]
            for p in items]
    output.table(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"], rows)
    return 0


def inspectp(c, opts) -> int:
    for id_ in opts.ids:
        resp = c.call(c.runtime.PodSandboxStatus,
                      api.PodSandboxStatusRequest(pod_sandbox_id=id_, verbose=True))
        if opts.output == "table":
            st = resp.status
            ips = [st.network.ip] + [x.ip for x in st.network.additional_ips]
            output.table(["POD ID", "NAME", "NAMESPACE", "STATE", "IP"],
                         [[st.id, st.metadata.name, st.metadata.namespace, STATES.get(st.state, "?"),
                           ",".join(filter(None, ips))]])
            continue
        obj = {"status": output.to_obj(resp.status)}
        obj.update({k: _maybe_json(v) for k, v in resp.info.items()})
        output.dump(obj, opts.output)
    return 0


def _maybe_json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text
