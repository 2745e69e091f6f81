"""Exec, Attach and PortForward over WebSocket, end to end: the official Kubernetes Python
client's streaming code (kubernetes.stream.ws_client: WSClient for remotecommand, PortForward
for port forwarding) against a real podwire-cri, real runc and conmon, real pods.

The client is written independently of our server: it offers v5.channel.k8s.io then
v4.channel.k8s.io, reads the Status on channel 3 with its own decoder (WSClient.returncode)
and speaks the WebSocket port-forward protocol (the port as 2 bytes on each channel first)."""
from __future__ import annotations

import json
import socket
import time

import grpc
import pytest
from cri_api.v1 import api_pb2 as api
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import (ERROR_CHANNEL, RESIZE_CHANNEL, STDERR_CHANNEL,
                                         STDOUT_CHANNEL, V4_CHANNEL_PROTOCOL, V5_CHANNEL_PROTOCOL,
                                         WSClient, get_websocket_url, portforward_call)

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root

SESSION_TIMEOUT = 60


# -- the client ----------------------------------------------------------------------------------

def _configuration(url: str) -> Configuration:
    cfg = Configuration()
    cfg.host = url.split("/exec/")[0].split("/attach/")[0].split("/portforward/")[0]
    cfg.proxy = None                    # straight to the shim, whatever the environment says
    return cfg


def _connect(url: str, protocol: str | None = None) -> WSClient:
    """A WSClient on the URL an RPC returned; protocol forces one subprotocol (the client
    offers v5 then v4 by default)."""
    headers = {"sec-websocket-protocol": protocol} if protocol else None
    return WSClient(_configuration(url), get_websocket_url(url), headers, capture_all=False, binary=True)


def _finish(client: WSClient) -> tuple[bytes, bytes, dict]:
    """Run the session to its end: (stdout, stderr, the Status object on the error channel)."""
    client.run_forever(timeout=SESSION_TIMEOUT)
    assert not client.is_open(), "the session did not end"
    status = client.peek_channel(ERROR_CHANNEL)
    return (client.read_channel(STDOUT_CHANNEL), client.read_channel(STDERR_CHANNEL),
            json.loads(status) if status else {})


def _exec_url(shim, cid: str, cmd, **flags) -> str:
    flags.setdefault("stdout", True)
    return shim.rt.Exec(api.ExecRequest(container_id=cid, cmd=list(cmd), **flags), timeout=10).url


# -- pods and containers -------------------------------------------------------------------------

def _require_streaming(shim) -> None:
    try:
        shim.rt.Exec(api.ExecRequest(container_id="none", cmd=["true"], stdout=True), timeout=10)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("this podwire-cri has no streaming Exec")


def _pod(shim, tmp_path, test_images, host_network: bool = False):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir(exist_ok=True)
    if host_network:
        cfg.linux.security_context.namespace_options.network = api.NODE
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    _require_streaming(shim)            # after the pod: the CNI daemon fixture wants a request
    return pod_id, cfg


def _httpd(port: int, address: str = "") -> list[str]:
    """busybox httpd answering "hello-<port>" on [address:]port."""
    listen = f"{address}:{port}" if address else str(port)
    return ["sh", "-c", f"mkdir -p /www && echo hello-{port} > /www/index.html && "
                        f"exec httpd -f -p {listen} -h /www"]


@pytest.fixture
def box(shim, tmp_path, test_images):
    """A running busybox container: (shim, pod, container id)."""
    pod = _pod(shim, tmp_path, test_images)
    return shim, pod, h.start_container(shim, pod, test_images.busybox, ["sleep", "3600"])


# -- exec ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [V5_CHANNEL_PROTOCOL, V4_CHANNEL_PROTOCOL])
def test_exec_stdout_is_exact(box, protocol):
    shim, _, cid = box
    client = _connect(_exec_url(shim, cid, ["echo", "-n", "hello"], stderr=True), protocol)
    assert client.subprotocol == protocol
    out, err, status = _finish(client)
    assert (out, err) == (b"hello", b"")
    assert status == {"metadata": {}, "status": "Success"}
    assert client.returncode == 0


def test_exec_offers_v5_first_and_gets_it(box):
    shim, _, cid = box
    client = _connect(_exec_url(shim, cid, ["true"]))
    assert client.subprotocol == V5_CHANNEL_PROTOCOL
    _finish(client)


@pytest.mark.parametrize("protocol", [V5_CHANNEL_PROTOCOL, V4_CHANNEL_PROTOCOL])
def test_exec_non_zero_exit_and_separate_stderr(box, protocol):
    shim, _, cid = box
    client = _connect(_exec_url(shim, cid, ["sh", "-c", "echo out; echo err >&2; exit 7"], stderr=True),
                      protocol)
    out, err, status = _finish(client)
    assert (out, err) == (b"out\n", b"err\n")
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]
    assert status["message"].startswith("command terminated with non-zero exit code")
    assert client.returncode == 7                   # the Python client's own decoding


def test_exec_stdin_round_trip_ends_with_the_v5_close_signal(box):
    """v5 can say "stdin ended": cat sees EOF and exits, and the bytes come back whole."""
    shim, _, cid = box
    data = bytes(range(256)) * 4096                 # 1 MiB, every byte value
    client = _connect(_exec_url(shim, cid, ["cat"], stdin=True))
    assert client.subprotocol == V5_CHANNEL_PROTOCOL
    for i in range(0, len(data), 64 << 10):
        client.write_stdin(data[i:i + (64 << 10)])
    client.close_channel(0)
    out, _, status = _finish(client)
    assert len(out) == len(data) and out == data
    assert status["status"] == "Success"


