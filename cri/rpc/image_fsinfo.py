"""ImageFsInfo: ``image_fs_info(svc, req) -> ImageFsInfoResponse``.

The image filesystem is the image store's root (its mountpoint field is a directory on
that filesystem; the kubelet asks cadvisor for the device behind it).  Usage counts
stored blobs and unpacked layers.  ``container_filesystems`` (the writable layers) is the
runtime's to add; left empty here, which the kubelet reads as "same as the image fs".
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

if TYPE_CHECKING:
    from ..server.services import Services


def image_fs_info(svc: Services, req: api.ImageFsInfoRequest) -> api.ImageFsInfoResponse:
    mountpoint, used, inodes = svc.images.fs_info()
    usage = api.FilesystemUsage(timestamp=time.time_ns(),
                                fs_id=api.FilesystemIdentifier(mountpoint=mountpoint))
    usage.used_bytes.value = used
    usage.inodes_used.value = inodes
    return api.ImageFsInfoResponse(image_filesystems=[usage])
