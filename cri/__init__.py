"""podwire-cri: a CRI runtime.v1 shim (RuntimeService + ImageService on a unix socket).

Layout (one module per RPC group, thin handlers calling private verbs):

  cri/errors.py        CriError(status_code, message): the one error type; converted to a gRPC
                       status at exactly one boundary (cri/server/boundary.py).
  cri/config.py        TOML config (/etc/podwire/cri.toml), every key defaulted.
  cri/server/          grpc server factory, servicers delegating to cri/rpc/*, main (podwire-cri).
  cri/rpc/             one module per RPC group: runtime (Version/Status/RuntimeConfig/...),
                       sandbox_*, container_*, exec, logs, stats, events, image_*.
  cri/store/           persisted pod/container records (atomic writes), name registrar, id index.
  cri/sandbox/         pinned namespaces (net/ipc/uts), CNI via cni.libcni, resolv.conf/hostname.
  cri/oci/             OCI runtime spec from CRI configs + image config; runc wrapper.
  cri/monitor/         the per-container monitor process (conmon-like): holds stdio, writes CRI
                       logs, reaps the container as subreaper, records the exit; outlives the shim.
  cri/images/          references, registry client (OCI distribution), content store, safe
                       layer extraction, image records.
  cri/ctl/             podwire-ctl, a crictl-compatible client.

The shim never calls setns() itself: namespaces are pinned and configured by short-lived child
processes (ip netns, unshare) and pyroute2/libcni, and containers join them through the OCI spec.
"""
