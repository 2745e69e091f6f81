"""podwire-cnid: the CNI fast path, and the thin client in front of it.

The ``podwire`` and ``podwire-ipam`` executables start with the standard
library only (:mod:`.client`; installed, its C twin client.c where a C compiler
is) and hand each invocation -- environment and stdin -- to the node daemon
over a unix socket (:mod:`.wire`).  The daemon runs the very same verbs
(``cni.plugin``, ``cni.ipam``) through the same skel boundary, in a process
that keeps netlink sockets warm, IPAM in memory (written through to
host-local's on-disk store) and batches link deletions.
When no daemon answers, the executables run the verbs in process, as before.

Modules: wire (framing), client (the executables' start-up path), server
(socket, connections, peers), handler (locks, deadlines, undo), reaper (batched
link deletion), podcidr (the node's pod CIDR), main (the podwire-cnid command).
"""
