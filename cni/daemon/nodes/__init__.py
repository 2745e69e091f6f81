"""Inter-node pod routing in podwire-cnid: from the cluster's Node objects to the kernel.

- :mod:`.model` -- Nodes as podwire reads them, and the desired state of a mode (pure).
- :mod:`.watch` -- list-then-watch of Node objects through the official client.
- :mod:`.routes`, :mod:`.vxlan`, :mod:`.masquerade` -- the kernel side, each reconciled whole.
- :mod:`.router` -- ties them together; the daemon's health and metrics read it.

Modes (``routing`` in cnid.toml): ``none`` (the default: nothing is touched), ``host-gw``
(a route per remote pod CIDR via that node's InternalIP; nodes share an L2 segment) and
``vxlan`` (one overlay device, an FDB and a neighbour entry and a route per remote node).
"""
