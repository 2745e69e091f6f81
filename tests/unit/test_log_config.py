"""log_format and log_level in each daemon's settings: podwire-cri (cri.toml, flags),
podwire-cnid (cnid.toml, flags), podwire-netpol serve (flags); and the lines a real
podwire-cnid writes in each format."""
from __future__ import annotations

import json
import re
import sys

import pytest

from cni.daemon import main as cnid
from cni.install import write_wrappers
from cnitest import Daemon, run_plugin
from cri import config
from cri.server import main as cri_main
from netpol import cli as netpol_cli


def test_cri_defaults_to_text_and_takes_json():
    assert config.Config().log_format == "text"
    cfg = config.from_dict({"log_format": "json", "log_level": "debug"})
    assert (cfg.log_format, cfg.log_level) == ("json", "debug")
    assert 'log_format = "json"' in config.to_toml(cfg)


@pytest.mark.parametrize("key, value, message", [
    ("log_format", "xml", "log_format 'xml' is not one of text, json"),
    ("log_format", "logfmt", "log_format 'logfmt' is not one of text, json"),
    ("log_level", "verbose", "log_level 'verbose' is not one of debug, info, warning, error"),
])
def test_cri_refuses_unknown_values_naming_the_file(tmp_path, key, value, message):
    path = tmp_path / "cri.toml"
    path.write_text(f'{key} = "{value}"\n')
    with pytest.raises(config.ConfigError, match=re.escape(f"{path}: {message}")):
        config.load(str(path))


def test_cri_refuses_a_bad_log_format_at_start_with_exit_2(tmp_path, capsys):
    path = tmp_path / "cri.toml"
    path.write_text('log_format = "yaml"\n')
    assert cri_main.main(["--config", str(path), "--print-config"]) == 2
    assert "log_format 'yaml' is not one of text, json" in capsys.readouterr().err


def test_cri_flags_take_only_known_values():
    p = cri_main._parser()
    assert p.parse_args(["--log-format", "json"]).log_format == "json"
    assert p.parse_args([]).log_format is None          # the config's value then
    with pytest.raises(SystemExit):
        p.parse_args(["--log-format", "xml"])


def test_cnid_reads_log_format_from_its_file_and_the_flag_wins(tmp_path):
    path = tmp_path / "cnid.toml"
    path.write_text('log_format = "json"\nlog_level = "DEBUG"\n')
    opts = cnid.parse_args(["--config", str(path)])
    assert (opts.log_format, opts.log_level) == ("json", "debug")
    assert cnid.parse_args(["--config", str(path), "--log-format", "text"]).log_format == "text"
    assert cnid.parse_args(["--config", str(tmp_path / "absent.toml")]).log_format == "text"


@pytest.mark.parametrize("text, message", [
    ('log_format = "xml"', "log_format 'xml' is not one of text, json"),
    ('log_level = "loud"', "log_level 'loud' is not one of debug, info, warning, error"),
])
def test_cnid_refuses_unknown_values(tmp_path, capsys, text, message):
    path = tmp_path / "cnid.toml"
    path.write_text(text + "\n")
    with pytest.raises(SystemExit) as exit_:
        cnid.parse_args(["--config", str(path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_netpol_serve_flags():
    p = netpol_cli._parser()
    opts = p.parse_args(["serve"])
    assert (opts.log_format, opts.log_level, opts.verbose) == ("text", "info", False)
    opts = p.parse_args(["serve", "--log-format", "json", "--log-level", "warning", "-v"])
    assert (opts.log_format, opts.log_level, opts.verbose) == ("json", "warning", True)
    with pytest.raises(SystemExit):
        p.parse_args(["serve", "--log-format", "xml"])


@pytest.mark.parametrize("argv, shown", [
    (["serve", "--log-format", "json"], ["info", "warning"]),
    (["serve", "--log-format", "json", "-v"], ["debug", "info", "warning"]),
    (["serve", "--log-format", "json", "--log-level", "warning"], ["warning"]),
])
def test_netpol_serve_logs_as_its_flags_say(argv, shown):
    import io
    import logging

    from netpol.agent.serve import log, setup_logging
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    try:
        setup_logging(netpol_cli._parser().parse_args(argv), stream=out)
        for lvl in ("debug", "info", "warning"):
            getattr(log, lvl)("a %s line", lvl, extra={"endpoint": "ns/pod"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["level"] for r in records] == shown
    assert all(r["component"] == "podwire-netpol" and r["endpoint"] == "ns/pod" for r in records)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_cnid_logs_in_the_chosen_format_with_request_fields(tmp_path, fmt):
    """A real daemon at debug: its start line and a request's line, with the request's fields."""
    bin_dir = str(tmp_path / "bin")
    write_wrappers(bin_dir, sys.executable)
    (tmp_path / "cnid").mkdir()
    daemon = Daemon(str(tmp_path / "cnid"), "--log-format", fmt, "--log-level", "debug").start()
    try:
        code, _ = run_plugin(bin_dir, "podwire", "VERSION", {"cniVersion": "1.0.0"},
                             extra_env={"PODWIRE_CNID_SOCKET": daemon.socket, "CNI_CONTAINERID": "ctr-1234"})
        assert code == 0
    finally:
        assert daemon.stop() == 0, daemon.log()
    records = [_parse(line, fmt) for line in daemon.log().splitlines()]
    assert all(r["component"] == "podwire-cnid" and r["level"] in ("debug", "info") for r in records), records
    assert any(r["msg"].startswith("listening on") and r["level"] == "info" for r in records)
    [served] = [r for r in records if r.get("command") == "VERSION"]
    assert (served["plugin"], served["container_id"], served["level"]) == ("podwire", "ctr-1234", "debug")
    assert str(served["exit_code"]) == "0"


def _parse(line: str, fmt: str) -> dict:
    if fmt == "json":
        return json.loads(line)
    from test_logs import parse_logfmt
    return parse_logfmt(line)
