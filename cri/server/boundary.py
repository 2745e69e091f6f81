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

from cni import logs
from proto import boundary

from ..errors import CriError

log = logging.getLogger("podwire.cri")


def status_code(exc: BaseException) -> grpc.StatusCode:
    """The code an exception leaving a handler is answered with."""
    return exc.code if isinstance(exc, CriError) else grpc.StatusCode.INTERNAL


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
    def on_error(context, exc):
        _abort(context, name, exc)
    if inspect.isgeneratorfunction(fn):
        return boundary.guarded(fn, on_error)
    return _bound(name, boundary.guarded(_observed(name, fn), on_error))


def _bound(name: str, fn):
    """Every line the RPC logs, its error included, carries its method and what it names."""
    @functools.wraps(fn)
    def unary(self, request, context):
        with logs.fields(method=name, **request_fields(request)):
            return fn(self, request, context)
    return unary


def _observed(name: str, fn):
    """Each unary call's duration and the code it is answered with: a debug line, and the
    latency histogram of the servicer's shim (``self.svc.metrics``, cri/server/metrics.py).
    Server-streaming RPCs (GetContainerEvents) last as long as the client listens and are
    not observed."""
    @functools.wraps(fn)
    def unary(self, request, context):
        start = time.monotonic()
        code = grpc.StatusCode.OK
        try:
            return fn(self, request, context)
        except Exception as exc:
            code = status_code(exc)
            raise
        finally:
            seconds = time.monotonic() - start
            log.debug("%s took %.1f ms", name, seconds * 1000, extra={"ms": round(seconds * 1000, 1)})
            self.svc.metrics.observe_rpc(name, code.name, seconds)
    return unary


def request_fields(request) -> dict:
    """What a request names, as log fields: the pod, the container, the image.  Never its
    auth (PullImageRequest.auth): the credentials stay out of every log line."""
    out = {"pod_id": _text(request, "pod_sandbox_id"), "container_id": _text(request, "container_id"),
           "image": _text(request, "image", "image")}
    name, namespace = _text(request, "config", "metadata", "name"), _text(request, "config", "metadata", "namespace")
    if name:    # RunPodSandbox (namespace/name) or CreateContainer (name)
        out["pod" if namespace else "container"] = f"{namespace}/{name}" if namespace else name
    return {k: v for k, v in out.items() if v}


def _text(obj, *path: str) -> str:
    """``obj.a.b`` if it is a string, else ""."""
    for attr in path:
        obj = getattr(obj, attr, None)
    return obj if isinstance(obj, str) else ""


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
