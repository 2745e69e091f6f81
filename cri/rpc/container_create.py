"""CreateContainer: reserve the name, hold the image's layers, mount the rootfs overlay,
build the OCI spec, let the runtime's monitor run `runc create` — all or nothing."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import signal
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api
from google.protobuf import json_format

from .. import errors
from ..monitor import logfile
from ..oci import signals, spec as oci_spec
from ..oci.namespaces import TARGET
from ..sandbox import files, netpol, sysctl
from ..store.records import CREATED, POD_READY, ContainerRecord, PodRecord
from . import container_sync, events, image_volumes

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)
OOM_SCORE_ADJ_MIN = -1000
CREATE_TIMEOUT = 120.0


def create_container(svc: Services, req: api.CreateContainerRequest) -> api.CreateContainerResponse:
    ctr = _create(svc, req.pod_sandbox_id, req.config)
    return api.CreateContainerResponse(container_id=ctr.id)


def container_name(md: api.ContainerMetadata, pod: api.PodSandboxMetadata) -> str:
    """containerd's makeContainerName: unique per pod, container name and attempt."""
    return "_".join([md.name, pod.name, pod.namespace, pod.uid, str(md.attempt)])


def log_path(pod: PodRecord, config: api.ContainerConfig) -> str:
    """log_directory + log_path.  An absolute log_path is joined under the directory too, as
    containerd's and CRI-O's filepath.Join do ("/app/0.log" -> <dir>/app/0.log)."""
    directory, rel = pod.config.log_directory, config.log_path
    if not directory or not rel:
        return ""
    path = os.path.normpath(os.path.join(directory, rel.lstrip("/")))
    # Kept, though neither containerd nor CRI-O checks it: the shim writes the log as root,
    # so "../" would let a CRI client create or append to any file on the node.  The kubelet
    # always sends <container>/<restart>.log.
    if not path.startswith(os.path.normpath(directory) + os.sep):
        raise errors.invalid(f"log_path {rel!r} escapes the pod's log directory")
    return path


def _create(svc: Services, pod_id: str, config: api.ContainerConfig) -> ContainerRecord:
    # Kept: CRI-O refuses an empty name too (containerd does not); the name is the container's
    # identity in the name index, ListContainers filters and its log directory.
    if not config.metadata.name:
        raise errors.invalid("container metadata needs a name")
    # Kept: containerd and CRI-O both fail here (no image to resolve), we just say which field.
    if not config.image.image:
        raise errors.invalid("container config needs an image")
    found = svc.pods.resolve(pod_id)
    # The pod's lock: a container must not appear in a pod that is being stopped or removed.
    with svc.pods.op_lock(found.id):
        pod = svc.pods.get(found.id)
        if pod is None or pod.state != POD_READY:
            raise errors.precondition(f"pod sandbox {pod_id} is not ready")
        rec = _build(svc, pod, config)
    events.publish(svc, rec.id, pod.id, events.CREATED)
    log.info("container %s (%s) created in pod %s", rec.id[:12], rec.name, pod.id[:12],
             extra={"container_id": rec.id, "pod_id": pod.id})
    return rec


