"""RunPodSandbox: pinned namespaces, pod files, netpol registration, CNI ADD, sysctls — all or nothing."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import background, errors
from ..oci import cgroupdriver
from ..sandbox import files, namespaces, netpol, sysctl
from ..store.records import POD_NOTREADY, POD_READY, PodRecord, now_ns
from . import events

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)
RUNTIME_HANDLERS = ("", "runc")


def run_pod_sandbox(svc: Services, req: api.RunPodSandboxRequest) -> api.RunPodSandboxResponse:
    pod = _run(svc, req.config, req.runtime_handler)
    return api.RunPodSandboxResponse(pod_sandbox_id=pod.id)


def sandbox_name(md: api.PodSandboxMetadata) -> str:
    """containerd's makeSandboxName: unique per pod and attempt."""
    return "_".join([md.name, md.namespace, md.uid, str(md.attempt)])


def validate(config: api.PodSandboxConfig, handler: str, cgroup_driver: str | None = None) -> None:
    """RunPodSandbox's up-front checks, before anything is made.  containerd refuses only a
    missing metadata message and an unknown runtime handler; each rule podwire keeps beyond
    those says why."""
    md = config.metadata
    # Name and namespace: the pod's identity for the netpol agent (endpoints are keyed by
    # namespace/name; it refuses an empty one, netpol/agent/validate.py) and for the CNI
    # plugin's netpol hook.  Refused here, before anything exists, rather than by the agent
    # half-way through, and the same whether or not an agent runs.  Every client sends them
    # (the kubelet, critest, crictl's samples).  An absent metadata message lands here too.
    if not (md.name and md.namespace):
        raise errors.invalid("pod sandbox metadata needs a name and a namespace")
    # No rule for uid (nor attempt): containerd accepts an empty one, and nothing in podwire
    # keys on it alone (the sandbox name joins all four fields; CNI gets K8S_POD_UID="").
    # The runtime handler: containerd refuses one it has no runtime for, as we do.
    if handler not in RUNTIME_HANDLERS:
        raise errors.invalid(f"runtime handler {handler!r} is not configured (have runc)")
    # A relative log_directory would resolve against the shim's working directory, writing
    # container logs somewhere nobody looks (containerd lets it through; the kubelet always
    # sends an absolute one, and empty - no logs - is fine).
    if config.log_directory and not os.path.isabs(config.log_directory):
        raise errors.invalid(f"log_directory {config.log_directory!r} must be absolute")
    files.hostname_for(config)      # its rules and their reasons are there
    # A cgroup parent of the other driver's form (a path under systemd, a slice under cgroupfs):
    # refused here, where the pod is made, not at its first CreateContainer.  CRI-O refuses a
    # non-slice parent under systemd the same way; the words say which driver podwire-cri uses.
    if cgroup_driver is not None and config.linux.cgroup_parent:
        try:
            cgroupdriver.check_parent(config.linux.cgroup_parent, cgroup_driver)
        except ValueError as e:
            raise errors.invalid(str(e)) from None


