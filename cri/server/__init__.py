"""The gRPC server: factory (server.py), the one error boundary (boundary.py),
servicers that delegate to cri/rpc (runtime_service.py, image_service.py),
the wiring of stores and engines (services.py) and the podwire-cri entry point (main.py)."""
