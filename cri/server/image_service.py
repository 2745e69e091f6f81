"""ImageService: one line per RPC, delegating to cri/rpc/image_* (the boundary wraps each)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2_grpc

from ..rpc import image_fsinfo, image_list, image_pull, image_remove, image_status
from . import boundary

if TYPE_CHECKING:
    from .services import Services


@boundary.servicer(api_pb2_grpc.ImageServiceServicer)
class ImageService(api_pb2_grpc.ImageServiceServicer):
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def ListImages(self, req, ctx):
        return image_list.list_images(self.svc, req)

    def ImageStatus(self, req, ctx):
        return image_status.image_status(self.svc, req)

    def PullImage(self, req, ctx):
        return image_pull.pull_image(self.svc, req)

    def RemoveImage(self, req, ctx):
        return image_remove.remove_image(self.svc, req)

    def ImageFsInfo(self, req, ctx):
        return image_fsinfo.image_fs_info(self.svc, req)
