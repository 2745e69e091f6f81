"""The daemons' log lines: one structured format for podwire-cnid, podwire-cri and
``podwire-netpol serve``, on stderr (the journal under systemd).

Two formats, chosen in each daemon's config (``log_format``):

* ``text`` (the default): logfmt, one ``key=value`` line per record --
  ``time=2026-01-02T03:04:05.678Z level=info component=podwire-cri logger=podwire.cri.images
  msg="pulled …" method=PullImage image=busybox``.  People read it in ``journalctl``, and
  Loki, Vector or ``hl`` parse it without configuration.
* ``json``: one object per line with the same keys, for collectors that want JSON.

A record's fields are the ``extra=`` of the log call plus those bound for the current
thread with :func:`fields` (the CRI binds the RPC method and the pod, container or image
it names).  An exception's traceback is the ``exc`` field: one line per record either
way, so the journal never splits a traceback into entries interleaved with other threads.

Every message, field and traceback passes :func:`redact` first: Authorization headers,
``Bearer``/``Basic`` credentials, ``password=``-like pairs, registry auth JSON, URL
passwords and JWTs become ``[REDACTED]``.  That is defence in depth: the code should never
log a secret in the first place (cri/images keeps credentials away from its log calls).

Standard library only: cni/ sits below cri/ and netpol/, and the CNI side imports nothing
else on its start-up path.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import re
import sys
import types
from typing import Any, Iterator, Mapping, Optional, TextIO

FORMATS = ("text", "json")
DEFAULT_FORMAT = "text"
LEVELS = ("debug", "info", "warning", "error")
REDACTED = "[REDACTED]"

_FIELDS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "podwire_log_fields", default=types.MappingProxyType({}))
# What every LogRecord carries; anything else on a record came in through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def check_format(value: str) -> str:
    """``value`` if it names a format, else ValueError saying which ones do."""
    if value not in FORMATS:
        raise ValueError(f"log_format {value!r} is not one of {', '.join(FORMATS)}")
    return value


def check_level(value: str) -> str:
    """``value`` lower-cased if it names a level, else ValueError saying which ones do."""
    if not isinstance(value, str) or value.lower() not in LEVELS:
        raise ValueError(f"log_level {value!r} is not one of {', '.join(LEVELS)}")
    return value.lower()


@contextlib.contextmanager
def fields(**values: Any) -> Iterator[None]:
    """Add ``values`` to every record logged by this thread (or task) inside the block."""
    token = _FIELDS.set({**_FIELDS.get(), **{k: v for k, v in values.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _FIELDS.reset(token)


# -- redaction ----------------------------------------------------------------------------

_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
# "Authorization: Basic Ym9i…", 'Authorization': 'Bearer …', X-Registry-Auth=…: the whole value.
_HEADER = re.compile(r'(?i)\b((?:proxy-)?authorization|x-registry-auth)(["\']?\s*[:=]\s*)'
                     r'(' + _QUOTED + r'|[^\r\n,;}]+)')
# A credential after its scheme, wherever it appears; not a challenge's parameters.
# (Prose -- "Basic auth", "Bearer token" -- is left alone.)
_SCHEME = re.compile(r'(?i)\b(bearer|basic)\s+(?!(?:realm|service|scope|error)=|'
                     r'(?:auth|authentication|token|tokens|challenge|credentials|scheme)\b)'
                     r'([A-Za-z0-9._~+/-]+=*)')
# password=…, "auth": "…", registry_token: "…" (CRI AuthConfig as text), ?X-Amz-Signature=…;
# not a URL's path ("…/token: HTTP 501").
_PAIR = re.compile(r'(?i)(["\']?)(?<![\w/.:-])([\w-]*(?:password|passwd|secret|token|auth|credentials?|signature))'
                   r'\1(\s*[:=]\s*)(?!\[REDACTED\])(' + _QUOTED + r'|[^\s"\',;&}\])]+)')
_URL_PASSWORD = re.compile(r'(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):([^/\s@]+)@')
_JWT = re.compile(r'\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*')
_SECRET_KEY = re.compile(r'(?i)(password|passwd|secret|token|auth|credential|cookie|signature)')
_HINT = re.compile(r'(?i)auth|bearer|basic|pass|secret|token|credential|signature|://|eyJ')


def _requote(value: str) -> str:
    return f"{value[0]}{REDACTED}{value[0]}" if value[:1] in ('"', "'") else REDACTED


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    if not _HINT.search(text):
        return text     # the common line: no regex work beyond this scan
    text = _HEADER.sub(lambda m: m[1] + m[2] + _requote(m[3].strip()), text)
    text = _SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _PAIR.sub(lambda m: m[1] + m[2] + m[1] + m[3] + _requote(m[4]), text)
    text = _URL_PASSWORD.sub(lambda m: f"{m[1]}:{REDACTED}@", text)
    return _JWT.sub(REDACTED, text)


def redact_field(key: str, value: Any) -> Any:
    """A field's value as it may be logged: all of it hidden when its name says secret,
    else its text redacted."""
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return redact(value if isinstance(value, str) else str(value))


# -- formatting ---------------------------------------------------------------------------

class Formatter(logging.Formatter):
    """One line per record in ``fmt`` ("text" or "json") for ``component``."""

    def __init__(self, component: str, fmt: str = DEFAULT_FORMAT) -> None:
        super().__init__()
        self.component = component
        self.json = check_format(fmt) == "json"

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _timestamp(record.created), "level": record.levelname.lower(),
            "component": self.component, "logger": record.name,
            "msg": redact(record.getMessage())}
        for key, value in {**getattr(record, "podwire_fields", {}), **_extras(record)}.items():
            if key not in doc:
                doc[key] = redact_field(key, value)
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exc"] = redact(record.exc_text)
        if record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        if self.json:
            return json.dumps(doc, ensure_ascii=False, default=str)
        return " ".join(f"{key}={_logfmt(value)}" for key, value in doc.items())


class _ContextFields(logging.Filter):
    """Copies the thread's :func:`fields` onto the record as it is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.podwire_fields = _FIELDS.get()
        return True


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items()
            if k not in _STANDARD and k != "podwire_fields" and not k.startswith("_")}


def _timestamp(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+')


def _logfmt(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = value if isinstance(value, str) else str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)    # quoted, with \" \\ \n \t escapes


# -- set-up -------------------------------------------------------------------------------

def setup(component: str, level: str = "info", fmt: str = DEFAULT_FORMAT, *,
          loggers: tuple = (), stream: Optional[TextIO] = None) -> logging.Handler:
    """Send every record to ``stream`` (stderr) as ``fmt``.  With ``loggers``, those log
    at ``level`` and everything else (libraries) at warning; without, all at ``level``.
    Replaces a handler an earlier call installed; returns the new one."""
    level = check_level(level).upper()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(Formatter(component, fmt))
    handler.addFilter(_ContextFields())
    handler.podwire = True      # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "podwire", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel("WARNING" if loggers else level)
    for name in loggers:
        logging.getLogger(name).setLevel(level)
    return handler
