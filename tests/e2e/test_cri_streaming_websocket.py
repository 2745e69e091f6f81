"""Exec, Attach and PortForward over WebSocket, end to end: the official Kubernetes Python
client's streaming (kubernetes.stream.ws_client, written independently of our server) against
a real podwire-cri, runc, conmon and pods.  It offers v5.channel.k8s.io then v4; some tests
pin v4 to cover both."""
from __future__ import annotations

import socket
import time

import pytest
from cri_api.v1 import api_pb2 as api
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import PortForward, WSClient, create_websocket

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root

V4 = {"sec-websocket-protocol": "v4.channel.k8s.io"}


def _ws(url: str) -> str:
    assert url.startswith("http://"), url
    return "ws://" + url[len("http://"):]


def _client(url: str, headers=None) -> WSClient:
    return WSClient(Configuration(), _ws(url), headers, capture_all=True, binary=True)


def _finish(client: WSClient, timeout: float = 30) -> tuple[bytes, bytes, int]:
    """(stdout, stderr, exit code) once the server closed the session."""
    out, err = b"", b""
    deadline = time.monotonic() + timeout
    while client.is_open() and time.monotonic() < deadline:
        client.update(timeout=1)
        out += client.read_channel(1)
        err += client.read_channel(2)
    assert not client.is_open(), "the session did not end"
    out += client.read_channel(1)
    err += client.read_channel(2)
    code = client.returncode
    client.close()
    return out, err, code


def _pod(shim, tmp_path) -> tuple[str, api.PodSandboxConfig]:
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir(exist_ok=True)
    pod_id = shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    return pod_id, cfg


def _container(shim, pod, image: str, cmd, **kw) -> str:
    pod_id, pod_cfg = pod
    name = "c" + str(time.monotonic_ns())[-8:]
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                              command=list(cmd), log_path=f"{name}/0.log", **kw)
    cid = shim.rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg), timeout=120).container_id
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid), timeout=60)
    return cid


@pytest.fixture
def busybox(shim, test_images):
    shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=test_images.busybox)), timeout=120)
    return test_images.busybox


@pytest.fixture
def box(shim, tmp_path, busybox):
    pod = _pod(shim, tmp_path)
    return shim, pod, _container(shim, pod, busybox, ["sleep", "3600"])


def _exec(shim, cid, cmd, **flags) -> str:
    return shim.rt.Exec(api.ExecRequest(container_id=cid, cmd=cmd, **flags), timeout=10).url


def test_exec_stdout_is_exact_over_v5(box):
    shim, _, cid = box
    client = _client(_exec(shim, cid, ["echo", "-n", "hello"], stdout=True, stderr=True))
    assert client.subprotocol == "v5.channel.k8s.io"
    assert _finish(client) == (b"hello", b"", 0)


def test_exec_exit_code_and_separate_stderr_over_v4(box):
    shim, _, cid = box
    client = _client(_exec(shim, cid, ["sh", "-c", "echo out; echo err >&2; exit 7"],
                           stdout=True, stderr=True), V4)
    assert client.subprotocol == "v4.channel.k8s.io"
    assert _finish(client) == (b"out\n", b"err\n", 7)


def test_exec_stdin_closed_with_the_v5_signal(box):
    shim, _, cid = box
    client = _client(_exec(shim, cid, ["cat"], stdin=True, stdout=True, stderr=True))
    data = bytes(range(256)) * 4096                 # 1 MiB
    client.write_stdin(data)
    client.close_channel(0)
    out, err, code = _finish(client, 60)
    assert (len(out), out == data, err, code) == (len(data), True, b"", 0)


def test_exec_with_a_tty(box):
    shim, _, cid = box
    client = _client(_exec(shim, cid, ["sh"], stdin=True, stdout=True, tty=True))
    client.write_channel(4, b'{"Width":100,"Height":40}')
    time.sleep(0.5)
    client.write_stdin(b"stty size; echo $((6*7))\n")
    client.write_stdin(b"exit 3\n")
    out, _, code = _finish(client)
    assert b"40 100" in out and b"42" in out
    assert code == 3


def test_attach_to_a_container_echoing_its_stdin(shim, tmp_path, busybox):
    cid = _container(shim, _pod(shim, tmp_path), busybox, ["cat"], stdin=True, stdin_once=True)
    url = shim.rt.Attach(api.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True),
                         timeout=10).url
    client = _client(url, V4)
    time.sleep(0.5)                                 # conmon relays only what comes after the attach
    client.write_stdin(b"hello attach\n")
    assert client.readline_channel(1, timeout=20) == b"hello attach"
    client.close()


def _httpd(port: int, address: str) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo hello-{port} > /www/index.html && "
                        f"exec httpd -f -p {address}:{port} -h /www"]


def _get_through(shim, pod_id: str, port: int) -> bytes:
    url = shim.rt.PortForward(api.PortForwardRequest(pod_sandbox_id=pod_id, port=[port]), timeout=10).url
    forward = PortForward(create_websocket(Configuration(), _ws(url) + f"?ports={port}", V4), [port])
    sock = forward.socket(port)
    sock.settimeout(20)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    assert forward.error(port) is None, forward.error(port)
    forward.close()
    return reply


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_port_forward_to_a_pod_over_ipv4_and_ipv6(shim, tmp_path, busybox):
    pod = _pod(shim, tmp_path)
    _container(shim, pod, busybox, _httpd(8080, "127.0.0.1"))
    if _ipv6_loopback():
        _container(shim, pod, busybox, _httpd(8081, "[::1]"))
    for port in (8080, 8081) if _ipv6_loopback() else (8080,):
        assert h.wait_for(lambda: _try(lambda: _get_through(shim, pod[0], port)), 20), port
        assert _get_through(shim, pod[0], port).endswith(f"hello-{port}\n".encode())


def test_port_forward_failure_is_on_the_error_channel(shim, tmp_path, busybox):
    pod = _pod(shim, tmp_path)
    url = shim.rt.PortForward(api.PortForwardRequest(pod_sandbox_id=pod[0], port=[9]), timeout=10).url
    forward = PortForward(create_websocket(Configuration(), _ws(url) + "?ports=9", V4), [9])
    assert h.wait_for(lambda: forward.error(9) is not None, 20)
    assert "error forwarding port 9" in forward.error(9)
    forward.close()


def _try(fn):
    try:
        return fn()
    except (OSError, AssertionError):
        return None
