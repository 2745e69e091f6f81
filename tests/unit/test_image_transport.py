"""The registry client's HTTP transport (cri/images/transport.py) against tiny in-process
HTTP/1.1 servers: redirects and where Authorization goes, chunked and truncated bodies,
connection reuse, proxies; and that the shim pulls without importing requests."""
from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time

import grpc
import pytest

from cri.errors import CriError
from cri.images import transport
from cri.images.service import ImageService
from cri.images.transport import Transport, TransportError

TIMEOUT = (2.0, 2.0)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Server:
    """An HTTP/1.1 server on 127.0.0.1 whose handler for every request is ``respond``;
    it records (path, client port, headers) of each request."""

    def __init__(self, respond, tls: ssl.SSLContext = None) -> None:
        self.seen: list[tuple[str, int, dict]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.seen.append((self.path, self.client_address[1], dict(self.headers)))
                respond(self)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if tls:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "/", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(respond, tls: ssl.SSLContext = None) -> Server:
        servers.append(Server(respond, tls))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


@pytest.fixture
def client():
    http = Transport(TIMEOUT)
    yield http
    http.close()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def reply(handler, body: bytes = b"ok", status: int = 200, headers: dict = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def chunked(handler, pieces: list[bytes]) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for piece in pieces:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    handler.wfile.write(b"0\r\n\r\n")


def test_redirect_to_another_host_drops_authorization(serve, client):
    storage = serve(lambda h: reply(h, b"blob bytes"))
    registry = serve(lambda h: reply(h, b"", 307, {"Location": storage.url("/b?sig=1", "localhost")}))
    with client.request("GET", registry.url("/v2/r/blobs/x"), {"Authorization": "Bearer t"}) as resp:
        assert resp.status == 200 and resp.read(100) == b"blob bytes"
        assert resp.url == storage.url("/b?sig=1", "localhost")
    assert registry.seen[0][2]["Authorization"] == "Bearer t"
    assert storage.seen[0][0] == "/b?sig=1" and "Authorization" not in storage.seen[0][2]


def test_redirect_on_the_same_origin_keeps_authorization(serve, client):
    def respond(h):
        reply(h, b"", 302, {"Location": "/moved"}) if h.path == "/first" else reply(h)
    server = serve(respond)
    with client.request("GET", server.url("/first"), {"Authorization": "Bearer t"}) as resp:
        assert resp.read(10) == b"ok"
    assert [(p, hdrs.get("Authorization")) for p, _, hdrs in server.seen] == \
        [("/first", "Bearer t"), ("/moved", "Bearer t")]


def test_redirect_loop_is_an_error(serve, client):
    server = serve(lambda h: reply(h, b"", 301, {"Location": "/again"}))
    with pytest.raises(TransportError, match="redirects"):
        client.request("GET", server.url())
    assert len(server.seen) == transport.MAX_REDIRECTS + 1


def test_chunked_body_streams_and_reads_with_a_limit(serve, client):
    pieces = [b"a" * 5, b"b" * 70_000, b"c"]
    server = serve(lambda h: chunked(h, pieces))
    with client.request("GET", server.url()) as resp:
        got = list(resp.iter_content(1 << 16))
    assert b"".join(got) == b"".join(pieces) and max(map(len, got)) <= 1 << 16
    with client.request("GET", server.url()) as resp:
        assert resp.read(10) == b"aaaaabbbbb"


def test_truncated_body_is_an_error(serve, client):
    def respond(h):
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b"only 16 bytes...")
        h.close_connection = True
    server = serve(respond)
    with client.request("GET", server.url()) as resp:
        with pytest.raises(TransportError, match="84 bytes before the end"):
            b"".join(resp.iter_content(1024))


def test_sequential_requests_reuse_one_connection(serve, client):
    server = serve(lambda h: reply(h, b"x" * 1000))
    for _ in range(3):
        with client.request("GET", server.url()) as resp:
            resp.read(2000)
    with client.request("GET", server.url(), {"Authorization": "Basic e30="}):
        pass        # closed unread: the small rest is read so the connection stays usable
    with client.request("GET", server.url()) as resp:
        resp.read(2000)
    assert len({port for _, port, _ in server.seen}) == 1


def test_open_responses_never_share_a_connection(serve, client):
    server = serve(lambda h: reply(h))
    first = client.request("GET", server.url())
    second = client.request("GET", server.url())
    assert first.read(10) == second.read(10) == b"ok"
    first.close(), second.close()
    assert server.seen[0][1] != server.seen[1][1]


def test_connection_closed_while_idle_is_replaced(serve, client):
    def respond(h):
        reply(h)
        h.close_connection = True       # without saying so: the client finds out on reuse
    server = serve(respond)
    for _ in range(2):
        with client.request("GET", server.url()) as resp:
            assert resp.read(10) == b"ok"
    assert len(server.seen) == 2 and server.seen[0][1] != server.seen[1][1]


def test_concurrent_downloads_each_get_their_own_connection(serve, client):
    """Many threads, few connections: no response may arrive on another's connection."""
    server = serve(lambda h: reply(h, h.path.encode() * 2000))
    errors = []

    def fetch(i):
        for j in range(20):
            path = f"/{i}-{j}"
            with client.request("GET", server.url(path)) as resp:
                if resp.read(1 << 20) != path.encode() * 2000:
                    errors.append(path)
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(server.seen) == 120
    assert len({port for _, port, _ in server.seen}) <= 6


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_tls_verification_ca_bundle_and_client_certificate(serve, client, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    tls.verify_mode = ssl.CERT_REQUIRED     # the same self-signed certificate, as the client's
    tls.load_verify_locations(cert)
    server = serve(lambda h: reply(h, b"secret"), tls)
    url = server.url(scheme="https")

    with pytest.raises(ssl.SSLCertVerificationError):
        client.request("GET", url, cert=(cert, key))        # not in the system's CA store
    with pytest.raises(OSError):
        client.request("GET", url, verify=cert)              # no client certificate
    for verify in (cert, False):
        with client.request("GET", url, verify=verify, cert=(cert, key)) as resp:
            assert resp.read(10) == b"secret"


def test_plain_http_through_a_proxy_asks_for_the_absolute_url(serve, client, monkeypatch):
    proxy = serve(lambda h: reply(h, b"via proxy"))
    monkeypatch.setenv("http_proxy", f"http://bob:p%40ss@127.0.0.1:{proxy.port}")
    with client.request("GET", "http://registry.invalid:5000/v2/?n=1") as resp:
        assert resp.read(100) == b"via proxy"
    path, _, headers = proxy.seen[0]
    assert path == "http://registry.invalid:5000/v2/?n=1" and headers["Host"] == "registry.invalid:5000"
    assert headers["Proxy-Authorization"] == transport.basic_auth("bob", "p@ss")


def test_proxy_selection(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:pw@proxy.corp:3128")
    monkeypatch.setenv("http_proxy", "plainproxy:8080")
    monkeypatch.setenv("NO_PROXY", "internal.corp, 10.0.0.0/8,bad/net")

    https = transport.route("https://registry.k8s.io/v2/pause/manifests/3.9")
    assert https.tunnel and https.proxy == ("proxy.corp", 3128)
    assert https.target == "/v2/pause/manifests/3.9" and (https.host, https.port) == ("registry.k8s.io", 443)
    assert https.proxy_auth == transport.basic_auth("alice", "pw")

    plain = transport.route("http://mirror.example:5000/v2/x?y=1")
    assert not plain.tunnel and plain.proxy == ("plainproxy", 8080) and not plain.proxy_auth
    assert plain.target == "http://mirror.example:5000/v2/x?y=1"

    for exempt in ("https://internal.corp/v2/", "https://registry.internal.corp:5000/v2/",
                   "http://10.1.2.3:5000/v2/"):
        way = transport.route(exempt)
        assert way.proxy is None and way.target == "/v2/", exempt
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("ALL_PROXY", "http://everything:1")
    assert transport.route("https://quay.io/v2/").proxy == ("everything", 1)


def test_a_registry_that_stops_answering_is_unavailable(tmp_path):
    """A timeout maps to UNAVAILABLE "no progress", as with the HTTP client before."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    config = tmp_path / "certs.d" / host / "hosts.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'server = "http://{host}"\n')     # plain HTTP only: no TLS handshake to wait for
    try:
        svc = ImageService(root=str(tmp_path / "img"), hosts_dir=str(tmp_path / "certs.d"),
                           pull_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(CriError) as exc:
            svc.pull(f"{host}/t/x:1")
        assert exc.value.code == grpc.StatusCode.UNAVAILABLE and "no progress" in exc.value.message
        assert time.monotonic() - started < 5
    finally:
        silent.close()


PULL_WITHOUT_REQUESTS = """
import sys
import cri.server.main
from cri.images.service import ImageService
from fakeregistry import FakeRegistry
from ocitest import Tar, image
img = image([Tar().file("etc/hello", b"hi").bytes()], {})
with FakeRegistry() as reg:
    ref = reg.push("t/x", "1", img.manifest, img.blobs)
    assert ImageService(root=sys.argv[1], hosts_dir=None).pull(ref).id == img.id
print(sorted(m for m in ("requests", "urllib3", "charset_normalizer", "idna") if m in sys.modules))
"""


def test_the_shim_pulls_without_importing_requests(tmp_path):
    """In a fresh interpreter: other tests (and pytest plugins) may have imported requests here."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    out = subprocess.run([sys.executable, "-c", PULL_WITHOUT_REQUESTS, str(tmp_path / "img")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
