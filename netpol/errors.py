"""Typed errors of the policy agent.

Everything below the gRPC boundary raises one of these; agent/server.py maps
each class to one gRPC status code in exactly one place (`STATUS_OF`).
"""
from __future__ import annotations


class NetpolError(Exception):
    """Base class; ``str(err)`` is the message a user sees."""


class InvalidPolicy(NetpolError):
    """A manifest the Kubernetes API server would reject; the message uses its wording."""

    def __init__(self, message: str, causes: list[str] | None = None):
        super().__init__(message)
        self.causes = causes or []


class InvalidArgument(NetpolError):
    """A malformed request that is not a policy (bad IP, unknown protocol name, ...)."""


class NotFound(NetpolError):
    """The named endpoint, policy or namespace does not exist."""


class FailedPrecondition(NetpolError):
    """The request is valid but the node is not in a state to serve it (e.g. no such interface)."""


class ResourceExhausted(NetpolError):
    """A datapath table is full (endpoint ids, policy entries)."""


class DatapathError(NetpolError):
    """The kernel refused a BPF or tc operation."""
