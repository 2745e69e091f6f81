"""The records the shim persists: one per pod sandbox, one per container.

Records are treated as immutable values: a change makes a new record
(:func:`dataclasses.replace`) that the store persists and then swaps in, so a
List/Status RPC reading a record never sees half an update and never needs a lock.
The CRI configs are kept as the protobuf messages the kubelet sent, which is
how labels and annotations round-trip verbatim.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Optional

from cri_api.v1 import api_pb2 as api
from google.protobuf import json_format

# Pod states (api.SANDBOX_READY / SANDBOX_NOTREADY).
POD_READY = "ready"
POD_NOTREADY = "notready"

# Container states, mirroring api.ContainerState.
CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"

POD_STATE_TO_PROTO = {POD_READY: api.SANDBOX_READY, POD_NOTREADY: api.SANDBOX_NOTREADY}
CTR_STATE_TO_PROTO = {CREATED: api.CONTAINER_CREATED, RUNNING: api.CONTAINER_RUNNING,
                      EXITED: api.CONTAINER_EXITED, UNKNOWN: api.CONTAINER_UNKNOWN}


def now_ns() -> int:
    return time.time_ns()


@dataclasses.dataclass(frozen=True)
class PodRecord:
    id: str
    name: str                       # registrar key: name_namespace_uid_attempt
    config: api.PodSandboxConfig
    state: str = POD_NOTREADY
    created_at: int = 0
    runtime_handler: str = ""
    netns: str = ""                 # /run/netns/<name>; "" for hostNetwork pods
    ipc_ns: str = ""                # pinned IPC namespace file, "" for host IPC
    uts_ns: str = ""                # pinned UTS namespace file, "" for host UTS
    pid_ns: str = ""                # pid namespace of the holder process (PID=POD), else ""
    pid_holder: int = 0
    network: str = ""               # CNI network name attached ("" when none)
    ips: tuple = ()                 # pod IPs, primary first
    pod_dir: str = ""               # resolv.conf, hostname, hosts
    shm: str = ""                   # the pod's /dev/shm tmpfs ("" for host IPC)
    cgroup_parent: str = ""
    # The last UpdatePodSandboxResources (LinuxContainerResources as dicts; None until then or
    # when the request had none); records written before these fields load with None.
    overhead: Optional[dict] = None
    resources: Optional[dict] = None

    def to_dict(self) -> dict:
        out = _record_dict(self)
        out["ips"] = list(self.ips)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "PodRecord":
        data = _known(cls, data)
        data["config"] = json_format.ParseDict(data.get("config") or {}, api.PodSandboxConfig(),
                                               ignore_unknown_fields=True)
        data["ips"] = tuple(data.get("ips") or ())
        return cls(**data)

    @property
    def host_network(self) -> bool:
        return self.config.linux.security_context.namespace_options.network == api.NODE

    @property
    def netns_name(self) -> str:
        return self.netns.rsplit("/", 1)[-1] if self.netns else ""


@dataclasses.dataclass(frozen=True)
class ContainerRecord:
    id: str
    pod_id: str
    name: str                       # registrar key: name_pod_namespace_uid_attempt
    config: api.ContainerConfig
    state: str = CREATED
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""                 # the reference the kubelet asked for
    image_id: str = ""
    image_ref: str = ""             # repo digest when known, else the image id
    log_path: str = ""              # absolute; "" when the pod has no log directory
    bundle: str = ""
    pid: int = 0
    stop_signal: str = "SIGTERM"
    user: dict = dataclasses.field(default_factory=dict)   # uid, gid, additional_gids
    resources: Optional[dict] = None                       # last applied LinuxContainerResources
    image_volumes: tuple = ()       # ({"container_path", "image_id"}, ...): images mounted as volumes

    def to_dict(self) -> dict:
        return _record_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ContainerRecord":
        data = _known(cls, data)
        data["config"] = json_format.ParseDict(data.get("config") or {}, api.ContainerConfig(),
                                               ignore_unknown_fields=True)
        data["image_volumes"] = tuple(data.get("image_volumes") or ())
        return cls(**data)


def _record_dict(rec: PodRecord | ContainerRecord) -> dict:
    """dataclasses.asdict, with the protobuf config as its JSON mapping (asdict would
    deep-copy the message only for it to be replaced)."""
    return {f.name: _to_dict(rec.config) if f.name == "config" else copy.deepcopy(getattr(rec, f.name))
            for f in dataclasses.fields(rec)}


def _to_dict(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _known(cls, data: dict) -> dict:
    """Drop keys a newer shim wrote that this one does not know (downgrade-safe)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
