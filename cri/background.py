"""One call run on a thread of its own while the caller does something else: for independent
steps of an RPC that each mostly wait (on a helper process, on another daemon).  The thread
only makes the call -- nothing in it switches namespace (no setns() in threads)."""
from __future__ import annotations

import threading
from typing import Any, Callable


class Call:
    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._fn, self._args = fn, args
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"bg-{getattr(fn, '__name__', 'call')}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever joins
            self._error = exc

    def result(self) -> Any:
        """Wait for the call; its value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def succeeded(self) -> bool:
        """Wait for the call; whether it returned a true value (an exception is False)."""
        self._thread.join()
        return self._error is None and bool(self._value)


def call(fn: Callable[..., Any], *args: Any) -> Call:
    return Call(fn, *args)
