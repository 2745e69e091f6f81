"""Shared fixtures for every tier.

Root tiers create uniquely named namespaces, bridges and data dirs and always
remove them, also when a test fails.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid

import pytest

REFERENCE_PLUGIN_DIR = "/usr/lib/cni"
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


def unique(prefix: str, length: int = 15) -> str:
    """A name no other test (or run) uses, short enough for an interface name."""
    return (prefix + uuid.uuid4().hex)[:length]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def netns_factory():
    """Make network namespaces (pinned in /run/netns, lo up); all removed at teardown."""
    made: list[str] = []

    def make(prefix: str = "pwt-") -> str:
        name = unique(prefix, 24)
        _ip("netns", "add", name)
        made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return f"/run/netns/{name}"

    yield make
    for name in made:
        _ip("netns", "del", name, check=False)


@pytest.fixture
def netns(netns_factory) -> str:
    """One fresh network namespace; its path."""
    return netns_factory()


@pytest.fixture
def bridge_name():
    """A bridge name for this test only; the bridge is deleted afterwards."""
    name = unique("pwbr")
    yield name
    _ip("link", "del", name, check=False)


@pytest.fixture(scope="session")
def cni_bin(tmp_path_factory) -> str:
    """A CNI bin dir: podwire's executables (as `make install` writes them) plus
    symlinks to the reference plugins from containernetworking-plugins."""
    from cni.install import write_wrappers

    bin_dir = tmp_path_factory.mktemp("cni-bin")
    write_wrappers(str(bin_dir), sys.executable)
    if os.path.isdir(REFERENCE_PLUGIN_DIR):
        for name in os.listdir(REFERENCE_PLUGIN_DIR):
            os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), bin_dir / name)
    return str(bin_dir)


def run_plugin(bin_dir: str, plugin: str, command: str, config: dict | str, *,
               container_id: str = "", netns: str = "", ifname: str = "eth0",
               cni_args: str = "", extra_env: dict | None = None) -> tuple[int, dict | None]:
    """Exec a plugin as a runtime would; (exit code, parsed stdout)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_ARGS": cni_args, "CNI_PATH": bin_dir}
    env = {k: v for k, v in env.items() if v}
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


def host_snapshot() -> dict:
    """What a test may not leave behind: host links and namespaces."""
    links = _ip("-o", "link", "show").stdout
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
    netns = sorted(line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line)
    return {"links": names, "netns": netns}
