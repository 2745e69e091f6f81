"""The gRPC connection to a CRI endpoint (podwire-cri or any other runtime)."""
from __future__ import annotations

import os

import grpc
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc

DEFAULT_ENDPOINT = "unix:///run/podwire/cri.sock"
ENV_RUNTIME = "CONTAINER_RUNTIME_ENDPOINT"
ENV_IMAGE = "IMAGE_SERVICE_ENDPOINT"


def _target(endpoint: str) -> str:
    """crictl accepts unix:///path and a bare path; gRPC wants unix:/path or unix:///path."""
    if endpoint.startswith("/"):
        return "unix://" + endpoint
    return endpoint


class Client:
    def __init__(self, runtime_endpoint: str = "", image_endpoint: str = "", timeout: float = 0) -> None:
        runtime_endpoint = runtime_endpoint or os.environ.get(ENV_RUNTIME) or DEFAULT_ENDPOINT
        image_endpoint = image_endpoint or os.environ.get(ENV_IMAGE) or runtime_endpoint
        opts = [("grpc.max_receive_message_length", 16 << 20)]
        self._rt_channel = grpc.insecure_channel(_target(runtime_endpoint), options=opts)
        self._img_channel = (self._rt_channel if image_endpoint == runtime_endpoint
                             else grpc.insecure_channel(_target(image_endpoint), options=opts))
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self._rt_channel)
        self.images = api_pb2_grpc.ImageServiceStub(self._img_channel)
        self.timeout = timeout or None

    def call(self, method, request, timeout: float | None = None):
        return method(request, timeout=timeout or self.timeout)

    def close(self) -> None:
        self._rt_channel.close()
        if self._img_channel is not self._rt_channel:
            self._img_channel.close()


__all__ = ["Client", "api", "DEFAULT_ENDPOINT"]
