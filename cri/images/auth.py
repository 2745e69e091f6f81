"""Registry authentication: credentials from the CRI, answers to 401 challenges.

A registry says how it wants to be authenticated in ``WWW-Authenticate``:

* ``Basic realm="…"``: send the username and password with every request;
* ``Bearer realm="https://auth/token",service="…",scope="…"``: ask the token endpoint
  (the realm) for a token for that service and scope, with the credentials as Basic auth
  (or, for an identity token, docker's OAuth2 refresh-token grant), then send the token.

A ``registry_token`` from the kubelet is a ready bearer token and is sent as is.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import urllib.parse
from typing import Optional

import grpc

from .transport import Response, Transport, basic_auth
from ..errors import CriError

_PARAM = re.compile(r'[\s,]*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_SCHEME = re.compile(r'[\s,]*([A-Za-z][\w-]*)(?:\s+|$)')
TOKEN_CLIENT_ID = "podwire"
MAX_TOKEN_RESPONSE = 1 << 20    # a token response is a few KiB of JSON


@dataclasses.dataclass(frozen=True)
class Credentials:
    # The secrets stay out of repr(): a record in a log line or a traceback must not leak them.
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    identity_token: str = dataclasses.field(default="", repr=False)   # docker login's refresh token
    registry_token: str = dataclasses.field(default="", repr=False)   # a bearer token sent as is

    @classmethod
    def from_auth_config(cls, auth) -> Optional["Credentials"]:
        """From a CRI ``AuthConfig`` (or anything with its attribute names); None if empty.
        ``auth`` is base64 ``user:password``, as in docker's config.json."""
        if auth is None:
            return None
        user, password = getattr(auth, "username", ""), getattr(auth, "password", "")
        encoded = getattr(auth, "auth", "")
        if encoded and not user:
            user, password = _decode_basic(encoded)
        creds = cls(user, password, getattr(auth, "identity_token", ""),
                    getattr(auth, "registry_token", ""))
        return creds if any(dataclasses.astuple(creds)) else None


@dataclasses.dataclass
class Challenge:
    scheme: str                 # lower case: "basic", "bearer"
    params: dict


def parse_challenges(header: str) -> list[Challenge]:
    """``WWW-Authenticate`` -> challenges (RFC 7235; several may share one header)."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        param = _PARAM.match(header, pos)
        if param and out:
            value = param.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
            out[-1].params[param.group(1).lower()] = value
            pos = param.end()
            continue
        scheme = _SCHEME.match(header, pos)
        if not scheme or scheme.end() == pos:
            break
        out.append(Challenge(scheme.group(1).lower(), {}))
        pos = scheme.end()
    return out


class Authorizer:
    """The Authorization header for each registry host of one repository's pull.

    Shared by the pull's download threads; a lock keeps one token fetch per host.
    """

    def __init__(self, transport: Transport, creds: Optional[Credentials],
                 scope: str, timeout: float) -> None:
        self._http = transport
        self._creds = creds or Credentials()
        self._scope = scope
        self._timeout = timeout
        self._headers: dict[str, str] = {}
        self._lock = threading.Lock()

    def header(self, url: str) -> dict:
        """What to send to ``url``: the answer to the host's last challenge, else the
        given registry token, else nothing (anonymous until challenged)."""
        value = self._headers.get(_host(url))
        if not value and self._creds.registry_token:
            value = f"Bearer {self._creds.registry_token}"
        return {"Authorization": value} if value else {}

    def answer(self, response: Response, sent: dict) -> bool:
        """After a 401: prepare credentials for the host. False if retrying cannot help
        (nothing new to send), so the caller reports the 401."""
        host = _host(response.url)
        with self._lock:
            if self._headers.get(host) not in (None, sent.get("Authorization")):
                return True     # another thread already answered this challenge
            value = self._authorize(parse_challenges(response.headers.get("WWW-Authenticate", "")))
            if value is None or value == sent.get("Authorization"):
                return False
            self._headers[host] = value
            return True

    def _authorize(self, challenges: list[Challenge]) -> Optional[str]:
        for ch in challenges:
            if ch.scheme == "bearer" and ch.params.get("realm"):
                return "Bearer " + self._token(ch.params)
        for ch in challenges:
            if ch.scheme == "basic" and self._creds.username:
                return basic_auth(self._creds.username, self._creds.password)
        return None

    def _token(self, params: dict) -> str:
        realm = params["realm"]
        query = {"service": params.get("service", ""), "scope": params.get("scope") or self._scope}
        query = {k: v for k, v in query.items() if v}
        try:
            with self._ask_token(realm, query) as resp:
                if resp.status in (401, 403):
                    raise CriError(grpc.StatusCode.UNAUTHENTICATED,
                                   f"token endpoint {realm} refused the credentials ({resp.status})")
                if resp.status != 200:
                    raise CriError(grpc.StatusCode.UNAVAILABLE,
                                   f"token endpoint {realm}: HTTP {resp.status}")
                return _token_from(resp.read(MAX_TOKEN_RESPONSE), realm)
        except OSError as exc:
            raise CriError(grpc.StatusCode.UNAVAILABLE, f"token endpoint {realm}: {exc}") from None

    def _ask_token(self, realm: str, query: dict) -> Response:
        """The token endpoint's answer: docker's OAuth2 refresh-token grant for an identity
        token, else a GET with the credentials (if any) as Basic auth."""
        timeout = (self._timeout, self._timeout)
        if self._creds.identity_token:
            form = urllib.parse.urlencode({
                **query, "grant_type": "refresh_token", "client_id": TOKEN_CLIENT_ID,
                "refresh_token": self._creds.identity_token}).encode()
            return self._http.request("POST", realm, {
                "Content-Type": "application/x-www-form-urlencoded"}, form, timeout=timeout)
        headers = {}
        if self._creds.username:
            headers["Authorization"] = basic_auth(self._creds.username, self._creds.password)
        return self._http.request("GET", _with_query(realm, query), headers, timeout=timeout)


def _token_from(raw: bytes, realm: str) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not token:
        raise CriError(grpc.StatusCode.UNAVAILABLE, f"token endpoint {realm} returned no token")
    return token


def _decode_basic(encoded: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise CriError(grpc.StatusCode.INVALID_ARGUMENT, "auth: want base64 of user:password")
    return user, password


def _with_query(url: str, query: dict) -> str:
    """``url`` with ``query`` added to the query string it may already have."""
    if not query:
        return url
    return url + ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(query)


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc
