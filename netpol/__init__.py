"""podwire NetworkPolicy: model, compiler, eBPF datapath, agent and policy sources.

Layering: model/parse/evaluator/compiler are pure Python (no root, no BPF);
datapath/ is the only package that talks to the kernel; agent/ ties them
together behind the gRPC API in proto/netpol.proto.
"""
