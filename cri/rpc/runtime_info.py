"""Version, Status, RuntimeConfig, UpdateRuntimeConfig: node start-up and health."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import shutil
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..oci import cgroupdriver

if TYPE_CHECKING:
    from ..server.services import Services

RUNTIME_NAME = "podwire"
RUNTIME_API_VERSION = "v1"
KUBE_API_VERSION = "0.1.0"   # the CRI's own "version" field: the version of the API the kubelet speaks


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("podwire")
    except PackageNotFoundError:    # running from a source tree without metadata
        return "0.0.0"


def version(svc: Services, req: api.VersionRequest) -> api.VersionResponse:
    return api.VersionResponse(version=KUBE_API_VERSION, runtime_name=RUNTIME_NAME,
                               runtime_version=_package_version(),
                               runtime_api_version=RUNTIME_API_VERSION)


def status(svc: Services, req: api.StatusRequest) -> api.StatusResponse:
    runtime_ok, runtime_msg = _runtime_ready(svc)
    net_ok, net_reason, net_msg = svc.network.status()
    conditions = [
        api.RuntimeCondition(type="RuntimeReady", status=runtime_ok,
                             reason="" if runtime_ok else "RuntimeNotReady", message=runtime_msg),
        api.RuntimeCondition(type="NetworkReady", status=net_ok, reason=net_reason, message=net_msg),
    ]
    resp = api.StatusResponse(status=api.RuntimeStatus(conditions=conditions))
    resp.runtime_handlers.append(api.RuntimeHandler(name="", features=api.RuntimeHandlerFeatures()))
    if req.verbose:
        cfg = dataclasses.asdict(svc.config)
        resp.info["config"] = json.dumps(cfg, sort_keys=True)
        resp.info["podCIDR"] = svc.state.pod_cidr
    return resp


def _runtime_ready(svc: Services) -> tuple[bool, str]:
    if shutil.which(svc.config.runc) is None:
        return False, f"OCI runtime {svc.config.runc!r} not found"
    if shutil.which(svc.config.conmon) is None:
        return False, f"container monitor {svc.config.conmon!r} not found"
    if svc.runtime is None or svc.images is None:
        return False, "container runtime or image service not initialised"
    return True, ""


def runtime_config(svc: Services, req: api.RuntimeConfigRequest) -> api.RuntimeConfigResponse:
    """The cgroup driver (cri.toml cgroup_driver, detected once at start when unset), which the
    kubelet adopts as its own (KubeletCgroupDriverFromCRI) and must not see change while it
    runs.  Always set explicitly: SYSTEMD is the enum's zero value, so an empty message would
    also read as systemd."""
    driver = api.SYSTEMD if svc.config.cgroup_driver == cgroupdriver.SYSTEMD else api.CGROUPFS
    return api.RuntimeConfigResponse(linux=api.LinuxRuntimeConfiguration(cgroup_driver=driver))


def update_runtime_config(svc: Services, req: api.UpdateRuntimeConfigRequest) -> api.UpdateRuntimeConfigResponse:
    cidr = req.runtime_config.network_config.pod_cidr
    # Kept: the CIDR becomes IPAM ranges; a string that is not one would only fail at the
    # next pod's ADD, far from its cause.
    for part in filter(None, cidr.split(",")):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise errors.invalid(f"invalid pod CIDR {part!r}") from None
    if cidr and cidr != svc.state.pod_cidr:
        svc.state.set_pod_cidr(cidr)
    return api.UpdateRuntimeConfigResponse()