def _build(svc: Services, pod: PodRecord, config: api.ContainerConfig) -> ContainerRecord:
    image = svc.images.get(config.image.image)
    if image is None:
        raise errors.not_found(f"image {config.image.image!r} not found: pull it first")
    ctr_id = secrets.token_hex(32)
    name = container_name(config.metadata, pod.config.metadata)
    path = log_path(pod, config)
    with contextlib.ExitStack() as undo:
        svc.ctr_names.reserve(name, ctr_id)
        undo.callback(svc.ctr_names.release, name)
        layers = svc.images.hold(ctr_id, image)
        undo.callback(_best_effort, svc.images.release, ctr_id)
        sig = (signals.stop_signal(config, image.config)
               if config.stop_signal or image.config.get("StopSignal")
               else signals.parse_signal(svc.config.default_stop_signal))
        rec = ContainerRecord(
            id=ctr_id, pod_id=pod.id, name=name, config=config, state=CREATED,
            image=config.image.image, image_id=image.id,
            image_ref=image.repo_digests[0] if image.repo_digests else image.id,
            log_path=path, bundle=svc.runtime.bundle_dir(ctr_id), stop_signal=_signame(sig),
            resources=(json_format.MessageToDict(config.linux.resources, preserving_proto_field_name=True)
                       if config.linux.HasField("resources") else None))
        # Persisted (not yet listed) before anything is mounted: recovery can clean up after a crash.
        svc.containers.put(rec, visible=False)
        undo.callback(_best_effort, svc.containers.delete, ctr_id)
        undo.callback(_best_effort, svc.runtime.remove, ctr_id)
        # ImageService gives overlay order (top-most first); the runtime wants the manifest's.
        rootfs = svc.runtime.prepare_rootfs(ctr_id, list(reversed(layers)))
        volume_sources, volumes = image_volumes.prepare(svc, ctr_id, config.mounts)
        rec = dataclasses.replace(rec, image_volumes=volumes)
        spec = oci_spec.build_spec(ctr_id, config, pod_context(svc, pod), image.config, rootfs,
                                   target_pid_ns_path=_target_pid_ns(svc, config, pod.id),
                                   oom_score_adj_floor=None if svc.config.restrict_oom_score_adj
                                   else OOM_SCORE_ADJ_MIN,
                                   image_sources=volume_sources)
        if path:
            path, created = logfile.prepare(pod.config.log_directory, os.path.relpath(
                path, pod.config.log_directory))
            if created:
                undo.callback(_best_effort, os.unlink, path)
        pid = svc.runtime.create(ctr_id, spec, path, CREATE_TIMEOUT, stdin=config.stdin,
                                 stdin_once=config.stdin_once)
        _register_ports(svc, pod, ctr_id, config, undo)   # before StartContainer can run it
        user = spec["process"]["user"]
        rec = svc.containers.put(container_sync.with_state(svc, rec, pid=pid, user={
            "uid": user.get("uid", 0), "gid": user.get("gid", 0),
            "additional_gids": list(user.get("additionalGids") or [])}))
        undo.pop_all()
    return rec


def _register_ports(svc: Services, pod: PodRecord, ctr_id: str, config: api.ContainerConfig,
                    undo: contextlib.ExitStack) -> None:
    """The container's named ports, merged with the pod's other containers', to the netpol
    agent (named ports in policies resolve per pod); a failure fails CreateContainer.  Undone
    by sending the pod's ports as they were without this container."""
    if pod.host_network or not netpol.named_ports([config]):
        return
    svc.netpol.set_ports(pod.config, netpol.named_ports(other_containers(svc, pod.id, ctr_id) + [config]))
    undo.callback(_best_effort, svc.netpol.set_ports, pod.config,
                  netpol.named_ports(other_containers(svc, pod.id, ctr_id)))


def other_containers(svc: Services, pod_id: str, ctr_id: str) -> list[api.ContainerConfig]:
    return [c.config for c in svc.pod_containers(pod_id) if c.id != ctr_id]


def pod_context(svc: Services, pod: PodRecord) -> oci_spec.PodContext:
    pf = files.pod_files(pod.pod_dir)
    ns = pod.config.linux.security_context.namespace_options
    host_net, host_ipc = ns.network == api.NODE, ns.ipc == api.NODE
    _, ctr_sysctls = sysctl.split(dict(pod.config.linux.sysctls), host_net, host_ipc, host_net)
    return oci_spec.PodContext(
        id=pod.id, config=pod.config, netns_path=pod.netns, ipc_ns_path=pod.ipc_ns,
        uts_ns_path=pod.uts_ns, pid_ns_path=pod.pid_ns, hosts_path=pf.get("/etc/hosts", ""),
        resolv_conf_path=pf.get("/etc/resolv.conf", ""), hostname_path=pf.get("/etc/hostname", ""),
        shm_path=pod.shm, cgroup_root=svc.config.cgroup_parent,
        cgroup_driver=svc.config.cgroup_driver, sysctls=ctr_sysctls)


def _target_pid_ns(svc: Services, config: api.ContainerConfig, pod_id: str) -> str:
    ns = config.linux.security_context.namespace_options
    if ns.pid != TARGET:
        return ""
    target = svc.containers.find(ns.target_id)
    if target is None:
        raise errors.not_found(f"target container {ns.target_id!r} not found")
    # Security, as containerd's validateTargetContainer: joining another pod's pid namespace
    # would let this container see and signal that pod's processes.
    if target.pod_id != pod_id:
        raise errors.invalid(f"target container {ns.target_id!r} belongs to pod {target.pod_id}, "
                             f"not to this container's pod {pod_id}")
    return svc.runtime.pid_namespace(target.id)


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _best_effort(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - every undo step must run
        log.exception("undoing a failed CreateContainer: %s failed", getattr(fn, "__name__", fn))
