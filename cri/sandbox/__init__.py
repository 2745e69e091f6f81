"""Pod sandboxes without a pause process: pinned namespaces, CNI, pod files, sysctls.

The shim never enters a namespace itself (setns() in a threaded server would
move whichever thread ran it); every namespace operation is a short-lived child
process (`ip netns`, `unshare`, `ip netns exec ... sysctl`) or a CNI plugin.
"""
