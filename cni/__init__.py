"""podwire's CNI side: spec types, the plugins, IPAM, and a libcni-like runtime library.

Nothing in this package imports from ``cri`` or ``netpol``.  Modules on the
executables' start-up path (errors, version, skel) import only the standard
library; netlink work is imported lazily by the verbs that need it.
"""
