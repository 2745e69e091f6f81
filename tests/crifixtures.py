"""Fixtures for the CRI shim's e2e tests (cri_net, shim, shim_factory), loaded as a pytest
plugin by tests/conftest.py; helpers they use are in crihelpers.py."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h


@dataclasses.dataclass
class CriNet:
    network: object        # cnitest.Network: name, bridge, subnets, IPAM dataDir
    conf_dir: str
    bin_dir: str

    def write(self, conflist: dict) -> None:
        h.write_json(os.path.join(self.conf_dir, "10-test.conflist"), conflist)

    def add_plugin(self, name: str, script: str) -> None:
        h.write_plugin(self.bin_dir, name, script)


@pytest.fixture
def cri_net(network, tmp_path):
    """The test network as the only conflist in a private conf dir, plugins from a
    private bin dir (podwire's + the reference ones, room for test plugins)."""
    conf_dir, bin_dir = tmp_path / "net.d", tmp_path / "cni-bin"
    conf_dir.mkdir()
    bin_dir.mkdir()
    for name in os.listdir(network.bin_dir):
        os.symlink(os.path.join(network.bin_dir, name), bin_dir / name)
    net = CriNet(network, str(conf_dir), str(bin_dir))
    net.write(h.conflist(network))
    yield net
    # portmap keeps per-network iptables chains only while mappings exist; nothing else to do.


@dataclasses.dataclass
class Shim:
    cfg: object
    client: h.Client
    server: object = None
    svc: object = None
    proc: subprocess.Popen | None = None

    @property
    def rt(self):
        return self.client.rt

    @property
    def img(self):
        return self.client.img


def start_in_process(cfg) -> Shim:
    from cri.server.server import create_server
    server, svc = create_server(cfg)
    server.start()
    return Shim(cfg, h.Client(cfg.socket_path), server=server, svc=svc)


def start_process(cfg, tmp_path) -> Shim:
    """podwire-cri as its own process (for kill -9 / restart tests)."""
    from cri.config import to_toml
    path = os.path.join(str(tmp_path), "cri.toml")
    with open(path, "w") as f:
        f.write(to_toml(cfg))
    log_path = os.path.join(str(tmp_path), "shim.log")
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "cri.server.main", "--config", path],
                            stdout=log, stderr=log, cwd=h.REPO, start_new_session=True)
    client = h.Client(cfg.socket_path)

    def serving() -> bool:
        if proc.poll() is not None:
            return True
        try:
            client.rt.Version(api.VersionRequest(), timeout=1)
            return True
        except grpc.RpcError:
            return False
    ok = h.wait_for(serving, 30, 0.1)
    if not ok or proc.poll() is not None:
        proc.kill()
        client.close()
        with open(log_path, errors="replace") as f:
            raise RuntimeError(f"podwire-cri did not start:\n{f.read()[-3000:]}")
    return Shim(cfg, client, proc=proc)


def stop(shim: Shim) -> None:
    shim.client.close()
    if shim.server is not None:
        shim.server.stop(0).wait()
        shim.svc.close()
    if shim.proc is not None and shim.proc.poll() is None:
        shim.proc.terminate()
        try:
            shim.proc.wait(10)
        except subprocess.TimeoutExpired:
            shim.proc.kill()
            shim.proc.wait()


@pytest.fixture
def shim_factory(cri_net, tmp_path):
    """Start shims on this test's dirs; at teardown remove everything through the
    last one still running, stop them all, then sweep and report leftovers."""
    shims: list[Shim] = []
    cfg = h.shim_config(tmp_path, cri_net.conf_dir, cri_net.bin_dir)

    def make(process: bool = False, **over) -> Shim:
        driver = over.get("cgroup_driver", cfg.cgroup_driver)
        if driver != cfg.cgroup_driver and "cgroup_parent" not in over:
            over["cgroup_parent"] = h.test_cgroup_parent(driver)   # the default is the other driver's form
        c = dataclasses.replace(cfg, **over)
        s = start_process(c, tmp_path) if process else start_in_process(c)
        shims.append(s)
        return s

    yield make
    live = [s for s in shims if s.proc is None or s.proc.poll() is None]
    if live:
        h.remove_all(live[-1].client)
    for s in shims:
        stop(s)
    left = h.sweep(cfg)
    for parent in {s.cfg.cgroup_parent for s in shims} - {cfg.cgroup_parent}:
        left += h.sweep(dataclasses.replace(cfg, cgroup_parent=parent))
    assert not left, f"test left behind: {left}"


@pytest.fixture
def shim(shim_factory) -> Shim:
    return shim_factory()


def wait_socket_gone(path: str, timeout: float = 5) -> bool:
    return h.wait_for(lambda: not os.path.exists(path), timeout)


def now() -> float:
    return time.monotonic()
