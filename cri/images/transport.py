"""The registry client's HTTP/1.1: the standard library's http.client with keep-alive
connections, per-endpoint TLS settings, redirects and the environment's proxies.

Not requests: importing it (with urllib3, charset_normalizer and idna) cost the
long-running shim about 7 MiB of resident memory for the little a pull needs.

A connection serves one response at a time.  It is taken from the idle pool (or opened)
for a request and goes back only once its response has been read to the end; a response
closed early takes its connection with it, since unread bytes would corrupt the next
response.  So the pull's download threads never share a connection.

Failures below the HTTP status (socket, TLS, framing, redirect loops) are OSErrors:
TimeoutError when the peer made no progress within the read (or connect) timeout, else
the socket's own error or :class:`TransportError`.  Callers map them to CriError.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import os
import ssl
import threading
import urllib.parse
import urllib.request
from typing import Callable, Iterator, NamedTuple, Optional, Union

MAX_REDIRECTS = 30          # requests' limit, kept when this module replaced it
MAX_IDLE_PER_ORIGIN = 10    # idle connections kept per origin (requests' pool size)
DRAIN_LIMIT = 64 << 10      # a rest of a body this small is read to keep the connection
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}

Timeout = tuple[float, float]       # (connect, read); read bounds the time without progress
Verify = Union[bool, str]           # False: no verification; a path: CA bundle file or directory
ClientCert = Union[str, tuple, None]    # "cert-and-key.pem" or ("cert.pem", "key.pem")


class TransportError(OSError):
    """The exchange failed below HTTP: a malformed or truncated response, a redirect loop."""


class Route(NamedTuple):
    """How a request for one URL travels: straight to its origin or through a proxy."""
    scheme: str
    host: str
    port: int
    target: str                         # what the request line asks for
    proxy: Optional[tuple] = None       # (host, port) to connect to instead of the origin
    proxy_auth: str = ""                # Proxy-Authorization value, from the proxy URL's user:password

    @property
    def tunnel(self) -> bool:
        """HTTPS goes through a proxy in a CONNECT tunnel (TLS stays end to end); plain HTTP
        asks the proxy for the absolute URL instead."""
        return self.proxy is not None and self.scheme == "https"


def route(url: str) -> Route:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise TransportError(f"{url}: want an http(s) URL")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    proxy = proxy_for(parts)
    if proxy is None:
        return Route(parts.scheme, parts.hostname, port, path)
    target = path if parts.scheme == "https" else f"http://{parts.netloc}{path}"
    return Route(parts.scheme, parts.hostname, port, target,
                 (proxy.hostname, proxy.port or 80), _proxy_auth(proxy))


def proxy_for(parts: urllib.parse.SplitResult) -> Optional[urllib.parse.SplitResult]:
    """The proxy the environment names for a URL (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, any
    case), unless NO_PROXY exempts its host."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or _bypass(parts, proxies.get("no", "")):
        return None
    return urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Response:
    """Status and headers of a response whose body is read as it arrives.  Close it (or
    use ``with``) so its connection can serve the next request."""

    def __init__(self, raw: http.client.HTTPResponse, url: str,
                 release: Callable[[bool], None]) -> None:
        self.status = raw.status
        self.headers = raw.headers      # an http.client.HTTPMessage: get() ignores case
        self.url = url                  # after redirects
        self._raw = raw
        self._release: Optional[Callable[[bool], None]] = release

    def read(self, limit: int) -> bytes:
        """The body, or its first ``limit`` bytes if it is longer."""
        body = bytearray()
        while len(body) < limit and (chunk := self._read(limit - len(body))):
            body += chunk
        return bytes(body)

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        """The body in pieces of up to ``chunk_size`` bytes, as sent: a Content-Encoding is
        not undone, since a blob's digest is of the bytes the registry stores."""
        while chunk := self._read(chunk_size):
            yield chunk

    def close(self) -> None:
        if self._release is None:
            return
        release, self._release = self._release, None
        raw = self._raw
        if not raw.isclosed() and raw.length is not None and raw.length <= DRAIN_LIMIT:
            try:
                raw.read()          # a 401's or a redirect's small body: keep the connection
            except (OSError, http.client.HTTPException):
                pass
        reusable = raw.isclosed() and not raw.will_close
        raw.close()
        release(reusable)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, amt: int) -> bytes:
        try:
            data = self._raw.read(amt)
        except http.client.HTTPException as exc:
            raise _protocol_error(exc) from None
        if not data and self._raw.length:
            # http.client ends a body cut short of its Content-Length silently.
            raise TransportError(f"connection closed {self._raw.length} bytes before the end of the body")
        return data


