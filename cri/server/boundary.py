"""The one place where errors become gRPC statuses.

Every servicer method is wrapped (:func:`servicer`): a CriError aborts the RPC
with its code and message; anything else is a bug or an unexpected environment
failure, logged with its traceback and reported as INTERNAL.  Handlers below
never touch ``context.abort`` themselves.
"""
from __future__ import annotations

import functools
import inspect
import logging
import time

import grpc

from proto import boundary

from ..errors import CriError

log = logging.getLogger("podwire.cri")


def _abort(context: grpc.ServicerContext, name: str, exc: BaseException):
    if isinstance(exc, CriError):
        level = logging.INFO if exc.code in _EXPECTED else logging.WARNING
        log.log(level, "%s: %s", name, exc)
        context.abort(exc.code, exc.message)
    log.exception("%s: unexpected error", name)
    context.abort(grpc.StatusCode.INTERNAL, f"{name}: {type(exc).__name__}: {exc}")


# Outcomes that are part of normal operation (kubelet probes for them).
_EXPECTED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
             grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.CANCELLED}


def rpc(name: str, fn):
    """Wrap one servicer method (unary or server-streaming)."""
    return boundary.guarded(fn if inspect.isgeneratorfunction(fn) else _timed(name, fn),
                            lambda context, exc: _abort(context, name, exc))


def _timed(name: str, fn):
    @functools.wraps(fn)
    def unary(self, request, context):
        start = time.monotonic()
        try:
            return fn(self, request, context)
        finally:
            log.debug("%s took %.1f ms", name, (time.monotonic() - start) * 1000)
    return unary


def servicer(base: type):
    """Class decorator: wrap every RPC of the generated ``base`` servicer that the
    class defines.  RPCs the class does not define are an error at import time,
    so none can silently fall through to the generated "Method not implemented!"."""
    rpcs = [n for n, v in vars(base).items() if callable(v) and n[0].isupper()]

    def decorate(cls):
        missing = [n for n in rpcs if n not in vars(cls)]
        if missing:
            raise TypeError(f"{cls.__name__} lacks RPCs {missing}")
        for n in rpcs:
            setattr(cls, n, rpc(n, vars(cls)[n]))
        return cls
    return decorate
