"""create, start, stop, rm, ps, inspect (exec is in streaming.py)."""
from __future__ import annotations

import sys

from cri_api.v1 import api_pb2 as api

from . import output
from .configs import container_config, pod_config
from .pods import _maybe_json

STATES = {api.CONTAINER_CREATED: "Created", api.CONTAINER_RUNNING: "Running",
          api.CONTAINER_EXITED: "Exited", api.CONTAINER_UNKNOWN: "Unknown"}
STATE_ARGS = {"created": api.CONTAINER_CREATED, "running": api.CONTAINER_RUNNING,
              "exited": api.CONTAINER_EXITED, "unknown": api.CONTAINER_UNKNOWN}


def add_parsers(sub) -> None:
    p = sub.add_parser("create", help="create a container in a pod sandbox")
    p.add_argument("pod_id")
    p.add_argument("container_config")
    p.add_argument("pod_config")
    p.add_argument("--no-pull", action="store_true", help="do not pull the image if it is missing")
    p.add_argument("--with-pull", action="store_true", help="(default) pull the image if it is missing")
    p.set_defaults(func=create)
    for verb, helptext in (("start", "start one or more created containers"),):
        p = sub.add_parser(verb, help=helptext)
        p.add_argument("ids", nargs="+")
        p.set_defaults(func=start)
    p = sub.add_parser("stop", help="stop one or more running containers")
    p.add_argument("ids", nargs="+")
    p.add_argument("--timeout", "-t", type=int, default=0, help="seconds to wait before killing")
    p.set_defaults(func=stop)
    p = sub.add_parser("rm", help="remove one or more containers")
    p.add_argument("ids", nargs="*")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--force", "-f", action="store_true", help="stop running containers first")
    p.set_defaults(func=rm)
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("--all", "-a", action="store_true", help="show all containers, not only running ones")
    p.add_argument("--id", default="")
    p.add_argument("--pod", "-p", default="")
    p.add_argument("--name", default="", help="filter by container name (substring)")
    p.add_argument("--image", default="", help="filter by image (substring)")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--state", "-s", default="", choices=["", *STATE_ARGS])
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--latest", "-l", action="store_true")
    p.add_argument("--last", "-n", type=int, default=0)
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--output", "-o", default="table", choices=["table", "json", "yaml"])
    p.set_defaults(func=ps)
    p = sub.add_parser("inspect", help="status of one or more containers")
    p.add_argument("ids", nargs="+")
    p.add_argument("--output", "-o", default="json", choices=["json", "yaml", "table"])
    p.set_defaults(func=inspect)


def create(c, opts) -> int:
    ccfg = container_config(opts.container_config)
    pcfg = pod_config(opts.pod_config)
    if not opts.no_pull:
        from .images import ensure_image
        ensure_image(c, ccfg.image.image, pcfg)
    resp = c.call(c.runtime.CreateContainer, api.CreateContainerRequest(
        pod_sandbox_id=opts.pod_id, config=ccfg, sandbox_config=pcfg))
    print(resp.container_id)
    return 0


def start(c, opts) -> int:
    for id_ in opts.ids:
        c.call(c.runtime.StartContainer, api.StartContainerRequest(container_id=id_))
        print(id_)
    return 0


def stop(c, opts) -> int:
    for id_ in opts.ids:
        c.call(c.runtime.StopContainer, api.StopContainerRequest(container_id=id_, timeout=opts.timeout),
               timeout=opts.timeout + 30)
        print(id_)
    return 0


def rm(c, opts) -> int:
    ids = list(opts.ids)
    if opts.all:
        ids = [x.id for x in c.call(c.runtime.ListContainers, api.ListContainersRequest()).containers]
    if not ids:
        print("podwire-ctl rm: give container ids or --all", file=sys.stderr)
        return 1
    for id_ in ids:
        st = c.call(c.runtime.ContainerStatus, api.ContainerStatusRequest(container_id=id_)).status
        if st.state == api.CONTAINER_RUNNING:
            if not opts.force:
                print(f"container {id_} is running, stop it first or use --force", file=sys.stderr)
                return 1
            c.call(c.runtime.StopContainer, api.StopContainerRequest(container_id=id_, timeout=0))
        c.call(c.runtime.RemoveContainer, api.RemoveContainerRequest(container_id=id_))
        print(id_)
    return 0


def list_containers(c, opts) -> list:
    f = api.ContainerFilter(id=opts.id, pod_sandbox_id=opts.pod)
    if opts.state:
        f.state.state = STATE_ARGS[opts.state]
    elif not opts.all and not opts.id:
        f.state.state = api.CONTAINER_RUNNING
    output.label_selector(f.label_selector, opts.label)
    items = c.call(c.runtime.ListContainers, api.ListContainersRequest(filter=f)).containers
    items = [x for x in items if opts.name in x.metadata.name and opts.image in x.image.image]
    return output.newest(items, opts)


def ps(c, opts) -> int:
    items = list_containers(c, opts)
    if output.ids_or_dump(items, opts, "containers"):
        return 0
    pod_names = {p.id: p.metadata.name
                 for p in c.call(c.runtime.ListPodSandbox, api.ListPodSandboxRequest()).items}
    rows = [[output.truncate(x.id, opts.no_trunc), _image(x.image_ref or x.image.image, opts.no_trunc),
             output.ago(x.created_at), STATES.get(x.state, "?"), x.metadata.name, str(x.metadata.attempt),
             output.truncate(x.pod_sandbox_id, opts.no_trunc), pod_names.get(x.pod_sandbox_id, "unknown")]
            for x in items]
    output.table(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"], rows)
    return 0


def _image(ref: str, no_trunc: bool) -> str:
    if ref.startswith("sha256:") and not no_trunc:
        return ref[7:20]
    return ref


def inspect(c, opts) -> int:
    for id_ in opts.ids:
        resp = c.call(c.runtime.ContainerStatus, api.ContainerStatusRequest(container_id=id_, verbose=True))
        st = resp.status
        if opts.output == "table":
            output.table(["CONTAINER", "NAME", "STATE", "EXIT CODE", "REASON"],
                         [[st.id, st.metadata.name, STATES.get(st.state, "?"), str(st.exit_code), st.reason]])
            continue
        obj = {"status": output.to_obj(st)}
        obj.update({k: _maybe_json(v) for k, v in resp.info.items()})
        output.dump(obj, opts.output)
    return 0

