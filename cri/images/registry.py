"""OCI distribution API client for one repository: manifests and verified blobs.

Requests go to the host's endpoints (hosts.py) in order: mirrors, then the upstream.
An endpoint that fails (unreachable, TLS error, 404, 5xx, bad content) hands over to
the next.  If all fail, the error of the last one that answered (else of the last one
tried) is reported, with the others appended.  Once an endpoint has served the
manifest, the pull's other requests go to it first.

Content is verified against its digest before anyone sees it: manifests in memory,
blobs while they stream to disk (the caller's file; the store removes it on error).
"""
from __future__ import annotations

import logging
import threading
from typing import BinaryIO, Callable, Optional

import grpc

from . import digest as digests
from .auth import Authorizer, Credentials
from .hosts import Endpoint, HostsConfig
from .manifest import ACCEPT, Descriptor
from .reference import Reference
from .transport import Response, Transport
from ..errors import CriError

log = logging.getLogger("podwire.cri.images")

USER_AGENT = "podwire/0.1"
MAX_MANIFEST = 4 << 20      # containerd's limit: a manifest or config never needs more
CHUNK = 1 << 20
Progress = Callable[[str, int, int], None]    # (digest, bytes done, bytes total)

_HTTP_CODES = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED,
               404: grpc.StatusCode.NOT_FOUND, 429: grpc.StatusCode.UNAVAILABLE}


class Repository:
    """One repository of one registry, for the duration of one pull."""

    def __init__(self, ref: Reference, hosts: HostsConfig, creds: Optional[Credentials] = None,
                 timeout: float = 300.0, connect_timeout: float = 10.0) -> None:
        self.ref = ref
        self.endpoints = hosts.endpoints(ref.domain)
        # The read timeout bounds the time without progress, not the whole download.
        self._http = Transport((connect_timeout, timeout), {"User-Agent": USER_AGENT})
        self._auth = Authorizer(self._http, creds, f"repository:{ref.path}:pull", timeout)
        self._preferred: Optional[Endpoint] = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resolve(self) -> tuple[str, str, bytes]:
        """The reference's manifest (or index): (digest, media type, body).  By digest it
        needs endpoints that may ``pull``; by tag, endpoints that may ``resolve``."""
        obj = self.ref.object
        capability = "pull" if self.ref.digest else "resolve"
        media_type, body = self._on_endpoints(capability, lambda ep: self._manifest(ep, obj))
        found = digests.of_bytes(body)
        if self.ref.digest and found != self.ref.digest:
            raise digests.mismatch(f"manifest {self.ref}", self.ref.digest, found)
        return found, media_type, body

    def manifest(self, digest: str) -> tuple[str, bytes]:
        """A manifest by digest (an index entry), verified."""
        media_type, body = self._on_endpoints("pull", lambda ep: self._manifest(ep, digest))
        digests.verify_bytes(body, digest, f"manifest {digest}")
        return media_type, body

    def blob_bytes(self, desc: Descriptor) -> bytes:
        """A small blob (an image config) in memory, verified."""
        if desc.size > MAX_MANIFEST:
            raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"blob {desc.digest} is {desc.size} bytes; refusing to load it in memory")

        def fetch(ep: Endpoint) -> bytes:
            with self._get(ep, f"/blobs/{desc.digest}", {}) as resp:
                return _read_limited(resp, MAX_MANIFEST)
        body = self._on_endpoints("pull", fetch)
        digests.verify_bytes(body, desc.digest, f"blob {desc.digest}")
        return body

    def download(self, desc: Descriptor, out: BinaryIO, progress: Optional[Progress] = None) -> None:
        """Stream a blob into ``out`` (rewound for each endpoint tried), verifying its size
        and digest; raises DATA_LOSS on a mismatch."""
        def fetch(ep: Endpoint) -> None:
            out.seek(0)
            out.truncate()
            with self._get(ep, f"/blobs/{desc.digest}", {}) as resp:
                _copy_verified(resp, desc, out, progress)
        self._on_endpoints("pull", fetch)

    # -- transport -------------------------------------------------------------------------

    def _manifest(self, ep: Endpoint, obj: str) -> tuple[str, bytes]:
        with self._get(ep, f"/manifests/{obj}", {"Accept": ACCEPT}) as resp:
            return resp.headers.get("Content-Type", ""), _read_limited(resp, MAX_MANIFEST)

    def _get(self, ep: Endpoint, path: str, headers: dict) -> Response:
        """GET ``<api>/<repo><path>`` with auth; a 401 is answered once, then retried."""
        url = f"{ep.api}/{self.ref.path}{path}"
        sent = {**_merge(ep.headers), **headers, **self._auth.header(url)}
        resp = self._request(ep, url, sent)
        if resp.status == 401:
            resp.close()        # its status, URL and challenge stay readable
            if self._auth.answer(resp, sent):
                sent = {**sent, **self._auth.header(url)}
                resp = self._request(ep, url, sent)
        if resp.status != 200:
            resp.close()
            raise _http_error(resp, url)
        return resp

    def _request(self, ep: Endpoint, url: str, headers: dict) -> Response:
        try:
            return self._http.request("GET", url, headers, verify=ep.verify, cert=ep.cert)
        except TimeoutError as exc:
            raise CriError(grpc.StatusCode.UNAVAILABLE, f"GET {url}: no progress: {exc}") from None
        except OSError as exc:
            raise CriError(grpc.StatusCode.UNAVAILABLE, f"GET {url}: {exc}") from None

    def _on_endpoints(self, capability: str, fn):
        """``fn(endpoint)`` on each capable endpoint until one succeeds."""
        failures: list[tuple[Endpoint, CriError]] = []
        for ep in self._ordered(capability):
            try:
                result = fn(ep)
            except CriError as exc:
                log.debug("%s: %s", ep.api, exc.message)
                failures.append((ep, exc))
                continue
            with self._lock:
                self._preferred = self._preferred or ep
            return result
        raise _summarise(failures, capability, self.ref)

    def _ordered(self, capability: str) -> list[Endpoint]:
        capable = [ep for ep in self.endpoints if ep.can(capability)]
        if self._preferred in capable:
            capable.remove(self._preferred)
            capable.insert(0, self._preferred)
        return capable


