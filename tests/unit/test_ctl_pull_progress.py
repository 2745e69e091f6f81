"""podwire-ctl pull: progress on a terminal, nothing but the result when piped."""
from __future__ import annotations

import io
import json
import threading

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.ctl import images
from cri.ctl.main import parser

IMAGE_ID = "sha256:" + "ab" * 32
MB = 1_000_000


class Tty(io.StringIO):
    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")     # as a real file's
        return True


class FakeImages:
    """The image service's methods, as names a FakeClient dispatches on."""
    PullImage, ImageFsInfo, ImageStatus = "PullImage", "ImageFsInfo", "ImageStatus"


class FakeClient:
    """A runtime whose pull stores one 1 MB layer each time the image filesystem is asked
    about (the first answer is the size before the pull), and returns once the image's
    ``layers`` are all stored and seen."""

    def __init__(self, layers: int = 2, verbose_info: bool = True, status_fails: bool = False) -> None:
        self.images = FakeImages
        self.layers, self.verbose_info, self.status_fails = layers, verbose_info, status_fails
        self.stored = self.polls = 0
        self.calls: list[str] = []
        self.auth: list = []
        self.pulled = threading.Event()

    def call(self, method, request, timeout=None):
        self.calls.append(method)
        if method == "PullImage":
            self.auth.append(request.auth if request.HasField("auth") else None)
            assert self.pulled.wait(10)
            return api.PullImageResponse(image_ref=IMAGE_ID)
        if method == "ImageFsInfo":
            if self.stored == self.layers:
                self.pulled.set()       # all stored, and the last one already reported
            if self.polls:
                self.stored = min(self.layers, self.stored + 1)
            self.polls += 1
            return api.ImageFsInfoResponse(image_filesystems=[api.FilesystemUsage(
                used_bytes=api.UInt64Value(value=5 * MB + self.stored * MB))])
        if method == "ImageStatus":
            if self.status_fails:
                raise grpc.RpcError()
            resp = api.ImageStatusResponse(image=api.Image(id=IMAGE_ID, size=1_500_000))
            if self.verbose_info and request.verbose:
                resp.info["info"] = json.dumps({"imageSpec": {"rootfs": {
                    "type": "layers", "diff_ids": [f"sha256:{i}" for i in range(self.layers)]}}})
            return resp
        raise AssertionError(method)


def pull_request(image: str = "busybox:1.0") -> api.PullImageRequest:
    return api.PullImageRequest(image=api.ImageSpec(image=image))


@pytest.mark.parametrize("stdout_tty, stderr_tty, want", [
    (True, True, True), (False, True, False), (True, False, False), (False, False, False)])
def test_progress_only_when_both_streams_are_terminals(stdout_tty, stderr_tty, want):
    out = Tty() if stdout_tty else io.StringIO()
    err = Tty() if stderr_tty else io.StringIO()
    assert images.interactive(out, err) is want


def test_a_closed_or_strange_stream_is_not_a_terminal():
    closed = Tty()
    closed.close()
    assert images.interactive(Tty(), closed) is False
    assert images.interactive(Tty(), object()) is False


def test_terminal_shows_growing_bytes_then_layers_and_size():
    c = FakeClient(layers=2)
    out = Tty()
    ref = images._pull_with_progress(c, pull_request(), show=True, out=out, interval=0.01)
    assert ref == IMAGE_ID
    text = out.getvalue()
    frames = [f for f in text.split("\r") if f.startswith(("|", "/", "-", "\\"))]
    assert frames and all("pulling busybox:1.0: " in f for f in frames)
    shown = [f.split(": ", 1)[1].split(" stored")[0] for f in frames]
    # Measured from the size before the pull (5 MB here), as layers are stored.
    assert "1MB" in shown and "2MB" in shown and not {"5MB", "6MB", "7MB"} & set(shown), shown
    assert "\r\033[K" in text                                  # the live line is cleared
    last = text.rsplit("\033[K", 1)[1]
    assert last.startswith("pulled busybox:1.0: 2 layers, 1.5MB in ") and last.endswith("s\n"), last


def test_summary_without_layer_info_or_without_status():
    c = FakeClient(layers=1, verbose_info=False)
    c.pulled.set()
    out = Tty()
    images._pull_with_progress(c, pull_request(), show=True, out=out, interval=0.01)
    assert out.getvalue().rsplit("\033[K", 1)[1].startswith("pulled busybox:1.0: 1.5MB in ")
    c = FakeClient(status_fails=True)
    c.pulled.set()
    out = Tty()
    images._pull_with_progress(c, pull_request(), show=True, out=out, interval=0.01)
    assert out.getvalue().rsplit("\033[K", 1)[1].startswith("pulled busybox:1.0 in ")


def test_quiet_pull_writes_nothing_and_asks_nothing_else():
    c = FakeClient()
    c.pulled.set()
    out = Tty()
    assert images._pull_with_progress(c, pull_request(), show=False, out=out) == IMAGE_ID
    assert out.getvalue() == "" and c.calls == ["PullImage"]


@pytest.mark.parametrize("tty", [True, False])
def test_the_pull_verb_piped_and_on_a_terminal(monkeypatch, tty):
    stdout, stderr = (Tty(), Tty()) if tty else (io.StringIO(), io.StringIO())
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    c = FakeClient(layers=1)
    if not tty:
        c.pulled.set()
    opts = parser().parse_args(["pull", "--creds", "bob:hunter2", "busybox:1.0"])
    assert images.pull(c, opts) == 0
    assert stdout.getvalue() == f"Image is up to date for {IMAGE_ID}\n"
    assert c.auth[0].username == "bob" and c.auth[0].password == "hunter2"
    if tty:
        assert "pulling busybox:1.0" in stderr.getvalue() and "pulled busybox:1.0: 1 layer, " in stderr.getvalue()
    else:
        assert stderr.getvalue() == "" and c.calls == ["PullImage"]
    assert "hunter2" not in stderr.getvalue()


def test_no_progress_flag_silences_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", Tty())
    monkeypatch.setattr("sys.stderr", err := Tty())
    c = FakeClient()
    c.pulled.set()
    assert images.pull(c, parser().parse_args(["pull", "--no-progress", "busybox:1.0"])) == 0
    assert err.getvalue() == "" and c.calls == ["PullImage"]


@pytest.mark.parametrize("info, want", [
    (json.dumps({"imageSpec": {"rootfs": {"diff_ids": ["a", "b", "c"]}}}), 3),
    (json.dumps({"imageSpec": {"config": {}}}), None),
    ("not json", None), ("", None)])
def test_layer_count_from_verbose_status(info, want):
    assert images._layer_count(info) == want
