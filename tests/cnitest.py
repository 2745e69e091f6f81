"""Helpers shared by the test tiers (imported by tests, not collected)."""
from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

REFERENCE_PLUGIN_DIR = "/usr/lib/cni"
# Skipped, with the reason, by conftest when not root; every test in a root tier has it anyway.
needs_root = pytest.mark.root


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unique(prefix: str, length: int = 15) -> str:
    """A name no other test (or run) uses, short enough for an interface name."""
    return (prefix + uuid.uuid4().hex)[:length]


def run_plugin(bin_dir: str, plugin: str, command: str, config: dict | str, *,
               container_id: str = "", netns: str = "", ifname: str = "eth0",
               cni_args: str = "", extra_env: dict | None = None) -> tuple[int, dict | None]:
    """Exec a plugin as a runtime would; (exit code, parsed stdout)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_ARGS": cni_args, "CNI_PATH": bin_dir}
    env = {k: v for k, v in env.items() if v}
    # The mode the session runs the executables in (see conftest.cni_bin): which daemon, if any.
    env.update({k: v for k, v in os.environ.items() if k.startswith("PODWIRE_")})
    env.update(extra_env or {})
    stdin = config if isinstance(config, str) else json.dumps(config)
    proc = subprocess.run([os.path.join(bin_dir, plugin)], input=stdin.encode(), env=env,
                          capture_output=True, timeout=60)
    out = proc.stdout.decode().strip()
    return proc.returncode, (json.loads(out) if out else None)


def dispatch_in_process(verbs, command: str, config: dict | str, **env) -> tuple[int, dict | None]:
    """Run a plugin's verbs through skel.dispatch with injected env/stdin/stdout."""
    from cni import skel

    full_env = {"CNI_COMMAND": command, **{k: v for k, v in env.items() if v}}
    stdin = io.BytesIO((config if isinstance(config, str) else json.dumps(config)).encode())
    stdout = io.StringIO()
    code = skel.dispatch(verbs, full_env, stdin, stdout, stderr=io.StringIO())
    text = stdout.getvalue().strip()
    return code, (json.loads(text) if text else None)


def host_snapshot(ignore: tuple[str, ...] = ()) -> dict:
    """What a test may not leave behind: host links and namespaces.

    ``ignore`` names shared infrastructure a test may create on purpose (its bridge)."""
    links = _ip("-o", "link", "show").stdout
    names = sorted(n for n in (line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
                   if n not in ignore)
    netns = sorted(line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line)
    return {"links": names, "netns": netns}


def leases(data_dir: str, network: str) -> dict[str, str]:
    """IP -> 'containerID\\r\\nifname' for every lease file of a network."""
    root = os.path.join(data_dir, network)
    out = {}
    if os.path.isdir(root):
        for name in os.listdir(root):
            try:
                ipaddress.ip_address(name)
            except ValueError:
                continue
            with open(os.path.join(root, name), newline="") as f:
                out[name] = f.read()
    return out


@dataclasses.dataclass
class Network:
    """One test network: a unique name, bridge, IPv4 /24, IPv6 /64 and lease dir."""

    name: str
    bridge: str
    subnet4: str
    subnet6: str
    data_dir: str
    bin_dir: str
    ipam_type: str = "podwire-ipam"

    def conf(self, cni_version: str = "1.1.0", dual: bool = False, **extra) -> dict:
        ranges = [[{"subnet": self.subnet4}]]
        if dual:
            ranges.append([{"subnet": self.subnet6}])
        ipam = {"type": self.ipam_type, "dataDir": self.data_dir, "ranges": ranges,
                "routes": [{"dst": "0.0.0.0/0"}] + ([{"dst": "::/0"}] if dual else [])}
        ipam.update(extra.pop("ipam", {}))
        return {"cniVersion": cni_version, "name": self.name, "type": "podwire",
                "bridge": self.bridge, "isGateway": True, **extra, "ipam": ipam}

    def run(self, command: str, conf: dict, container_id: str = "", netns: str = "",
            ifname: str = "eth0", **kw):
        return run_plugin(self.bin_dir, "podwire", command, conf, container_id=container_id,
                          netns=netns, ifname=ifname, **kw)

    def leases(self) -> dict[str, str]:
        return leases(self.data_dir, self.name)

    def gateway4(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet4).hosts()))



def ping(netns: str, address: str, count: int = 1) -> bool:
    name = os.path.basename(netns)
    proc = subprocess.run(["ip", "netns", "exec", name, "ping", "-c", str(count), "-W", "2", address],
                          capture_output=True)
    return proc.returncode == 0


class Daemon:
    """A podwire-cnid of a test's own, on a socket in ``workdir``; always stopped by the caller."""

    def __init__(self, workdir: str, *args: str) -> None:
        self.workdir = str(workdir)
        self.socket = os.path.join(self.workdir, "cni.sock")
        self.pod_cidrs_file = os.path.join(self.workdir, "pod-cidrs.json")
        # No metrics endpoint unless a test asks (``--metrics-address 127.0.0.1:0``): test daemons
        # must not take the node's port 9741.
        self.args = ["--socket", self.socket, "--config", os.path.join(self.workdir, "cnid.toml"),
                     "--pod-cidrs-file", self.pod_cidrs_file, "--metrics-address", "", *args]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "Daemon":
        log = open(os.path.join(self.workdir, "cnid.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cni.daemon", *self.args],
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podwire-cnid did not start: {self.log()}")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(self.socket)
                return True
            except OSError:
                return False

    def health(self) -> dict:
        proc = subprocess.run([sys.executable, "-m", "cni.daemon", "status", *self.args],
                              capture_output=True, text=True, timeout=30)
        return json.loads(proc.stdout)

    def stop(self) -> int:
        """SIGTERM (a clean stop); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: the daemon gets no chance to finish anything."""
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        with open(os.path.join(self.workdir, "cnid.log"), errors="replace") as f:
            return f.read()
