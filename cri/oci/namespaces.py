"""OCI linux.namespaces from the CRI NamespaceOption and what the pod has pinned.

NODE shares the host's namespace (no entry), POD joins the pod's pinned one (a path), CONTAINER
gets a fresh one.  Pods have no pause process, so:
  * network, IPC, UTS: the sandbox pins them (bind mounts under /run/netns or the pod dir) and the
    container joins them by path.  A NODE network also means the host's UTS (containerd does so).
  * PID with POD: a pid namespace lives only as long as its init, and nothing idles in the pod
    to be that init.  The container joins PodContext.pid_ns_path when the sandbox gives one
    (e.g. /proc/<pid>/ns/pid of the pod's first running container, which
    ContainerRuntime.pid_namespace() returns); without one it gets a fresh pid namespace and so
    becomes the pod's pid-namespace owner.  Caveat, documented: when that owner exits, the
    kernel kills every other process in the namespace.
  * PID with TARGET (ephemeral/debug containers): target_pid_ns_path, resolved by the caller.
"""
from __future__ import annotations

from cri.errors import invalid

POD, CONTAINER, NODE, TARGET = 0, 1, 2, 3  # runtime.v1 NamespaceMode


def _entry(kind: str, path: str = "") -> dict[str, str]:
    return {"type": kind, "path": path} if path else {"type": kind}


def linux_namespaces(options, pod, target_pid_ns_path: str = "") -> list[dict[str, str]]:
    """`options`: the container's NamespaceOption; `pod`: a spec.PodContext."""
    out = [_entry("mount")]
    # A pod on the node's network or IPC namespace takes its containers with it, whatever their
    # own options say (crictl and critest send container configs with no namespace options):
    # containerd's and CRI-O's containers join the sandbox's namespaces, which are the node's.
    if options.network != NODE and pod.netns_path:
        out.append(_entry("network", pod.netns_path))
        out.append(_entry("uts", pod.uts_ns_path))
    if options.ipc == POD:
        if pod.ipc_ns_path:
            out.append(_entry("ipc", pod.ipc_ns_path))
    elif options.ipc == CONTAINER:
        out.append(_entry("ipc"))
    if options.pid == POD:
        out.append(_entry("pid", pod.pid_ns_path))
    elif options.pid == CONTAINER:
        out.append(_entry("pid"))
    elif options.pid == TARGET:
        # Kept: containerd fails too when the target container is not running (it has no
        # pid namespace to join).
        if not target_pid_ns_path:
            raise invalid(f"pid namespace TARGET {options.target_id!r} is not running")
        out.append(_entry("pid", target_pid_ns_path))
    # Kept: user namespaces are not implemented; running without one would silently give
    # the pod the node's uids that it asked not to have.
    if options.HasField("userns_options") and options.userns_options.mode != NODE:
        raise invalid("user namespaces are not supported")
    return out


def has(namespaces: list[dict[str, str]], kind: str) -> bool:
    return any(n["type"] == kind for n in namespaces)
