"""RemoveImage: ``remove_image(svc, req) -> RemoveImageResponse``.

Removes the image the reference or ID names together with all its tags and digests
(critest "should be able to remove image with multiple tags").  Idempotent: "must not
return an error if the image has already been removed".  An image that a container mounts
as a volume is refused with FailedPrecondition naming the container (its content is what the
container sees; the rootfs image of a container may go, as in containerd, since the
container holds its layers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from . import image_volumes

if TYPE_CHECKING:
    from ..server.services import Services


def remove_image(svc: Services, req: api.RemoveImageRequest) -> api.RemoveImageResponse:
    image = svc.images.get(req.image.image)
    if image is not None:
        image_volumes.check_removable(svc, image.id)
        svc.images.remove(image.id)
    return api.RemoveImageResponse()
