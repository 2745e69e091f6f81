"""Image volumes for CreateContainer, ContainerStatus and RemoveImage (KEP-4639).

CreateContainer mounts each Mount whose ``image`` is set: the image must have been pulled (the
kubelet pulls image volumes first), its layers are held for the container so image GC keeps
them, and the runtime mounts them read-only under the bundle.  RemoveImage refuses an image that
a container still uses as a volume, naming the container.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..oci import imagevolume
from ..oci.mounts import is_image_volume
from ..store.records import ContainerRecord

if TYPE_CHECKING:
    from ..server.services import Services

# ImageSpec.image_ref (KEP-5365) is field 20 of runtime.v1's ImageSpec.  The published Python
# stubs (container-runtime-interface-api 2.0.1) predate it, so it is written by its wire number
# when the stubs lack it; clients built on a newer api.proto read it as the named field.
_IMAGE_REF_FIELD = 20


def prepare(svc: Services, ctr_id: str, mounts) -> tuple[dict[str, str], tuple]:
    """Mount the image volumes of `mounts` for container `ctr_id`: (container path -> host source
    for the OCI spec, the record's ``image_volumes``).  On failure the caller's undo steps,
    ``runtime.remove`` (unmounts the bundle's volumes) and ``images.release`` (drops the
    ``<container>/…`` holds), take back whatever this made."""
    wanted = [m for m in mounts if is_image_volume(m)]
    for m in wanted:                       # refuse before anything is mounted
        imagevolume.check_request(m.container_path, m.readonly, m.image_sub_path)
    sources: dict[str, str] = {}
    used = []
    for n, m in enumerate(wanted):
        image = svc.images.get(m.image.image)
        if image is None:
            raise errors.not_found(f"mount {m.container_path}: image {m.image.image!r} not found: "
                                   "pull it first")
        layers = svc.images.hold(f"{ctr_id}/volume/{n}", image)
        root = svc.runtime.mount_image_volume(ctr_id, n, layers)
        sources[m.container_path] = imagevolume.resolve_sub_path(root, m.container_path,
                                                                 m.image_sub_path)
        used.append({"container_path": m.container_path, "image_id": image.id})
    return sources, tuple(used)


def users_of(svc: Services, image_id: str) -> list[ContainerRecord]:
    """Containers that mount `image_id` as a volume."""
    return [c for c in svc.containers.list()
            if any(v.get("image_id") == image_id for v in c.image_volumes)]


def check_removable(svc: Services, image_id: str) -> None:
    users = users_of(svc, image_id)
    if users:
        c = users[0]
        raise errors.precondition(
            f"image {image_id} is in use as a volume by container {c.id} ({c.config.metadata.name})"
            + (f" and {len(users) - 1} more" if len(users) > 1 else "")
            + ": remove the container first")


def report_refs(status: api.ContainerStatus, ctr: ContainerRecord) -> None:
    """Set Mount.image.image_ref of each image volume in `status` to the image ID it mounted
    (containerd reports the config digest, the value PullImage returned)."""
    by_path = {v["container_path"]: v["image_id"] for v in ctr.image_volumes}
    for m in status.mounts:
        image_id = by_path.get(m.container_path)
        if image_id and is_image_volume(m):
            set_image_ref(m.image, image_id)


def set_image_ref(spec: api.ImageSpec, ref: str) -> None:
    if "image_ref" in spec.DESCRIPTOR.fields_by_name:
        spec.image_ref = ref
        return
    data = ref.encode()
    spec.MergeFromString(_varint(_IMAGE_REF_FIELD << 3 | 2) + _varint(len(data)) + data)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
