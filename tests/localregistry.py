"""A real registry for e2e tests: Debian's docker-registry (distribution 2.8) on
127.0.0.1:<free port>, optionally behind htpasswd Basic auth or Bearer tokens from a
small token server (:class:`TokenServer`) run in-process.

Several instances may share one storage directory: the auth variants serve the images
pushed to the open one.  Its access log (Apache format, on stdout) is kept so tests can
count requests, e.g. how often a blob was downloaded.
"""
from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from typing import Optional
from urllib.parse import parse_qs, urlsplit

import requests

REGISTRY_BIN = "/usr/bin/docker-registry"
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    def __init__(self, workdir: str, storage: str, auth: Optional[dict] = None) -> None:
        """``auth``: None, or the registry config's ``auth`` section."""
        self.workdir, self.storage, self.auth = workdir, storage, auth
        self.port = free_port()
        self.log_path = os.path.join(workdir, "registry.log")
        self._proc: Optional[subprocess.Popen] = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> "LocalRegistry":
        os.makedirs(self.workdir, exist_ok=True)
        config = os.path.join(self.workdir, "config.yml")
        with open(config, "w") as f:
            json.dump(self._config(), f)        # JSON is YAML
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen([REGISTRY_BIN, "serve", config], stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=_die_with_parent)
        self._wait_ready()
        return self

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request served so far."""
        with open(self.log_path, errors="replace") as f:
            return [(m["method"], m["path"], int(m["status"]))
                    for m in map(_ACCESS.search, f) if m]

    def blob_gets(self, digest: str) -> int:
        """Successful downloads of a blob (redirects and 401s not counted)."""
        return sum(1 for method, path, status in self.requests()
                   if method == "GET" and path.endswith(f"/blobs/{digest}") and status == 200)

    def _config(self) -> dict:
        cfg = {"version": 0.1,
               "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
               "storage": {"filesystem": {"rootdirectory": self.storage},
                           "delete": {"enabled": True}},
               "http": {"addr": self.host}}
        if self.auth:
            cfg["auth"] = self.auth
        return cfg

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {open(self.log_path).read()[-2000:]}")
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry on {self.host} did not come up")


def _die_with_parent() -> None:
    """In the child: SIGTERM when pytest dies, so even a killed run leaves no registry."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def htpasswd_auth(workdir: str, user: str, password: str) -> dict:
    """The registry ``auth`` section for Basic auth with one bcrypt user."""
    import bcrypt
    path = os.path.join(workdir, "htpasswd")
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}\n")
    return {"htpasswd": {"realm": "podwire-test", "path": path}}


class TokenServer:
    """Docker's token protocol: GET /token?service=…&scope=… with Basic credentials ->
    a JWT signed by a self-signed certificate the registry trusts (``rootcertbundle``);
    the certificate travels in the JWT's ``x5c`` header."""

    SERVICE = "podwire-test"
    ISSUER = "podwire-test-issuer"

    def __init__(self, workdir: str, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.requests: list[dict] = []
        self._key, cert_der = _self_signed()
        self._x5c = base64.b64encode(cert_der).decode()
        self.cert_path = os.path.join(workdir, "token-cert.pem")
        os.makedirs(workdir, exist_ok=True)
        with open(self.cert_path, "w") as f:
            f.write(_pem(cert_der))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.realm, "service": self.SERVICE, "issuer": self.ISSUER,
                          "rootcertbundle": self.cert_path}}

    def start(self) -> "TokenServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def issue(self, scope: str, subject: str) -> str:
        now = int(time.time())
        access = []
        for item in filter(None, scope.split(" ")):
            kind, rest = item.split(":", 1)         # repository:<name>:<actions>
            name, actions = rest.rsplit(":", 1)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {"iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": secrets.token_hex(8), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing_input}.{_b64(self._sign(signing_input.encode()))}"

    def _sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                server.requests.append(query)
                want = "Basic " + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self._send(401, {"details": "bad credentials"})
                token = server.issue(query.get("scope", ""), server.user)
                self._send(200, {"token": token, "expires_in": 600})

            def _send(self, code: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _self_signed():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podwire-test-token-signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.DER)


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
