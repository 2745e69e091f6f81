"""podwire-ctl without a server: argument parsing, crictl-style output, config files, log parsing."""
from __future__ import annotations

import io
import json
import time

import pytest
from cri_api.v1 import api_pb2 as api

from cri.ctl import configs, logs, output
from cri.ctl.main import parser


def test_verbs_and_global_flags_parse_like_crictl():
    p = parser()
    o = p.parse_args(["--runtime-endpoint", "unix:///x.sock", "ps", "-a", "--pod", "abc", "-o", "json"])
    assert (o.runtime_endpoint, o.verb, o.all, o.pod, o.output) == ("unix:///x.sock", "ps", True, "abc", "json")
    o = p.parse_args(["-r", "/x.sock", "logs", "-f", "--tail", "5", "cid"])
    assert (o.follow, o.tail, o.id) == (True, 5, "cid")
    o = p.parse_args(["exec", "-s", "--timeout", "3", "cid", "sh", "-c", "echo hi"])
    assert o.cmd == ["sh", "-c", "echo hi"] and o.timeout == 3
    for verb in ["version", "info", "pods", "imagefsinfo", "images", "stats"]:
        assert p.parse_args([verb]).verb == verb
    for verb, arg in [("runp", "p.json"), ("stopp", "x"), ("rmp", "x"), ("inspectp", "x"), ("start", "x"),
                      ("stop", "x"), ("rm", "x"), ("inspect", "x"), ("pull", "busybox"), ("rmi", "busybox")]:
        assert p.parse_args([verb, arg]).verb == verb
    assert p.parse_args(["create", "pod", "c.json", "p.json"]).pod_id == "pod"


def test_table_is_aligned():
    out = io.StringIO()
    output.table(["POD ID", "NAME"], [["abc", "a-long-name"], ["abcdef0123456", "x"]], out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "POD ID          NAME"
    assert lines[1] == "abc             a-long-name"
    assert lines[2] == "abcdef0123456   x"


@pytest.mark.parametrize("secs, text", [(0.5, "Less than a second"), (1.5, "1 second"), (42, "42 seconds"),
                                        (90, "About a minute"), (600, "10 minutes"), (5400, "About an hour"),
                                        (7200 * 5, "10 hours"), (86400 * 3, "3 days")])
def test_human_durations_match_go_units(secs, text):
    assert output.human_duration(secs) == text


def test_created_column_and_sizes():
    now = time.time()
    assert output.ago(int((now - 120) * 1e9), now) == "2 minutes ago"
    assert output.size(0) == "0B"
    assert output.size(1_234_567) == "1.235MB"
    assert output.size(999) == "999B"


def test_json_and_yaml_use_crictl_field_names():
    pod = api.PodSandbox(id="x", metadata=api.PodSandboxMetadata(name="n", uid="u"), created_at=5)
    out = io.StringIO()
    output.dump({"items": [output.to_obj(pod)]}, "json", out)
    item = json.loads(out.getvalue())["items"][0]
    assert (item["id"], item["metadata"]["name"], item["createdAt"]) == ("x", "n", "5")
    assert item["state"] == "SANDBOX_READY"          # zero values are printed, as crictl does
    out = io.StringIO()
    output.dump(output.to_obj(pod), "yaml", out)
    assert "createdAt: '5'" in out.getvalue()


def test_crictl_config_files(tmp_path):
    pod = tmp_path / "pod.json"
    pod.write_text(json.dumps({"metadata": {"name": "nginx", "namespace": "default", "uid": "u1", "attempt": 1},
                               "log_directory": "/tmp", "linux": {}, "port_mappings": [
                                   {"protocol": 0, "container_port": 80, "host_port": 8080}]}))
    cfg = configs.pod_config(str(pod))
    assert cfg.metadata.name == "nginx" and cfg.log_directory == "/tmp"
    assert cfg.port_mappings[0].host_port == 8080
    ctr = tmp_path / "ctr.yaml"
    ctr.write_text("metadata:\n  name: c\nimage:\n  image: busybox\ncommand: [top]\nlog_path: c.log\n")
    c = configs.container_config(str(ctr))
    assert (c.metadata.name, c.image.image, list(c.command), c.log_path) == ("c", "busybox", ["top"], "c.log")
    bad = tmp_path / "bad.json"
    bad.write_text('{"metadata": {"nme": "x"}}')
    with pytest.raises(configs.ConfigFileError):
        configs.pod_config(str(bad))


def test_cri_log_lines_are_parsed_and_partials_joined():
    out, err = io.BytesIO(), io.BytesIO()
    p = logs.Printer(timestamps=False, since=0, limit=-1, out=out, err=err)
    for raw in [b"2024-01-02T03:04:05.123456789Z stdout P hello \n",
                b"2024-01-02T03:04:05.2Z stderr F oops\n",
                b"2024-01-02T03:04:05.3Z stdout F world\n",
                b"garbage\n",
                b"2024-01-02T03:04:05.4Z stdout F\n"]:
        p.feed(raw)
    assert out.getvalue() == b"hello world\n\n"
    assert err.getvalue() == b"oops\n"


def test_log_timestamps_since_and_limit():
    out = io.BytesIO()
    p = logs.Printer(timestamps=True, since=logs.parse_time("2024-01-02T03:04:06Z"), limit=40, out=out,
                     err=io.BytesIO())
    assert p.feed(b"2024-01-02T03:04:05.9Z stdout F old\n")
    assert p.feed(b"2024-01-02T03:04:06.5+00:00 stdout F new\n")
    assert not p.feed(b"2024-01-02T03:04:07Z stdout F more and more text\n")
    assert out.getvalue().startswith(b"2024-01-02T03:04:06.5+00:00 new\n")
    assert len(out.getvalue()) == 40


def test_since_durations():
    assert abs(logs.since_epoch("10s") - (time.time() - 10)) < 1
    assert logs.since_epoch("") == 0
