"""RemoveImage: ``remove_image(svc, req) -> RemoveImageResponse``.

Removes the image the reference or ID names together with all its tags and digests
(critest "should be able to remove image with multiple tags").  Idempotent: "must not
return an error if the image has already been removed".
"""
from __future__ import annotations

from cri_api.v1 import api_pb2 as api


def remove_image(svc, req: api.RemoveImageRequest) -> api.RemoveImageResponse:
    svc.images.remove(req.image.image)
    return api.RemoveImageResponse()
