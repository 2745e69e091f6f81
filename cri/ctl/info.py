"""version, info, stats."""
from __future__ import annotations

import time

from cri_api.v1 import api_pb2 as api

from . import output
from .pods import _maybe_json


def add_parsers(sub) -> None:
    p = sub.add_parser("version", help="runtime version")
    p.add_argument("--output", "-o", default="", choices=["", "json", "yaml"])
    p.set_defaults(func=version)
    p = sub.add_parser("info", help="runtime status and configuration")
    p.add_argument("--output", "-o", default="json", choices=["json", "yaml"])
    p.set_defaults(func=info)
    p = sub.add_parser("stats", help="resource usage of containers")
    p.add_argument("ids", nargs="*")
    p.add_argument("--all", "-a", action="store_true", help="(kept for crictl compatibility)")
    p.add_argument("--id", default="")
    p.add_argument("--pod", "-p", default="")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--seconds", "-s", type=int, default=1, help="sample interval for CPU %%")
    p.add_argument("--output", "-o", default="table", choices=["table", "json", "yaml"])
    p.set_defaults(func=stats)


def version(c, opts) -> int:
    v = c.call(c.runtime.Version, api.VersionRequest())
    if opts.output:
        output.dump(output.to_obj(v), opts.output)
        return 0
    print(f"Version:  {v.version}\nRuntimeName:  {v.runtime_name}\n"
          f"RuntimeVersion:  {v.runtime_version}\nRuntimeApiVersion:  {v.runtime_api_version}")
    return 0


def info(c, opts) -> int:
    resp = c.call(c.runtime.Status, api.StatusRequest(verbose=True))
    obj = {"status": output.to_obj(resp.status)}
    obj.update({k: _maybe_json(v) for k, v in resp.info.items()})
    output.dump(obj, opts.output)
    return 0


def _list(c, opts):
    f = api.ContainerStatsFilter(id=(opts.ids[0] if len(opts.ids) == 1 else opts.id), pod_sandbox_id=opts.pod)
    output.label_selector(f.label_selector, opts.label)
    items = c.call(c.runtime.ListContainerStats, api.ListContainerStatsRequest(filter=f)).stats
    if len(opts.ids) > 1:
        items = [s for s in items if any(s.attributes.id.startswith(i) for i in opts.ids)]
    return items


def stats(c, opts) -> int:
    first = {s.attributes.id: s for s in _list(c, opts)}
    if opts.output != "table":
        output.dump({"stats": [output.to_obj(s) for s in first.values()]}, opts.output)
        return 0
    time.sleep(max(0, opts.seconds))
    rows = []
    for s in _list(c, opts):
        prev = first.get(s.attributes.id)
        cpu = 0.0
        if prev is not None and s.cpu.timestamp > prev.cpu.timestamp:
            used = s.cpu.usage_core_nano_seconds.value - prev.cpu.usage_core_nano_seconds.value
            cpu = 100.0 * used / (s.cpu.timestamp - prev.cpu.timestamp)
        rows.append([s.attributes.id[:13], s.attributes.metadata.name, f"{cpu:.2f}",
                     output.size(s.memory.working_set_bytes.value),
                     output.size(s.writable_layer.used_bytes.value), str(s.writable_layer.inodes_used.value)])
    output.table(["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"], rows)
    return 0
