"""ListImages: ``list_images(svc, req) -> ListImagesResponse``.

A filter image (any reference form, or an ID) narrows the list to the image it names.
Reads the store's snapshot: never waits behind a pull.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .image_status import to_proto

if TYPE_CHECKING:
    from ..server.services import Services


def list_images(svc: Services, req: api.ListImagesRequest) -> api.ListImagesResponse:
    wanted = req.filter.image.image if req.HasField("filter") else ""
    return api.ListImagesResponse(images=[to_proto(i) for i in svc.images.list(wanted or None)])
