"""The daemons' log format (cni/logs.py): logfmt and JSON lines, levels, fields, tracebacks,
and the redaction of credentials."""
from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading

import pytest

from cni import logs

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
PAIR = re.compile(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line: str) -> dict:
    """One logfmt line -> {key: value}; the whole line must be pairs."""
    assert "\n" not in line
    pairs = PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, line
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


@pytest.fixture
def root_logging():
    """setup() changes the root logger: put back its handlers and level, and the levels
    of the loggers the tests name."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = {n: logging.getLogger(n).level for n in ("podwire-test", "podwire-test.lib", "chatty.lib")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in named.items():
        logging.getLogger(name).setLevel(lvl)


def capture(fmt: str, component: str = "podwire-test"):
    """A private logger writing through logs.Formatter into a StringIO."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.Formatter(component, fmt))
    handler.addFilter(logs._ContextFields())
    log = logging.getLogger(f"podwire-test.capture.{fmt}.{threading.get_ident()}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_text_is_one_logfmt_line_with_the_base_keys_first():
    log, out = capture("text")
    log.info("pulled %s in %.1fs", "busybox:1.0", 1.25, extra={"layers": 3, "image_id": "sha256:ab"})
    [line] = lines(out)
    rec = parse_logfmt(line)
    assert list(rec)[:5] == ["time", "level", "component", "logger", "msg"]
    assert TIME.fullmatch(rec["time"])
    assert (rec["level"], rec["component"], rec["logger"]) == ("info", "podwire-test", log.name)
    assert rec["msg"] == "pulled busybox:1.0 in 1.2s"
    assert (rec["layers"], rec["image_id"]) == ("3", "sha256:ab")
    assert ' layers=3 ' in line and line.endswith("image_id=sha256:ab")   # bare where nothing needs quoting


def test_text_quotes_and_escapes_what_would_break_the_line():
    log, out = capture("text")
    log.warning('a "quoted" word\nand a second line', extra={"path": "/a b", "empty": "", "eq": "k=v"})
    [line] = lines(out)
    rec = parse_logfmt(line)
    assert rec["msg"] == 'a "quoted" word\nand a second line'
    assert (rec["path"], rec["empty"], rec["eq"]) == ("/a b", "", "k=v")


def test_json_is_one_object_per_line_with_the_same_keys():
    log, out = capture("json", component="podwire-cri")
    log.error("pod %s failed", "p1", extra={"pod_id": "abc", "attempt": 2, "ok": False})
    [line] = lines(out)
    rec = json.loads(line)
    assert list(rec)[:5] == ["time", "level", "component", "logger", "msg"]
    assert TIME.fullmatch(rec["time"])
    assert (rec["level"], rec["component"], rec["msg"]) == ("error", "podwire-cri", "pod p1 failed")
    assert (rec["pod_id"], rec["attempt"], rec["ok"]) == ("abc", 2, False)     # types kept


@pytest.mark.parametrize("fmt", logs.FORMATS)
def test_traceback_is_a_field_of_the_one_line(fmt):
    log, out = capture(fmt)
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
    [line] = lines(out)     # never split over lines: the journal keeps the record whole
    rec = json.loads(line) if fmt == "json" else parse_logfmt(line)
    assert rec["msg"] == "lookup failed" and rec["level"] == "error"
    assert rec["exc"].startswith("Traceback (most recent call last):")
    assert "test_traceback_is_a_field_of_the_one_line" in rec["exc"]
    assert rec["exc"].rstrip().endswith("KeyError: 'missing'")


def test_bound_fields_reach_every_line_of_the_block_and_only_of_its_thread():
    log, out = capture("json")
    seen_elsewhere = []
    with logs.fields(method="PullImage", image="busybox", empty=""):
        log.info("inside")
        with logs.fields(layer="sha256:1"):
            log.info("nested")
        t = threading.Thread(target=lambda: (log.info("other thread"), seen_elsewhere.append(1)))
        t.start()
        t.join()
        log.info("call's own extra wins", extra={"image": "alpine"})
    log.info("after")
    recs = {r["msg"]: r for r in map(json.loads, lines(out))}
    assert (recs["inside"]["method"], recs["inside"]["image"]) == ("PullImage", "busybox")
    assert "empty" not in recs["inside"] and "layer" not in recs["inside"]
    assert recs["nested"]["layer"] == "sha256:1" and recs["nested"]["method"] == "PullImage"
    assert seen_elsewhere and "method" not in recs["other thread"]
    assert recs["call's own extra wins"]["image"] == "alpine"
    assert "method" not in recs["after"]


def test_a_field_cannot_overwrite_the_base_keys():
    log, out = capture("json")
    with logs.fields(level="fake", component="fake"):
        log.info("x")
    rec = json.loads(out.getvalue())
    assert (rec["level"], rec["component"]) == ("info", "podwire-test")


def test_setup_levels_own_loggers_and_libraries(root_logging):
    out = io.StringIO()
    logs.setup("podwire-test", "debug", "json", loggers=("podwire-test",), stream=out)
    logging.getLogger("podwire-test").debug("ours at debug")
    logging.getLogger("podwire-test.lib").debug("a child of ours at debug")
    logging.getLogger("chatty.lib").info("a library's info")
    logging.getLogger("chatty.lib").warning("a library's warning")
    msgs = [json.loads(line)["msg"] for line in lines(out)]
    assert msgs == ["ours at debug", "a child of ours at debug", "a library's warning"]


def test_setup_at_info_drops_debug_and_replaces_its_earlier_handler(root_logging):
    first, second = io.StringIO(), io.StringIO()
    logs.setup("podwire-test", "debug", "text", stream=first)
    logs.setup("podwire-test", "INFO", "text", stream=second)
    logging.getLogger("podwire-test").debug("hidden")
    logging.getLogger("podwire-test").info("shown")
    assert first.getvalue() == ""
    assert [parse_logfmt(line)["msg"] for line in lines(second)] == ["shown"]
    assert sum(getattr(h, "podwire", False) for h in logging.getLogger().handlers) == 1


@pytest.mark.parametrize("bad, check", [("xml", logs.check_format), ("JSON", logs.check_format),
                                        ("", logs.check_format), ("verbose", logs.check_level),
                                        ("critical", logs.check_level)])
def test_unknown_formats_and_levels_are_refused_by_name(bad, check):
    with pytest.raises(ValueError, match=re.escape(repr(bad)) + " is not one of"):
        check(bad)
    with pytest.raises(ValueError):
        logs.setup("podwire-test", **({"fmt": bad} if check is logs.check_format else {"level": bad}))


# -- redaction ----------------------------------------------------------------------------

USER, PASSWORD = "alice", "s3cret-Pa55"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
JWT = ("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImFjY2VzcyI6W119."
       "c2lnbmF0dXJlLWJ5dGVzLWhlcmU")
OPAQUE = "tok_9f8e7d6c5b4a"

SECRET_TEXTS = [
    (f"Authorization: Basic {BASIC}", [BASIC]),
    (f"authorization=Bearer {OPAQUE}", [OPAQUE]),
    (f"headers {{'Authorization': 'Bearer {JWT}', 'Accept': 'x'}}", [JWT]),
    (f"Proxy-Authorization: Basic {BASIC}", [BASIC]),
    (f"sent Bearer {OPAQUE} to the registry", [OPAQUE]),
    (f"basic {BASIC}", [BASIC]),
    (f"password={PASSWORD} user={USER}", [PASSWORD]),
    (f'password="{PASSWORD} with spaces"', [PASSWORD, "with spaces"]),
    (f'{{"auths": {{"registry.example:5000": {{"auth": "{BASIC}"}}}}}}', [BASIC]),
    (f'{{"username": "{USER}", "password": "{PASSWORD}", "identitytoken": "{OPAQUE}"}}', [PASSWORD, OPAQUE]),
    (f'auth {{ username: "{USER}" password: "{PASSWORD}" registry_token: "{OPAQUE}" }}', [PASSWORD, OPAQUE]),
    (f"identity_token={OPAQUE}&client_id=podwire", [OPAQUE]),
    (f"GET https://{USER}:{PASSWORD}@registry.example/v2/", [PASSWORD]),
    (f"token endpoint returned {JWT}", [JWT]),
    (f"https://s3.example/blob?X-Amz-Credential=AKIA123&X-Amz-Signature={OPAQUE}", ["AKIA123", OPAQUE]),
]


@pytest.mark.parametrize("text, secrets", SECRET_TEXTS)
def test_redact_hides_credentials(text, secrets):
    out = logs.redact(text)
    for secret in secrets:
        assert secret not in out, out
    assert logs.REDACTED in out


@pytest.mark.parametrize("text", [
    "pulled registry.example/busybox:1.0 (sha256:0123abcd) in 1.2s",
    'Bearer realm="http://127.0.0.1:5001/token",service="registry",scope="repository:x:pull"',
    "token endpoint http://127.0.0.1:5001/token refused the credentials (401)",
    "http://127.0.0.1:5000/v2: token endpoint http://127.0.0.1:5001/token: HTTP 501",
    "Basic auth is not offered by registry.example",
    "GET http://127.0.0.1:5000/v2/podwire-test/busybox/manifests/1.0: HTTP 401",
    "pod 0123456789ab (default/web) ready, ips 10.85.0.2",
])
def test_redact_leaves_ordinary_lines_alone(text):
    assert logs.redact(text) == text


def test_redact_is_idempotent():
    once = logs.redact(f"password={PASSWORD} Authorization: Bearer {OPAQUE}")
    assert logs.redact(once) == once


@pytest.mark.parametrize("fmt", logs.FORMATS)
def test_formatter_redacts_message_fields_and_traceback(fmt):
    log, out = capture(fmt)
    log.info("calling with Authorization: Basic %s", BASIC,
             extra={"password": PASSWORD, "registry_token": OPAQUE, "headers": {"Authorization": f"Bearer {JWT}"},
                    "url": f"https://{USER}:{PASSWORD}@r.example/v2/", "user": USER})
    try:
        raise RuntimeError(f"request failed: Authorization: Bearer {OPAQUE}")
    except RuntimeError:
        log.exception("pull failed", extra={"auth": BASIC})
    text = out.getvalue()
    for secret in (PASSWORD, BASIC, OPAQUE, JWT):
        assert secret not in text
    first, second = (json.loads(x) if fmt == "json" else parse_logfmt(x) for x in lines(out))
    assert (first["password"], first["registry_token"], second["auth"]) == (logs.REDACTED,) * 3
    assert first["user"] == USER and USER in first["url"]      # what is not secret stays readable
    assert "RuntimeError: request failed" in second["exc"]
