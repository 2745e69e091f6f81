"""The policy agent: state, the core service, its gRPC and CNI-hook front ends."""