def test_exec_tty_with_stdin_and_resize(box):
    shim, _, cid = box
    client = _connect(_exec_url(shim, cid, ["sh"], stdin=True, tty=True))
    client.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 111, "Height": 33}).encode())
    time.sleep(0.3)
    client.write_stdin(b"stty size; echo $((6*7)); exit 3\n")
    out, err, status = _finish(client)
    assert b"33 111" in out and b"42" in out, out
    assert err == b""                               # a tty has one output stream
    assert status["reason"] == "NonZeroExitCode"
    assert client.returncode == 3


def test_exec_client_that_disconnects_takes_the_process_with_it(box):
    shim, _, cid = box
    client = _connect(_exec_url(shim, cid, ["sh", "-c", "echo ready; exec cat"], stdin=True))
    assert client.readline_channel(STDOUT_CHANNEL, timeout=20) == b"ready"
    client.sock.sock.close()                        # gone without a Close frame

    def no_cat() -> bool:
        ps = shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["ps", "-o", "args"], timeout=10))
        return b"cat" not in ps.stdout
    assert h.wait_for(no_cat, 20)


def test_exec_token_is_single_use(box):
    shim, _, cid = box
    url = _exec_url(shim, cid, ["true"])
    _finish(_connect(url))
    with pytest.raises(Exception, match="404"):
        _connect(url)


# -- attach --------------------------------------------------------------------------------------

def _attach_echo(shim, cid: str) -> None:
    """Attach with stdin, see a line echoed, close stdin: the session (and cat) end."""
    url = shim.rt.Attach(api.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True),
                         timeout=10).url
    client = _connect(url)
    time.sleep(0.5)                                 # conmon relays only what comes after the attach
    client.write_stdin(b"hello attach\n")
    assert client.readline_channel(STDOUT_CHANNEL, timeout=20) == b"hello attach"
    client.close_channel(0)                         # stdin_once: cat ends, so does the session
    _, _, status = _finish(client)
    assert status["status"] == "Success"


def _attachable(shim, tmp_path, test_images) -> str:
    pod = _pod(shim, tmp_path, test_images)
    return h.start_container(shim, pod, test_images.busybox, ["cat"], stdin=True, stdin_once=True)


def test_attach_to_a_container_echoing_its_stdin(shim, tmp_path, test_images):
    _attach_echo(shim, _attachable(shim, tmp_path, test_images))


def test_attach_after_a_shim_restart(shim_factory, tmp_path, test_images):
    first = shim_factory(process=True)
    cid = _attachable(first, tmp_path, test_images)
    first.proc.kill()
    first.proc.wait(10)
    _attach_echo(shim_factory(process=True), cid)


# -- port forward --------------------------------------------------------------------------------

def _forward(shim, pod_id: str, port: int):
    url = shim.rt.PortForward(api.PortForwardRequest(pod_sandbox_id=pod_id, port=[port]), timeout=10).url
    return portforward_call(_configuration(url), "GET", url, query_params=[("ports", str(port))])


def _http_get(shim, pod_id: str, port: int) -> bytes:
    """GET / through a fresh forward; the body (empty if the server was not up yet)."""
    forward = _forward(shim, pod_id, port)
    sock = forward.socket(port)
    sock.settimeout(10)
    try:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data.partition(b"\r\n\r\n")[2]
    except OSError:
        return b""
    finally:
        forward.close()


def test_port_forward_to_a_pod_over_ipv4_and_ipv6(shim, tmp_path, test_images):
    """Servers in the pod on 127.0.0.1 only and on [::1] only: the shim dials localhost,
    as containerd does, trying both."""
    pod = _pod(shim, tmp_path, test_images)
    h.start_container(shim, pod, test_images.busybox, _httpd(8080, "127.0.0.1"))
    h.start_container(shim, pod, test_images.busybox, _httpd(8081, "[::1]"))
    for port in (8080, 8081):
        want = f"hello-{port}\n".encode()
        assert h.wait_for(lambda: _http_get(shim, pod[0], port) == want, 20, 0.5), port


def test_port_forward_two_connections_at_once(shim, tmp_path, test_images):
    pod = _pod(shim, tmp_path, test_images)
    h.start_container(shim, pod, test_images.busybox, ["nc", "-ll", "-p", "7000", "-e", "cat"])
    time.sleep(0.5)
    a, b = _forward(shim, pod[0], 7000), _forward(shim, pod[0], 7000)
    try:
        sa, sb = a.socket(7000), b.socket(7000)
        sa.settimeout(10)
        sb.settimeout(10)
        sb.sendall(b"to-b\n")
        sa.sendall(b"to-a\n")
        assert h.recv_line(sa) == b"to-a\n" and h.recv_line(sb) == b"to-b\n"
    finally:
        a.close()
        b.close()


def test_port_forward_into_a_host_network_pod(shim, tmp_path, test_images):
    with socket.socket() as s:                      # a port free on the host
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pod = _pod(shim, tmp_path, test_images, host_network=True)
    h.start_container(shim, pod, test_images.busybox, _httpd(port))
    want = f"hello-{port}\n".encode()
    assert h.wait_for(lambda: _http_get(shim, pod[0], port) == want, 20, 0.5)


def test_port_forward_to_a_closed_port_reports_on_the_error_channel(shim, tmp_path, test_images):
    pod = _pod(shim, tmp_path, test_images)
    forward = _forward(shim, pod[0], 9)             # nothing listens on discard
    try:
        sock = forward.socket(9)
        sock.settimeout(10)
        sock.sendall(b"x")
        assert h.wait_for(lambda: forward.error(9), 20), "no error on the error channel"
        assert "9" in forward.error(9)
    finally:
        forward.close()
