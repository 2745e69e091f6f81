"""Records -> CRI messages, shared by the Status, List and event RPCs."""
from __future__ import annotations

import json

from cri_api.v1 import api_pb2 as api
from google.protobuf import json_format

from . import image_volumes
from ..store.records import (CTR_STATE_TO_PROTO, POD_READY, POD_STATE_TO_PROTO, ContainerRecord,
                             PodRecord)


def pod_sandbox(pod: PodRecord) -> api.PodSandbox:
    c = pod.config
    return api.PodSandbox(id=pod.id, metadata=c.metadata, state=POD_STATE_TO_PROTO[pod.state],
                          created_at=pod.created_at, labels=c.labels, annotations=c.annotations,
                          runtime_handler=pod.runtime_handler)


def pod_status(pod: PodRecord) -> api.PodSandboxStatus:
    c = pod.config
    status = api.PodSandboxStatus(
        id=pod.id, metadata=c.metadata, state=POD_STATE_TO_PROTO[pod.state], created_at=pod.created_at,
        labels=c.labels, annotations=c.annotations, runtime_handler=pod.runtime_handler)
    # The pod IP reaches the API server only through here; none for hostNetwork pods
    # (the kubelet uses the node's) and none once the network is torn down.
    if pod.ips and pod.state == POD_READY:
        status.network.ip = pod.ips[0]
        status.network.additional_ips.extend(api.PodIP(ip=ip) for ip in pod.ips[1:])
    ns = c.linux.security_context.namespace_options
    status.linux.namespaces.options.CopyFrom(ns)
    return status


def pod_info(pod: PodRecord) -> dict[str, str]:
    """The verbose ``info`` map: one JSON document under "info", like containerd."""
    return {"info": json.dumps({
        "id": pod.id, "name": pod.name, "netns": pod.netns, "ipc": pod.ipc_ns, "uts": pod.uts_ns,
        "pidNamespace": pod.pid_ns, "network": pod.network, "ips": list(pod.ips),
        "podDir": pod.pod_dir, "runtimeHandler": pod.runtime_handler,
        # The last UpdatePodSandboxResources, as containerd's "updated-resources".
        "updatedResources": {"overhead": pod.overhead, "resources": pod.resources},
        "config": _dict(pod.config)}, sort_keys=True)}


def container(c: ContainerRecord) -> api.Container:
    return api.Container(
        id=c.id, pod_sandbox_id=c.pod_id, metadata=c.config.metadata,
        image=api.ImageSpec(image=c.image, user_specified_image=c.config.image.user_specified_image),
        image_ref=c.image_ref, image_id=c.image_id, state=CTR_STATE_TO_PROTO[c.state],
        created_at=c.created_at, labels=c.config.labels, annotations=c.config.annotations)


def container_status(c: ContainerRecord) -> api.ContainerStatus:
    cfg = c.config
    st = api.ContainerStatus(
        id=c.id, metadata=cfg.metadata, state=CTR_STATE_TO_PROTO[c.state], created_at=c.created_at,
        started_at=c.started_at, finished_at=c.finished_at, exit_code=c.exit_code,
        image=api.ImageSpec(image=c.image, user_specified_image=cfg.image.user_specified_image),
        image_ref=c.image_ref, image_id=c.image_id, reason=c.reason, message=c.message,
        labels=cfg.labels, annotations=cfg.annotations, mounts=cfg.mounts, log_path=c.log_path)
    image_volumes.report_refs(st, c)
    if c.resources:
        st.resources.linux.CopyFrom(_parse(c.resources, api.LinuxContainerResources()))
    if c.user:
        st.user.linux.uid = int(c.user.get("uid", 0))
        st.user.linux.gid = int(c.user.get("gid", 0))
        st.user.linux.supplemental_groups.extend(int(g) for g in c.user.get("additional_gids", []))
    if c.stop_signal and c.stop_signal in api.Signal.keys():
        st.stop_signal = api.Signal.Value(c.stop_signal)
    return st


def container_info(c: ContainerRecord) -> dict[str, str]:
    return {"info": json.dumps({
        "id": c.id, "sandboxID": c.pod_id, "name": c.name, "pid": c.pid, "bundle": c.bundle,
        "logPath": c.log_path, "stopSignal": c.stop_signal, "config": _dict(c.config)},
        sort_keys=True)}


def _dict(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _parse(d: dict, msg):
    return json_format.ParseDict(d, msg, ignore_unknown_fields=True)
