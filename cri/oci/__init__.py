"""OCI side of the CRI shim: runtime spec from CRI configs, rootfs overlay, runc, the runtime API.

  spec.py        build_spec(): ContainerConfig + PodContext + image config -> config.json dict,
                 assembled from caps.py, seccomp.py (+ seccomp_default.py, data), mounts.py,
                 devices.py, user.py (+ rootpath.py), namespaces.py, resources.py, signals.py.
  rootfs.py      mount_rootfs()/unmount_rootfs(): overlay of the image layers.
  runc.py        Runc: thin runc CLI wrapper; every failure a CriError carrying runc's stderr.
  cgroups.py     cgroup files: where a container's cgroup is, keyed files, removing empty parents.
  cgroupdriver.py  the cgroupfs and systemd drivers: parents, slice expansion, scope names.
  state.py       ContainerState and how it is derived from the state dir (ours and conmon's files).
  execsync.py    ExecSync through `conmon --exec`: never hangs on a background child.
  runtime.py     ContainerRuntime: the API the RPC handlers call.
  watch.py       ExitWatcher: polls for exits (GetContainerEvents).
"""
