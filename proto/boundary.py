"""The gRPC error boundary both of podwire's servers share (podwire-cri and podwire-netpol).

Each component keeps its own error type and its own conversion to a status; what they share is
the wrapper that sends whatever a servicer method raises, unary or server-streaming, to that
conversion, so no handler ever calls ``context.abort`` itself.  It lives here, beside the
generated code both import, because netpol/ may not import cri/ (and the reverse would make
the runtime depend on the policy agent)."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

OnError = Callable[[Any, Exception], None]  # (grpc context, exception): aborts the RPC


def guarded(method: Callable, on_error: OnError) -> Callable:
    """``method`` (self, request, context) with every exception handed to ``on_error``."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - this is the boundary
                on_error(context, exc)
        return stream

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - this is the boundary
            on_error(context, exc)
    return unary
