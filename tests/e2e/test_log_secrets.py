"""No credential of an authenticated pull reaches the shim's log.

podwire-cri runs as its own process at debug level (in each log format); it pulls through
its gRPC API from the htpasswd (Basic) registry and from the token (Bearer) registry, with
every kind of CRI credential -- username/password, ``auth`` (base64 user:password), a
ready ``registry_token``, an ``identity_token`` -- and with wrong ones, so the error paths
log too.  Then its captured stderr (and stdout) is searched for every secret in every
form it travelled in: the passwords, base64 of user:password, each bearer token the token
server issued, the tokens given.  None may appear.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import traceback

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from crifixtures import start_process, stop
from cri.errors import CriError

WRONG = "not-the-Pa55word-4711"
IDENTITY = "identity-refresh-Tok-0815"


@pytest.fixture
def issued_tokens(token_registry):
    """Every bearer token the token server hands out while the test runs."""
    server = token_registry.token_server
    tokens: list[str] = []

    def issue(scope: str, subject: str) -> str:
        token = type(server).issue(server, scope, subject)
        tokens.append(token)
        return token
    server.issue = issue
    yield tokens
    del server.issue        # back to the class's method for the session's other tests


@pytest.fixture
def debug_shim(tmp_path, request):
    """A podwire-cri process at debug, in the format the test asks for; its state, images
    and anything it made are removed afterwards, whatever happened."""
    conf_dir, bin_dir = tmp_path / "net.d", tmp_path / "cni-bin"
    conf_dir.mkdir()
    bin_dir.mkdir()
    cfg = h.shim_config(tmp_path, str(conf_dir), str(bin_dir), log_level="debug",
                        log_format=request.param)
    shim = None
    try:
        shim = start_process(cfg, tmp_path)
        yield shim, os.path.join(str(tmp_path), "shim.log"), request.param
    finally:
        if shim is not None:
            stop(shim)
        left = h.sweep(cfg)
        for path in (cfg.state_dir, cfg.run_dir, cfg.runc_root):
            shutil.rmtree(path, ignore_errors=True)
        assert not left, f"test left behind: {left}"


def pull(shim, ref: str, **auth) -> str | grpc.StatusCode:
    req = api.PullImageRequest(image=api.ImageSpec(image=ref), auth=api.AuthConfig(**auth))
    try:
        return shim.img.PullImage(req, timeout=120).image_ref
    except grpc.RpcError as exc:
        return exc.code()


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("debug_shim", ["text", "json"], indirect=True)
def test_authenticated_pulls_leave_no_secret_in_the_shim_log(debug_shim, basic_auth_registry, token_registry,
                                                              issued_tokens, test_images):
    shim, log_path, fmt = debug_shim
    basic, token = basic_auth_registry, token_registry
    repo = test_images.layered.split("/", 1)[1].rsplit(":", 1)[0]
    given_token = token.token_server.issue(f"repository:{repo}:pull", token.user)
    # Good credentials, every way the CRI carries them.
    assert pull(shim, basic.ref(test_images.busybox), username=basic.user, password=basic.password).startswith("sha")
    assert pull(shim, basic.ref(test_images.user_named), auth=b64(basic.user, basic.password)).startswith("sha")
    assert pull(shim, token.ref(test_images.configured), username=token.user,
                password=token.password).startswith("sha")
    assert pull(shim, token.ref(test_images.layered), registry_token=given_token).startswith("sha")
    # Wrong ones: the failures are logged too, with their reasons.
    assert pull(shim, basic.ref(test_images.user_numeric), username=basic.user, password=WRONG) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert pull(shim, token.ref(test_images.user_numeric), username=token.user, password=WRONG) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(pull(shim, token.ref(test_images.volume), identity_token=IDENTITY), grpc.StatusCode)
    assert len(issued_tokens) >= 2         # the shim fetched tokens with the password

    with open(log_path, errors="replace") as f:
        log = f.read()
    # The log is real: these pulls' debug lines and their failures, in the chosen format.
    records = [r for r in map(_record(fmt), log.splitlines()) if r]
    pulls = [r for r in records if r.get("method") == "PullImage" and r.get("component") == "podwire-cri"]
    assert any(r["level"] == "debug" and r["msg"].startswith("PullImage took") for r in pulls), log[-3000:]
    assert any(r["level"] == "info" and r["msg"].startswith("pulled ") for r in pulls), log[-3000:]
    assert sum(r["level"] == "warning" and r["msg"].startswith("PullImage: ") for r in pulls) >= 2, log[-3000:]
    secrets = {
        "basic password": basic.password, "basic user:password": b64(basic.user, basic.password),
        "token password": token.password, "token user:password": b64(token.user, token.password),
        "wrong password": WRONG, "wrong user:password": b64(basic.user, WRONG),
        "given registry token": given_token, "identity token": IDENTITY,
        **{f"issued token {i}": t for i, t in enumerate(issued_tokens)},
        # A JWT's signature alone is secret enough; the header is the same for every token.
        **{f"issued token {i} signature": t.rsplit(".", 1)[1] for i, t in enumerate(issued_tokens)},
    }
    leaked = [name for name, secret in secrets.items() if secret in log]
    assert not leaked, f"secrets in the shim's log: {leaked}"


def _record(fmt: str):
    """A log line -> its record, or None for a line that is not one (gRPC's C core may
    write its own lines to stderr)."""
    pair = re.compile(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)')

    def parse(line: str) -> dict | None:
        if fmt == "json":
            try:
                return json.loads(line)
            except ValueError:
                return None
        pairs = pair.findall(line)
        if not pairs or pairs[0][0] != "time":
            return None
        return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}
    return parse


class RawRecords(logging.Handler):
    """Every record as the code handed it to logging, before any formatter (so before
    redaction): message, arguments, extra fields, traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        self.texts.append(" ".join([record.getMessage(), repr(record.args), repr(vars(record)), exc]))


@pytest.fixture
def raw_records():
    root = logging.getLogger()
    handler, level = RawRecords(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_the_pull_path_hands_no_secret_to_logging(image_service, basic_auth_registry, token_registry,
                                                   issued_tokens, test_images, raw_records):
    """Redaction is the second line: the pull code itself never passes a credential to a log
    call, in a message, an argument, a field or an exception."""
    from cri.images.auth import Credentials
    basic, token = basic_auth_registry, token_registry
    image_service.pull(basic.ref(test_images.busybox), auth=Credentials(basic.user, basic.password))
    image_service.pull(token.ref(test_images.configured), auth=Credentials(token.user, token.password))
    for ref, creds in [(basic.ref(test_images.user_numeric), Credentials(basic.user, WRONG)),
                       (token.ref(test_images.user_numeric), Credentials(token.user, WRONG)),
                       (token.ref(test_images.volume), Credentials(identity_token=IDENTITY))]:
        with pytest.raises(CriError):
            image_service.pull(ref, auth=creds)
    assert raw_records.texts and issued_tokens
    text = "\n".join(raw_records.texts)
    assert "pulled " in text
    secrets = [basic.password, token.password, WRONG, IDENTITY, b64(basic.user, basic.password),
               b64(token.user, token.password), *issued_tokens]
    assert not [s for s in secrets if s in text]
    assert "[REDACTED]" not in text
