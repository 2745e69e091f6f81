"""podwire-ipam: a host-local-compatible IPAM plugin.

``main.VERBS`` is what both the executable and podwire's main plugin (in
process) call.  Layers, top down: one module per verb (add, delete, check, gc,
status) -> ``config`` (the ``ipam`` section) and ``allocator`` (pure logic over
a ``store.Store``) -> ``disk.DiskStore`` (host-local's on-disk layout) or
``memory.MemoryStore``.  ``stores.locked`` opens the one the verb's context says: the
DiskStore, or inside podwire-cnid ``cached.StoreCache`` (memory written through
to the DiskStore).  Standard library only: it is on the start-up path.
"""
