"""What a streaming session needs, resolved by the RPC while it holds the shim's state and
cached under the session's token; the session itself never looks at the shim's stores."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    process: dict           # the container's OCI process (user, env, cwd, caps...) to run cmd with
    runc: str               # runc binary
    runc_root: str
    scratch_dir: str        # where the session may make its temporary files (process.json)
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool

    kind = "exec"


@dataclass(frozen=True)
class AttachRequest:
    container_id: str
    attach_socket: str      # conmon's SOCK_SEQPACKET socket: <attach_dir>/<id>/attach
    ctl_fifo: str           # conmon's control FIFO in the bundle (terminal resize)
    tty: bool               # the container's own tty setting, not the request's
    stdin: bool
    stdout: bool
    stderr: bool

    kind = "attach"


@dataclass(frozen=True)
class PortForwardRequest:
    pod_id: str
    netns: str              # the pod's netns path; "" = host network (dial in the shim's own)
    ports: tuple[int, ...]  # from the RPC; may be empty (the client names ports per stream)

    kind = "portforward"