def _run(svc: Services, config: api.PodSandboxConfig, handler: str) -> PodRecord:
    """No op lock is needed: the pod becomes visible to other RPCs (and so can be
    stopped or removed) only by the final ``put``, after everything succeeded."""
    validate(config, handler, svc.config.cgroup_driver)
    ns = config.linux.security_context.namespace_options
    host_net, host_ipc = ns.network == api.NODE, ns.ipc == api.NODE
    net_sysctls, _ = sysctl.split(dict(config.linux.sysctls), host_net, host_ipc, host_net)
    pod_id = secrets.token_hex(32)
    name = sandbox_name(config.metadata)
    with contextlib.ExitStack() as undo:
        svc.pod_names.reserve(name, pod_id)
        undo.callback(svc.pod_names.release, name)
        pod_dir = svc.pods.dir_of(pod_id)
        ns_dir = os.path.join(svc.config.ns_dir, pod_id)
        # Every path is fixed before anything exists, and the record naming them is persisted
        # (not yet listed) first: after a crash from here on, recovery finds a NOTREADY pod
        # whose Stop/Remove undo whatever was made (all of those steps are idempotent).
        rec = PodRecord(id=pod_id, name=name, config=config, state=POD_NOTREADY, created_at=now_ns(),
                        runtime_handler=handler, pod_dir=pod_dir, cgroup_parent=config.linux.cgroup_parent,
                        netns="" if host_net else os.path.join(namespaces.NETNS_DIR, namespaces.netns_name(pod_id)),
                        ipc_ns="" if host_ipc else os.path.join(ns_dir, "ipc"),
                        uts_ns="" if host_net else os.path.join(ns_dir, "uts"),
                        shm="" if host_ipc else os.path.join(pod_dir, "shm"))
        svc.pods.put(rec, visible=False)
        undo.callback(_best_effort, svc.pods.delete, pod_id)
        files.write_pod_files(pod_dir, config, host_net, svc.config.default_resolv_conf)
        # Labels first: the CNI hook's registration (inside ADD) then attaches the programs to
        # an endpoint whose identity is known (cri/sandbox/netpol.py).  The agent is told while
        # the namespaces are made (the call waits on the agent, the pinning on `unshare`); the
        # undo joins it first, so a registration never lands after its undo.
        registration = background.call(svc.netpol.register, config) if rec.netns else None
        if registration is not None:
            undo.callback(_undo_registration, svc, rec, registration)
        undo.callback(_best_effort, shutil.rmtree, ns_dir, True)     # runs after the unpins below
        # The kernel's name only in the pod's own UTS namespace (none with host networking).
        namespaces.pin(rec.netns, rec.ipc_ns, rec.uts_ns, files.hostname_for(config))
        for path in (rec.netns, rec.ipc_ns, rec.uts_ns):
            undo.callback(_best_effort, namespaces.unpin, path)
        if rec.shm:
            files.mount_shm(pod_dir)
            undo.callback(_best_effort, files.unmount_shm, rec.shm)
        if ns.pid == api.POD:
            # Under the systemd driver in a scope of its own, as conmon: it must outlive the
            # shim's unit and not stay in its cgroup.
            scope = (cgroupdriver.holder_scope_argv(pod_id, cgroupdriver.MONITOR_SLICE)
                     if svc.config.cgroup_driver == cgroupdriver.SYSTEMD else [])
            holder, pid_ns = namespaces.start_pid_holder(ns_dir, scope)
            undo.callback(_best_effort, namespaces.stop_pid_holder, holder)
            rec = _replace(rec, pid_holder=holder, pid_ns=pid_ns)
        if registration is not None:
            registration.result()            # an agent that refused or is down fails the pod
            network, ips = svc.network.setup(pod_id, rec.netns, config)
            undo.callback(_best_effort, svc.network.teardown, pod_id, rec.netns, config, network)
            sysctl.apply_in_netns(rec.netns_name, net_sysctls)
            rec = _replace(rec, network=network, ips=tuple(ips))
        rec = svc.pods.put(_replace(rec, state=POD_READY))
        undo.pop_all()
    events.publish(svc, pod_id, pod_id, events.CREATED)
    events.publish(svc, pod_id, pod_id, events.STARTED)
    log.info("pod %s (%s) ready, ips %s", pod_id[:12], name, ", ".join(rec.ips) or "-",
             extra={"pod_id": pod_id})
    return rec


def _undo_registration(svc: Services, rec: PodRecord, registration: background.Call) -> None:
    if registration.succeeded() and netpol.other_live_sandbox(svc, rec) is None:
        svc.netpol.unregister(rec.config)


def _replace(rec: PodRecord, **changes) -> PodRecord:
    return dataclasses.replace(rec, **changes)


def _best_effort(fn, *args) -> None:
    """Undo steps must all run: one failing is logged, not raised over the others."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - every undo step must run; this one is logged
        log.exception("undoing a failed RunPodSandbox: %s failed", getattr(fn, "__name__", fn))
