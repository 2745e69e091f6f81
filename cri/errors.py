"""The one CRI error type, carrying the gRPC status code it becomes.

Raised anywhere below the servicers; converted to a gRPC status at exactly one
boundary (the server's RPC wrapper).  Helpers name the codes the CRI uses.
"""
from __future__ import annotations

import grpc


class CriError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid(message: str) -> CriError:
    return CriError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> CriError:
    return CriError(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str) -> CriError:
    return CriError(grpc.StatusCode.ALREADY_EXISTS, message)


def precondition(message: str) -> CriError:
    return CriError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> CriError:
    return CriError(grpc.StatusCode.UNAVAILABLE, message)


def internal(message: str) -> CriError:
    return CriError(grpc.StatusCode.INTERNAL, message)


def deadline(message: str) -> CriError:
    return CriError(grpc.StatusCode.DEADLINE_EXCEEDED, message)