def _copy_verified(resp: Response, desc: Descriptor, out: BinaryIO,
                   progress: Optional[Progress]) -> None:
    verifier = digests.Verifier(desc.digest)
    try:
        # As sent: a Content-Encoding must not be undone before hashing.
        for chunk in resp.iter_content(CHUNK):
            verifier.update(chunk)
            if verifier.size > desc.size:
                break
            out.write(chunk)
            if progress:
                progress(desc.digest, verifier.size, desc.size)
    except OSError as exc:
        raise CriError(grpc.StatusCode.UNAVAILABLE, f"blob {desc.digest}: {exc}") from None
    if verifier.size != desc.size:
        raise CriError(grpc.StatusCode.DATA_LOSS, f"blob {desc.digest}: size mismatch: expected "
                       f"{desc.size}, got {'more' if verifier.size > desc.size else verifier.size}")
    verifier.verify(f"blob {desc.digest}")


def _read_limited(resp: Response, limit: int) -> bytes:
    try:
        body = resp.read(limit + 1)
    except OSError as exc:
        raise CriError(grpc.StatusCode.UNAVAILABLE, f"{resp.url}: {exc}") from None
    if len(body) > limit:
        raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                       f"{resp.url}: response larger than {limit} bytes")
    return body


def _merge(pairs: tuple) -> dict:
    merged: dict[str, str] = {}
    for name, value in pairs:
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return merged


def _http_error(resp: Response, url: str) -> CriError:
    code = _HTTP_CODES.get(resp.status)
    if code is None:
        code = grpc.StatusCode.UNAVAILABLE if resp.status >= 500 else grpc.StatusCode.UNKNOWN
    return CriError(code, f"GET {url}: HTTP {resp.status}")


def _summarise(failures: list, capability: str, ref: Reference) -> CriError:
    if not failures:
        return CriError(grpc.StatusCode.FAILED_PRECONDITION,
                        f"{ref.domain}: no registry endpoint may {capability} (see hosts.toml)")
    # An endpoint that answered (404, 401, bad content) says more than one that could
    # not be reached; among those, the last tried (the upstream, usually) has the say.
    answered = [exc for _, exc in failures if exc.code != grpc.StatusCode.UNAVAILABLE]
    main = (answered or [exc for _, exc in failures])[-1]
    others = "; ".join(exc.message for _, exc in failures if exc is not main)
    return CriError(main.code, main.message + (f" (also tried: {others})" if others else ""))
