"""PullImage: ``pull_image(svc, req) -> PullImageResponse``.

``image_ref`` in the response is the image ID (``sha256:<config digest>``), as containerd
returns it; the kubelet stores it as the container's image ref.  Credentials come from
``req.auth`` (username/password, ``auth``, identity or registry token).  Every pull is counted
in the shim's metrics: its result, its duration and the layer bytes it received.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

if TYPE_CHECKING:
    from ..server.services import Services


def pull_image(svc: Services, req: api.PullImageRequest) -> api.PullImageResponse:
    auth = req.auth if req.HasField("auth") else None
    with svc.metrics.pull() as progress:
        image = svc.images.pull(req.image.image, auth=auth, progress=progress)
    return api.PullImageResponse(image_ref=image.id)
