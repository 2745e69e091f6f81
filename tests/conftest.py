"""Shared fixtures for every tier.

Root tiers create uniquely named namespaces, bridges and data dirs and always
remove them, also when a test fails.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from cnitest import (REFERENCE_PLUGIN_DIR, Daemon, Network, _ip, dispatch_in_process,  # noqa: F401
                     host_snapshot, leases, needs_root, run_plugin, unique)

IS_ROOT = os.geteuid() == 0

# Registry and test-image fixtures (local_registry, test_images, image_service, ...).  A
# plugin rather than tests/e2e/conftest.py: a second conftest.py would also be module
# "conftest" and shadow this one for every `from conftest import ...`.
pytest_plugins = ["imagefixtures", "crifixtures"]   # crifixtures: the CRI shim e2e fixtures

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# The tiers are the directories under tests/.  Every test gets its tier's marker, so
# `-m unit`, `-m netns`, `-m "not root"` select without paths (markers: pyproject.toml).
#   unit     any user, nothing on the host changes: what `make test-unit` runs.  A test
#            marked root here is a usage error, not a skip: move it to a root tier.
#   netns    root: makes or enters network namespaces, links, BPF programs and maps.
#   interop  the reference plugins (containernetworking-plugins); root per file (`root`).
#   e2e      root: the CRI shim with containerd/runc, a registry, real pods.
#   root     root, and nothing else: one process exercising code whose job needs privileges
#            on plain files (layer extraction's chown, mknod, trusted.* xattrs).  Not e2e: no
#            daemon, registry or runtime; not netns: no namespace.  As fast as unit tests.
#   vm       inside `make vm-test`'s VM only (tests/vm/run.py).
# Every test of a root tier, and every test marked `root` (cnitest.needs_root), is marked
# `root` and skipped, with its tier in the reason, when not run as root.
ROOT_TIERS = {
    "netns": "network namespaces, links, BPF",
    "e2e": "containers, mounts, pod networking",
    "root": "chown, mknod, trusted xattrs",
    "vm": "installs units under systemd",
}
TIERS = ("unit", "netns", "interop", "e2e", "root", "vm")


def tier_of(path) -> str | None:
    rel = os.path.relpath(str(path), TESTS_DIR).split(os.sep)
    return rel[0] if len(rel) > 1 and rel[0] in TIERS else None


def pytest_configure(config):
    """One compile cache for the session's agents and loaders (netpol/datapath/objects.py): the
    programs compile once, not per agent, and nothing lands in the host's /var/cache.  Tests of
    the cache itself pass their own directories."""
    if "PODWIRE_NETPOL_BPF_CACHE" not in os.environ:
        import tempfile
        os.environ["PODWIRE_NETPOL_BPF_CACHE"] = tempfile.mkdtemp(prefix="podwire-test-bpf-cache-")
        config._podwire_bpf_cache = os.environ["PODWIRE_NETPOL_BPF_CACHE"]


def pytest_unconfigure(config):
    cache = getattr(config, "_podwire_bpf_cache", None)
    if cache:
        import shutil
        shutil.rmtree(cache, ignore_errors=True)
        del os.environ["PODWIRE_NETPOL_BPF_CACHE"]


def pytest_collection_modifyitems(config, items):
    misplaced = []
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            continue
        item.add_marker(getattr(pytest.mark, tier))
        if tier in ROOT_TIERS:
            item.add_marker(pytest.mark.root)
        if item.get_closest_marker("root") is None:
            continue
        if tier == "unit":
            misplaced.append(item.nodeid)
        elif not IS_ROOT:
            why = ROOT_TIERS.get(tier, "marked root")
            item.add_marker(pytest.mark.skip(reason=f"needs root (tests/{tier}: {why})"))
    if misplaced:
        raise pytest.UsageError("tests/unit runs without root; these are marked root, move them "
                                "to a root tier (tests/netns, tests/root, ...):\n  " + "\n  ".join(misplaced))



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
def foreign_netns():
    """A network namespace that is not the test's own, also without root: a child in a new
    user and network namespace (how the reference plugins' tests run rootless, `unshare -rn`).
    Its /proc/<pid>/ns/net is a valid CNI_NETNS while it lives; nothing is pinned or mounted.
    For checks that a netns is accepted, not for wiring links into it (that needs root)."""
    cmd = ["unshare", "--net"] if IS_ROOT else ["unshare", "--user", "--map-root-user", "--net"]
    proc = subprocess.Popen([*cmd, "sh", "-c", "echo ready; exec sleep 600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.stdout.readline() != b"ready\n":
        proc.kill()
        _, err = proc.communicate()
        pytest.skip(f"cannot make a network namespace: {' '.join(cmd)}: {err.decode().strip()}")
    path = f"/proc/{proc.pid}/ns/net"
    assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
    yield path
    proc.kill()
    proc.communicate()


@pytest.fixture
def bridge_name():
    """A bridge name for this test only; the bridge is deleted afterwards."""
    name = unique("pwbr")
    yield name
    _ip("link", "del", name, check=False)


# Every test that execs podwire's executables runs twice: "standalone" runs the verbs in
# process, "daemon" forwards them to a podwire-cnid of the session's own.  Answers must be
# the same.  PODWIRE_CNI_MODE=standalone|daemon runs one mode only.
CNI_MODES = [m for m in ("standalone", "daemon") if os.environ.get("PODWIRE_CNI_MODE", m) == m]


@pytest.fixture(scope="session", params=CNI_MODES)
def cni_mode(request, tmp_path_factory):
    """Point the executables (via PODWIRE_CNID_SOCKET, which run_plugin and libcni pass
    on) at the session's daemon, or at none -- never at a node's own daemon."""
    env = pytest.MonkeyPatch()
    if request.param == "standalone":
        env.setenv("PODWIRE_CNID_SOCKET", "")
        yield request.param
        env.undo()
        return
    daemon = Daemon(tmp_path_factory.mktemp("cnid")).start()
    env.setenv("PODWIRE_CNID_SOCKET", daemon.socket)
    try:
        yield request.param
        served = daemon.health()["served"]
    finally:
        env.undo()
        code = daemon.stop()
    assert code == 0, daemon.log()
    assert served > 0 or not IS_ROOT, "daemon mode, but no request reached the daemon"


@pytest.fixture(scope="session")
def podwire_bin_dir(tmp_path_factory) -> str:
    """podwire's two executables as `make install` writes them, and nothing else (tests that
    need the reference plugins next to them use cni_bin)."""
    from cni.install import write_wrappers

    path = tmp_path_factory.mktemp("podwire-bin")
    write_wrappers(str(path), sys.executable)
    return str(path)


@pytest.fixture(scope="session")
def cni_bin(cni_mode, tmp_path_factory) -> str:
    """A CNI bin dir: podwire's executables (as `make install` writes them) plus
    symlinks to the reference plugins from containernetworking-plugins."""
    from cni.install import write_wrappers

    bin_dir = tmp_path_factory.mktemp("cni-bin")
    write_wrappers(str(bin_dir), sys.executable)
    if os.path.isdir(REFERENCE_PLUGIN_DIR):
        for name in os.listdir(REFERENCE_PLUGIN_DIR):
            os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), bin_dir / name)
    return str(bin_dir)



@pytest.fixture
def network(cni_bin, bridge_name, tmp_path):
    """A private network for one test; everything it made is removed afterwards."""
    octet = random.randint(0, 255)
    net = Network(name=unique("pwnet-", 20), bridge=bridge_name,
                  subnet4=f"10.{random.randint(100, 250)}.{octet}.0/24",
                  subnet6=f"fd{random.randint(16, 255):02x}:{octet:x}::/64",
                  data_dir=str(tmp_path / "ipam"), bin_dir=cni_bin)
    yield net
    # Belt and braces: remove this network's host veths and firewall rules even if a
    # test failed before its own DEL.
    from cni.plugin import firewall
    from cni.context import STANDALONE
    from cni.plugin.gc import remove_stale_links
    remove_stale_links(STANDALONE, net.name, set())
    firewall.gc(net.name, set())



@pytest.fixture(scope="session", autouse=True)
def _release_run_netns():
    """When the suite leaves no namespace behind, /run/netns is as we found it."""
    from cni.demo import release_run_netns, run_netns_mounted
    was_mounted = run_netns_mounted()
    yield
    if IS_ROOT:
        release_run_netns(was_mounted)
