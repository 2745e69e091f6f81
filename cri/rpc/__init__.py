"""One module per RPC group; the servicers in cri/server/ are one-line delegations.

Convention (cri-o's shape: a thin exported handler calling a private verb):

    # cri/rpc/container_stop.py
    def stop_container(svc: Services, req: api.StopContainerRequest) -> api.StopContainerResponse:
        _stop(svc, svc.containers.resolve(req.container_id), req.timeout)
        return api.StopContainerResponse()

* the handler is the RPC's name in snake_case and takes ``(svc, req)``;
  server-streaming handlers also take the gRPC ``context`` (to notice cancellation);
* ``svc`` is :class:`cri.server.services.Services` (config, stores, registrars,
  network, events, ``svc.images`` the ImageService, ``svc.runtime`` the ContainerRuntime);
* failures raise :class:`cri.errors.CriError`; nothing here touches gRPC status codes
  otherwise, because cri/server/boundary.py converts errors in exactly one place.
"""
