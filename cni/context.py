"""The context a CNI verb runs in: how it reaches the kernel and the lease stores.

The same verbs serve two kinds of process.  The executables run each verb once,
with :data:`STANDALONE`: a fresh netlink socket per use, pyroute2's forked child
for sockets in a pod's namespace, links deleted in line, leases read from disk
under flock.  podwire-cnid builds one :class:`Context` at start-up (warm sockets
per worker thread, its single-threaded namespace broker, the deletion batcher,
the in-memory lease cache, the reaper of retired veths) and passes it with every request to skel.dispatch,
which hands it to the verb as ``args.context``.  Which behaviour a call gets is
therefore visible where the call is made, never a module-level switch.

Standard library only: skel imports this on the executables' start-up path.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ContextManager, Mapping, Optional, Protocol


class HostSockets(Protocol):
    """Hands out a host-namespace netlink socket for a block (cni.netlink.WarmSockets)."""

    def open(self) -> ContextManager[Any]: ...


class NsSocketOpener(Protocol):
    """Opens a netlink socket inside the namespace ``ns_fd`` refers to, without setns() in
    the calling thread (cni.daemon.nsbroker.NsBroker); None means "use pyroute2's fork"."""

    def open_socket(self, ns_fd: int) -> Any: ...


class LinkDeleter(Protocol):
    """Deletes a host link by name; False if it was already gone (cni.daemon.reaper.Reaper)."""

    def delete(self, name: str) -> bool: ...


class LinkReaper(Protocol):
    """Deletes retired host links later, off the verb's path (cni.daemon.retired.RetiredLinks)."""

    def defer(self, name: str) -> None: ...


StoreOpener = Callable[[str], ContextManager[Any]]  # lease directory -> its store, locked


@dataclasses.dataclass(frozen=True)
class Context:
    """Every field left None means the standalone behaviour described above."""

    host_sockets: Optional[HostSockets] = None
    ns_sockets: Optional[NsSocketOpener] = None
    link_deleter: Optional[LinkDeleter] = None
    # DEL retires the veth (renamed, cut off) and leaves the kernel's slow deletion to this;
    # None: DEL deletes the veth before it returns (the executables have no one to hand it to).
    link_reaper: Optional[LinkReaper] = None
    open_store: Optional[StoreOpener] = None
    # The environment plugins exec'd by a verb inherit (IPAM delegation): the process's own
    # when None; podwire-cnid sets the requesting executable's, per request.
    caller_environ: Optional[Mapping[str, str]] = None

    def for_caller(self, environ: Mapping[str, str]) -> "Context":
        return dataclasses.replace(self, caller_environ=environ)


STANDALONE = Context()
