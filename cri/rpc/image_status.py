"""ImageStatus: ``image_status(svc, req) -> ImageStatusResponse``.

An absent image is an empty response, not an error: the kubelet asks before every pull
("If the image isn't present, returns a response with ImageStatusResponse.Image set to
nil").  ``verbose`` adds ``info["info"]``: the image config JSON and where it came from.
Also home of :func:`to_proto`, the one Image -> CRI message conversion.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..images.image import Image

if TYPE_CHECKING:
    from ..server.services import Services


def image_status(svc: Services, req: api.ImageStatusRequest) -> api.ImageStatusResponse:
    image = svc.images.status(req.image.image)
    if image is None:
        return api.ImageStatusResponse()
    resp = api.ImageStatusResponse(image=to_proto(image))
    if req.verbose:
        resp.info["info"] = json.dumps(svc.images.inspect(image), sort_keys=True)
    return resp


def to_proto(image: Image) -> api.Image:
    msg = api.Image(id=image.id, repo_tags=image.repo_tags, repo_digests=image.repo_digests,
                    size=image.size, username=image.username,
                    spec=api.ImageSpec(image=image.id))
    if image.uid is not None:
        msg.uid.value = image.uid
    return msg
