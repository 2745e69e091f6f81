"""Where the agent lives on a node (sockets under /run/podwire/, as the other daemons; pins under /sys/fs/bpf)."""
SOCKET = "/run/podwire/netpol.sock"            # gRPC API (proto/netpol.proto)
CNI_SOCKET = "/run/podwire/netpol-cni.sock"    # the CNI hook (agent/cnihook.py; cni/plugin/netpol.py)
STATE_DIR = "/var/lib/podwire/netpol"          # the agent's store (agent/store.py)
PIN_DIR = "/sys/fs/bpf/podwire/netpol"         # pinned maps (bpf/lib/maps.h)
BPF_CACHE_DIR = "/var/cache/podwire/netpol"  # compiled programs (datapath/objects.py): rebuilt if removed
