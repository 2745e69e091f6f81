"""A small in-process distribution registry for unit tests (no root, no processes).

It serves what tests put in it, can serve tampered bytes, counts requests, and can
demand Basic auth or Bearer tokens from its own /token endpoint.  The e2e tests use the
real docker-registry instead (tests/e2e/localregistry.py).
"""
from __future__ import annotations

import base64
import http.server
import re
import secrets
import socket
import threading
from typing import Optional

from ocitest import Blob

_ROUTE = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


class FakeRegistry:
    def __init__(self, auth: Optional[str] = None, user: str = "alice", password: str = "s3cret"):
        self.auth = auth                # None, "basic" or "bearer"
        self.user, self.password = user, password
        self.manifests: dict[tuple[str, str], Blob] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.tokens: set[str] = set()
        self.token_requests: list[dict] = []
        self.gates: dict[str, threading.Event] = {}     # blob digest -> served once set
        self.refresh_token = "refresh-me"               # accepted by POST /token
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeRegistry":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def push(self, repo: str, tag: str, top: Blob, blobs: list[Blob] = ()) -> str:
        """Serve ``top`` as ``repo:tag`` (and by digest), and ``blobs``; returns the ref."""
        self.manifests[(repo, tag)] = top
        self.manifests[(repo, top.digest)] = top
        for blob in blobs:
            self.blobs[blob.digest] = blob.data
        return f"{self.host}/{repo}:{tag}"

    def blob_gets(self, digest: str) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and p.endswith(f"/blobs/{digest}"))

    def _handler(self):
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def handle(self) -> None:
                # A TLS ClientHello (the client's HTTPS probe of a loopback registry): close
                # at once, as Go's server answers it, instead of waiting for a request line.
                if self.request.recv(1, socket.MSG_PEEK) == b"\x16":
                    return
                super().handle()

            def do_GET(self) -> None:
                registry.requests.append(("GET", self.path))
                if self.path.startswith("/token"):
                    return self._token()
                if not self._authorized():
                    return
                if self.path == "/v2/":
                    return self._send(200, b"{}", "application/json")
                m = _ROUTE.match(self.path.split("?")[0])
                if not m:
                    return self._send(404, b"{}", "application/json")
                if m["kind"] == "manifests":
                    blob = registry.manifests.get((m["repo"], m["ref"]))
                    return self._send(200, blob.data, blob.media_type) if blob else \
                        self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")
                gate = registry.gates.get(m["ref"])
                if gate is not None:
                    gate.wait(30)
                data = registry.blobs.get(m["ref"])
                return self._send(200, data, "application/octet-stream") if data is not None else \
                    self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json")

            def do_POST(self) -> None:
                # docker's OAuth2 refresh-token grant (what an identity token is used for)
                from urllib.parse import parse_qs
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                registry.requests.append(("POST", self.path))
                registry.token_requests.append(form)
                if form.get("grant_type") != "refresh_token" or \
                        form.get("refresh_token") != registry.refresh_token:
                    return self._send(401, b"{}", "application/json")
                token = secrets.token_hex(8)
                registry.tokens.add(token)
                self._send(200, ('{"access_token": "%s"}' % token).encode(), "application/json")

            def _authorized(self) -> bool:
                got = self.headers.get("Authorization", "")
                if registry.auth is None:
                    return True
                if registry.auth == "basic":
                    if got == "Basic " + _basic(registry.user, registry.password):
                        return True
                    challenge = 'Basic realm="fake"'
                else:
                    if got.startswith("Bearer ") and got[7:] in registry.tokens:
                        return True
                    repo = (_ROUTE.match(self.path.split("?")[0]) or {"repo": "x"})["repo"]
                    challenge = (f'Bearer realm="http://{registry.host}/token",service="fake",'
                                 f'scope="repository:{repo}:pull"')
                self._send(401, b"{}", "application/json", {"WWW-Authenticate": challenge})
                return False

            def _token(self) -> None:
                from urllib.parse import parse_qs, urlsplit
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                query["authorization"] = self.headers.get("Authorization", "")
                registry.token_requests.append(query)
                if query["authorization"] != "Basic " + _basic(registry.user, registry.password):
                    return self._send(401, b"{}", "application/json")
                token = secrets.token_hex(8)
                registry.tokens.add(token)
                self._send(200, ('{"token": "%s", "expires_in": 300}' % token).encode(),
                           "application/json")

            def _send(self, code: int, body: bytes, ctype: str, headers: dict = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
