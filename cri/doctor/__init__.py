"""podwire-doctor: is this node ready for podwire?  One module per family of checks.

Under cri/ because it reads podwire-cri's own config (cri.toml, the resolved cgroup driver)
and cri/ may import cni/.  It imports nothing from netpol/ (cri/ never does): the agent's
paths it checks are the ones cri.toml and the CNI plugin already name.

  report.py     Finding, the statuses and the exit-code policy, text and JSON output
  node.py       the node under test: a root prefix, its paths, its configs (read once)
  kernel.py     kernel release, bpffs, BTF, kernel headers; link kinds via linkprobe.py
  cgroups.py    cgroup version, podwire-cri's driver against the kubelet's
  runtimes.py   runc and conmon: present, and new enough
  cniconf.py    podwire's conflist is the one runtimes pick (first in lexical order)
  plugins.py    the plugins that conflist chains, where containerd and CRI-O look
  masquerade.py the conflist's ipMasq against podwire-cnid's routing between nodes
  sockets.py    owners and modes of the sockets under /run/podwire
  sysctls.py    IP forwarding, rp_filter
  diskspace.py  free space and inodes in the state directories
  main.py       the command line
"""
