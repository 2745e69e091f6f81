"""Where to fetch a registry's content from: containerd's hosts.toml layout.

``<config_dir>/<host>/hosts.toml`` (``<host>`` is the reference's domain, with its port,
e.g. ``docker.io``, ``registry.k8s.io``, ``127.0.0.1:5000``; ``_default`` applies to hosts
without a directory of their own)::

    server = "https://registry.k8s.io"          # the upstream, tried last

    [host."http://mirror.local:5000"]           # mirrors, tried in file order
      capabilities = ["pull", "resolve"]        # resolve = tag -> digest; pull = fetch by digest
      skip_verify = true                        # TLS without certificate verification
      ca = "/etc/podwire/certs.d/mirror.crt"    # or a CA bundle for this host only
      client = [["client.crt", "client.key"]]   # TLS client certificate
      override_path = true                      # the URL path is the API root (no /v2 added)
      [host."http://mirror.local:5000".header]
        x-custom = "value"

The file is read on every pull, so edits apply without a restart (as in containerd).
Without a ``server`` line the upstream is ``https://<host>`` (``registry-1.docker.io`` for
docker.io).  Loopback hosts (127.0.0.0/8, ::1, localhost) are tried as Docker does: HTTPS
without verification, then plain HTTP.  Any other plain-HTTP or unverified registry is said so
in its hosts.toml (an ``http://`` server or host, ``skip_verify = true``); cri.toml has no list
of insecure hosts.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import urllib.parse
from typing import Iterable, Optional, Union

from ..errors import CriError, precondition

DEFAULT_CONFIG_DIR = "/etc/podwire/certs.d"
DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"
ALL_CAPABILITIES = frozenset({"pull", "resolve", "push"})
_KNOWN_KEYS = {"server", "host", "capabilities", "skip_verify", "ca", "client", "header",
               "override_path"}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One place to send distribution API requests for a registry host."""
    api: str                                # base URL of the API, ending in /v2
    capabilities: frozenset = ALL_CAPABILITIES
    verify: Union[bool, str] = True         # False: no TLS verification; or a CA bundle path
    cert: Union[str, tuple, None] = None    # TLS client cert: "both.pem" or (cert, key)
    headers: tuple = ()                     # extra headers, (name, value) pairs
    mirror: bool = False

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


class HostsConfig:
    def __init__(self, config_dir: Optional[str] = DEFAULT_CONFIG_DIR,
                 insecure: Iterable[str] = ()) -> None:
        self.config_dir = config_dir
        self.insecure = frozenset(insecure)

    def endpoints(self, host: str) -> list[Endpoint]:
        """Mirrors first (file order), then the upstream server."""
        path, doc = self._load(host)
        base = os.path.dirname(path) if path else ""
        try:
            mirrors = [_endpoint(url, table, base, mirror=True)
                       for url, table in _table(doc.get("host", {}), "host").items()]
            if "server" in doc:
                return mirrors + [_endpoint(doc["server"], doc, base, mirror=False)]
            return mirrors + self._default_server(host, doc, base)
        except CriError as exc:
            raise precondition(f"registry hosts config {path}: {exc.message}") from None

    def _default_server(self, host: str, doc: dict, base: str) -> list[Endpoint]:
        server = DOCKER_HUB_SERVER if host == DOCKER_HUB else f"https://{host}"
        if host in self.insecure or is_loopback(host):
            # Docker's rule for insecure registries: HTTPS if it is there (unverified), else HTTP.
            return [_endpoint(server, {**doc, "skip_verify": True}, base, mirror=False),
                    _endpoint(f"http://{host}", doc, base, mirror=False)]
        return [_endpoint(server, doc, base, mirror=False)]

    def _load(self, host: str) -> tuple[str, dict]:
        if not self.config_dir:
            return "", {}
        for name in (host, "_default"):
            path = os.path.join(self.config_dir, name, "hosts.toml")
            if os.path.isfile(path):
                return path, parse_file(path)
        return "", {}


def parse_file(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise precondition(f"registry hosts config {path}: {exc}") from None
    unknown = set(doc) - _KNOWN_KEYS
    if unknown:
        raise precondition(f"registry hosts config {path}: unknown keys {sorted(unknown)}")
    return doc


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1, with or without a port."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _endpoint(url: str, table: dict, base: str, mirror: bool) -> Endpoint:
    if "://" not in url:
        url = "https://" + url   # containerd's default for a scheme-less host
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise precondition(f"registry host {url!r}: want http(s)://host[:port][/path]")
    path = parts.path.rstrip("/")
    if not table.get("override_path", False) and not path.endswith("/v2"):
        path += "/v2"
    caps = table.get("capabilities", sorted(ALL_CAPABILITIES))
    return Endpoint(
        api=f"{parts.scheme}://{parts.netloc}{path}",
        capabilities=frozenset(caps),
        verify=_verify(table, base),
        cert=_client_cert(table.get("client"), base),
        headers=tuple(_headers(table.get("header", {}))),
        mirror=mirror)


def _verify(table: dict, base: str) -> Union[bool, str]:
    if table.get("skip_verify", False):
        return False
    ca = table.get("ca")
    if isinstance(ca, list):
        if len(ca) != 1:
            raise precondition("registry hosts config: give one CA bundle per host "
                               "(concatenate the certificates into one file)")
        ca = ca[0]
    return os.path.join(base, ca) if ca else True


def _client_cert(client, base: str) -> Union[str, tuple, None]:
    """``client`` is "cert.pem" (cert and key in one file), ["cert", "key"], or a list of those
    pairs (containerd allows several; we take one, the first)."""
    if not client:
        return None
    if isinstance(client, list) and isinstance(client[0], list):
        client = client[0]
    if isinstance(client, str):
        return os.path.join(base, client)
    return tuple(os.path.join(base, p) for p in client)


def _headers(table: dict) -> Iterable[tuple[str, str]]:
    for name, value in table.items():
        for v in value if isinstance(value, list) else [value]:
            yield name, str(v)


def _table(value, key: str) -> dict:
    if not isinstance(value, dict):
        raise precondition(f"{key} must be a table")
    return value