class Transport:
    """Requests with connection reuse per (scheme, host, port, proxy, TLS settings).
    Thread-safe; one per pull, closed at its end."""

    def __init__(self, timeout: Timeout, headers: Optional[dict] = None) -> None:
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._contexts: dict[tuple, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def request(self, method: str, url: str, headers: Optional[dict] = None,
                body: Optional[bytes] = None, verify: Verify = True, cert: ClientCert = None,
                timeout: Optional[Timeout] = None) -> Response:
        """Send, following redirects (to object storage, usually).  Authorization is not
        sent on to another origin: a presigned URL carries its own, and a registry's token
        is nobody else's business."""
        headers = {**self._headers, **(headers or {})}
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._exchange(method, url, headers, body, (verify, cert), timeout or self._timeout)
            location = resp.headers.get("Location")
            if resp.status not in REDIRECTS or not location:
                return resp
            resp.close()
            target = urllib.parse.urljoin(url, location)
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", None     # as browsers (and requests) do
            url = target
        raise TransportError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def _exchange(self, method: str, url: str, headers: dict, body: Optional[bytes],
                  tls: tuple, timeout: Timeout) -> Response:
        way = route(url)
        if way.proxy and not way.tunnel and way.proxy_auth:
            headers = {**headers, "Proxy-Authorization": way.proxy_auth}
        key = (way.scheme, way.host, way.port, way.proxy, tls)
        conn = self._take_idle(key)
        if conn is not None:
            try:
                return self._send(conn, key, method, url, way.target, headers, body, timeout)
            except ConnectionError:
                pass    # the server closed it while it was idle; send again on a new one
        conn = self._connect(way, tls, timeout)
        return self._send(conn, key, method, url, way.target, headers, body, timeout)

    def _send(self, conn: http.client.HTTPConnection, key: tuple, method: str, url: str,
              target: str, headers: dict, body: Optional[bytes], timeout: Timeout) -> Response:
        try:
            conn.sock.settimeout(timeout[1])
            conn.request(method, target, body=body, headers=headers)
            raw = conn.getresponse()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, http.client.HTTPException):
                raise _protocol_error(exc) from None
            raise
        return Response(raw, url, lambda reusable: self._give_back(key, conn, reusable))

    def _connect(self, way: Route, tls: tuple, timeout: Timeout) -> http.client.HTTPConnection:
        host, port = way.proxy or (way.host, way.port)
        conn: http.client.HTTPConnection
        if way.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout[0],
                                               context=self._context(tls))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout[0])
        if way.tunnel:
            conn.set_tunnel(way.host, way.port,
                            {"Proxy-Authorization": way.proxy_auth} if way.proxy_auth else None)
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        return conn

    def _context(self, tls: tuple) -> ssl.SSLContext:
        """One context per TLS setting: loading the system's CA store takes milliseconds."""
        with self._lock:
            if tls not in self._contexts:
                self._contexts[tls] = _ssl_context(*tls)
            return self._contexts[tls]

    def _take_idle(self, key: tuple) -> Optional[http.client.HTTPConnection]:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _give_back(self, key: tuple, conn: http.client.HTTPConnection, reusable: bool) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if reusable and len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(conn)
                return
        conn.close()


def _ssl_context(verify: Verify, cert: ClientCert) -> ssl.SSLContext:
    if verify is True:
        ctx = ssl.create_default_context()
    elif verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif os.path.isdir(verify):
        ctx = ssl.create_default_context(capath=verify)
    else:
        ctx = ssl.create_default_context(cafile=verify)
    if cert:
        ctx.load_cert_chain(*((cert,) if isinstance(cert, str) else cert))
    return ctx


def _bypass(parts: urllib.parse.SplitResult, no_proxy: str) -> bool:
    if urllib.request.proxy_bypass(parts.netloc):
        return True
    # requests also took networks in NO_PROXY (10.96.0.0/12, common on clusters); urllib does not.
    if parts.hostname is None:
        return False
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return False
    return any(ip in net for net in _networks(no_proxy))


def _networks(no_proxy: str) -> Iterator:
    for entry in no_proxy.split(","):
        if "/" in entry:
            try:
                yield ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                continue


def _proxy_auth(proxy: urllib.parse.SplitResult) -> str:
    if proxy.username is None:
        return ""
    return basic_auth(urllib.parse.unquote(proxy.username), urllib.parse.unquote(proxy.password or ""))


def _origin(url: str) -> tuple:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme)


def _protocol_error(exc: http.client.HTTPException) -> OSError:
    if isinstance(exc, OSError):
        return exc      # RemoteDisconnected is a ConnectionResetError too
    return TransportError(f"bad HTTP response: {exc!r}")
