"""Images: pulled from OCI distribution registries, kept in a local content store,
unpacked into per-layer directories that the runtime stacks as overlayfs lowerdirs.

  service.py      ImageService: the API the CRI handlers (cri/rpc/image_*.py) and the runtime use
  reference.py    image references normalised like the kubelet/docker (docker.io/library/, :latest)
  hosts.py        per-registry endpoints: containerd's hosts.toml (mirrors, skip_verify, CAs),
                  loopback registries over plain HTTP
  auth.py         credentials from CRI AuthConfig, Basic and Bearer-token challenges
  registry.py     the distribution client: manifests and verified blobs over those endpoints
  transport.py    its HTTP: http.client with keep-alive, TLS per endpoint, redirects, proxies
  manifest.py     media types; manifest/index/config parsing; index -> linux/<host arch>
  digest.py       digest validation and streaming verification
  pull.py         one pull: resolve, download once (in-flight dedup), unpack, record
  flights.py      the in-flight deduplication
  layer.py        layer blob (gzip or plain) -> unpacked dir, checked against its diff_id
  extract.py      hostile-input-safe tar extraction with overlay whiteouts
  store.py        image records: lookups, tags, removal, leases/holders, garbage collection
  content.py      the files: blobs by digest, layers by diff_id, atomic appearance
  image.py        the Image record and the image user (uid or name)
"""
