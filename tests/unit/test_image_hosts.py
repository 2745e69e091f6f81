"""Registry endpoints from containerd-style hosts.toml, insecure and loopback hosts."""
from __future__ import annotations

import grpc
import pytest

from cri.errors import CriError
from cri.images.hosts import HostsConfig, is_loopback


def write(tmp_path, host: str, text: str) -> HostsConfig:
    (tmp_path / host).mkdir(parents=True, exist_ok=True)
    (tmp_path / host / "hosts.toml").write_text(text)
    return HostsConfig(str(tmp_path))


def test_no_config_dir_gives_the_upstream(tmp_path):
    hosts = HostsConfig(str(tmp_path / "absent"))
    [hub] = hosts.endpoints("docker.io")
    assert hub.api == "https://registry-1.docker.io/v2" and hub.verify is True and not hub.mirror
    [k8s] = hosts.endpoints("registry.k8s.io")
    assert k8s.api == "https://registry.k8s.io/v2"
    assert HostsConfig(None).endpoints("quay.io")[0].api == "https://quay.io/v2"


def test_mirrors_in_file_order_then_server(tmp_path):
    hosts = write(tmp_path, "registry.k8s.io", '''
server = "https://registry.k8s.io"

[host."http://mirror-b:5000"]
  capabilities = ["pull", "resolve"]

[host."https://mirror-a/prefix"]
  capabilities = ["pull"]
  skip_verify = true
  [host."https://mirror-a/prefix".header]
    x-token = ["one", "two"]

[host."https://mirror-c/custom/api"]
  override_path = true
  ca = "ca.pem"
  client = [["c.pem", "k.pem"]]
''')
    eps = hosts.endpoints("registry.k8s.io")
    assert [e.api for e in eps] == ["http://mirror-b:5000/v2", "https://mirror-a/prefix/v2",
                                    "https://mirror-c/custom/api", "https://registry.k8s.io/v2"]
    assert [e.mirror for e in eps] == [True, True, True, False]
    b, a, c, server = eps
    assert b.can("resolve") and b.can("pull") and not b.can("push")
    assert a.can("pull") and not a.can("resolve") and a.verify is False
    assert a.headers == (("x-token", "one"), ("x-token", "two"))
    assert c.verify == str(tmp_path / "registry.k8s.io" / "ca.pem")
    assert c.cert == (str(tmp_path / "registry.k8s.io" / "c.pem"), str(tmp_path / "registry.k8s.io" / "k.pem"))
    assert server.can("resolve") and server.verify is True


def test_server_line_is_optional_and_default_dir_applies(tmp_path):
    hosts = write(tmp_path, "_default", '[host."http://everything:5000"]\n')
    eps = hosts.endpoints("gcr.io")
    assert [e.api for e in eps] == ["http://everything:5000/v2", "https://gcr.io/v2"]


def test_docker_hub_mirror(tmp_path):
    hosts = write(tmp_path, "docker.io", '[host."http://127.0.0.1:5000"]\ncapabilities = ["pull", "resolve"]\n')
    assert [e.api for e in hosts.endpoints("docker.io")] == [
        "http://127.0.0.1:5000/v2", "https://registry-1.docker.io/v2"]


def test_loopback_and_insecure_hosts_fall_back_to_http():
    hosts = HostsConfig(None, insecure=["registry.lan:5000"])
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.8.9.10", "registry.lan:5000"):
        https, http = hosts.endpoints(host)
        assert https.api == f"https://{host}/v2" and https.verify is False
        assert http.api == f"http://{host}/v2"
    assert len(hosts.endpoints("10.0.0.1:5000")) == 1


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.1:5000", True), ("127.255.0.1:1", True), ("localhost", True),
    ("localhost:80", True), ("::1", True), ("[::1]:5000", True), ("10.0.0.1:5000", False),
    ("docker.io", False), ("localhost.example.com", False), ("[fd00::1]:5000", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("text", ['server = "ftp://x"', "serverr = 1", "not toml ["])
def test_bad_files_are_reported(tmp_path, text):
    hosts = write(tmp_path, "x.io", text)
    with pytest.raises(CriError) as exc:
        hosts.endpoints("x.io")
    assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "hosts.toml" in exc.value.message or "x.io" in exc.value.message
