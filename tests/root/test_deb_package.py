"""The Debian package (`make deb`): lintian, then its life on a node -- install, upgrade over itself,
remove, purge -- in a throwaway Debian root, never on this host.

The root is a minbase bookworm with the package's dependencies, made once by mmdebstrap and cached
under build/deb-test/root-<key> (the key: the suite and the .deb's Depends); each test session runs
dpkg in an overlay over it (upper dir in tmp), in a mount namespace of its own, so nothing is
mounted on the host and the cache is never written.  systemd does not run there: deb-systemd-helper
still records enablement, so the wants/ symlinks are what is checked (the units under a real
systemd are tests/vm/test_units.py's).

Slow (marked `slow`): ~1.5 min -- two package builds side by side (~40 s), lintian (~20 s), dpkg
in the root (~30 s) -- plus, the first time, mmdebstrap making the root (~2 min).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build", "deb-test")
SUITE = "bookworm"
UNITS = ("podwire-netpol.service", "podwire-cnid.service", "podwire-cri.service")   # start order
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "mmdebstrap")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                       reason=f"needs {', '.join(TOOLS)} (make test and make deb install them)"),
]


def _top_version() -> str:
    return subprocess.run(["dpkg-parsechangelog", "-l", os.path.join(REPO, "packaging/debian/changelog"),
                           "-S", "Version"], check=True, capture_output=True, text=True).stdout.strip()


def _start_build(version: str, out: str) -> subprocess.Popen:
    """packaging/build_deb.sh as `make deb` runs it (gzip -1: the test's time, not the archive's
    size; lintian runs in the test)."""
    env = dict(os.environ, DEB_VERSION=version, DEB_OUT=out, LINTIAN="0",
               DPKG_DEB_COMPRESSOR_TYPE="gzip", DPKG_DEB_COMPRESSOR_LEVEL="1",
               PY=os.path.join(REPO, ".venv", "bin", "python"))
    return subprocess.Popen([os.path.join(REPO, "packaging", "build_deb.sh")], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True)


@pytest.fixture(scope="session")
def debs(tmp_path_factory) -> dict[str, str]:
    """Two builds, side by side: the changelog's version, and a higher one to upgrade to."""
    v1 = _top_version()
    v2 = f"{v1}+upgrade1"
    assert subprocess.run(["dpkg", "--compare-versions", v2, "gt", v1]).returncode == 0
    outs = {v: str(tmp_path_factory.mktemp("deb")) for v in (v1, v2)}
    builds = {v: _start_build(v, out) for v, out in outs.items()}
    logs = {v: proc.communicate(timeout=900)[0] for v, proc in builds.items()}
    found = {"v1": v1, "v2": v2}
    together = tmp_path_factory.mktemp("debs")    # one directory, mounted into the throwaway root
    for v, proc in builds.items():
        assert proc.returncode == 0, f"build of {v} failed:\n{logs[v][-6000:]}"
        name = f"podwire_{v}_amd64.deb"
        assert os.path.isfile(os.path.join(outs[v], name)), os.listdir(outs[v])
        os.link(os.path.join(outs[v], name), together / name)
        found[v] = str(together / name)
    return found


def _depends(deb: str) -> list[str]:
    """The package names of Depends (the first of alternatives), for the throwaway root."""
    field = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True, capture_output=True,
                           text=True).stdout
    return sorted({re.split(r"[ (]", dep.split("|")[0].strip())[0] for dep in field.split(",")})


@pytest.fixture(scope="session")
def base_root(debs) -> str:
    """A bookworm minbase with the package's dependencies, cached by its package list."""
    packages = _depends(debs[debs["v1"]])
    key = hashlib.sha256(json.dumps([SUITE, packages]).encode()).hexdigest()[:16]
    final = os.path.join(BUILD, f"root-{key}")
    if os.path.isdir(final):
        return final
    os.makedirs(BUILD, exist_ok=True)
    work = os.path.join(BUILD, f".building-{key}")
    shutil.rmtree(work, ignore_errors=True)
    proc = subprocess.run(["mmdebstrap", "--variant=minbase", "--format=directory", "--quiet",
                           f"--include={','.join(packages)}", "--aptopt=APT::Install-Recommends \"false\"",
                           SUITE, work], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"mmdebstrap failed:\n{proc.stderr[-4000:]}")
    os.rename(work, final)
    for name in os.listdir(BUILD):   # roots of older package lists are never used again
        if name.startswith("root-") and name != f"root-{key}":
            shutil.rmtree(os.path.join(BUILD, name), ignore_errors=True)
    return final


class Root:
    """An overlay over the cached root; each command runs chrooted into it in a mount namespace of
    its own (overlay, /proc and the .debs mounted there only), the changes kept in `upper`."""

    _ENTER = r"""set -e
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$MERGED"
mount -t proc proc "$MERGED/proc"
mount --bind -o ro "$DEBS" "$MERGED/mnt"
exec chroot "$MERGED" /bin/sh -ec "$1"
"""

    def __init__(self, lower: str, tmp: str, debs_dir: str):
        self.env = {"LOWER": lower, "UPPER": f"{tmp}/upper", "WORK": f"{tmp}/work", "MERGED": f"{tmp}/merged",
                    "DEBS": debs_dir}
        for d in ("UPPER", "WORK", "MERGED"):
            os.makedirs(self.env[d])

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
               **self.env}
        proc = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
                               "sh", "-c", self._ENTER, "sh", script], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=600)
        if check:
            assert proc.returncode == 0, f"{script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        return proc

    def out(self, script: str) -> str:
        return self.sh(script).stdout.strip()

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {path} || test -L {path}", check=False).returncode == 0

    def dpkg(self, *args: str) -> str:
        proc = self.sh("dpkg " + " ".join(args))
        return proc.stdout + proc.stderr

    def status(self) -> str:
        return self.sh("dpkg-query -W -f='${Status} ${Version}' podwire 2>/dev/null || true").stdout


def test_lintian_finds_no_errors_and_every_override_is_used(debs):
    deb = debs[debs["v1"]]
    proc = subprocess.run(["lintian", "--fail-on", "error", "--info", "--display-info", deb],
                          capture_output=True, text=True)
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWI]: ", line)]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [t for t in tags if t.startswith("E: ")], "\n".join(tags)
    # An override that matches nothing is a stale excuse (packaging/debian/podwire.lintian-overrides).
    assert not [t for t in tags if "unused-override" in t or "mismatched-override" in t], "\n".join(tags)
    # The warnings docs/packaging.md accepts, and no others.
    warnings = {line.split()[2] for line in tags if line.startswith("W: ")}
    assert warnings <= {"no-manual-page"}, "\n".join(tags)


def test_install_upgrade_remove_purge(debs, base_root, tmp_path):
    v1, v2 = debs["v1"], debs["v2"]
    root = Root(base_root, str(tmp_path), os.path.dirname(debs[v1]))
    wants = "/etc/systemd/system/multi-user.target.wants"
    # Before: an admin's own loopback in /opt/cni/bin, another network's leases in /var/lib/cni.
    root.sh("mkdir -p /opt/cni/bin /var/lib/cni/networks/other && echo admin > /opt/cni/bin/loopback"
            " && chmod 755 /opt/cni/bin/loopback && echo lease > /var/lib/cni/networks/other/10.9.0.2")

    # -- install
    said = root.dpkg("-i", f"/mnt/podwire_{v1}_amd64.deb")
    assert root.status() == f"install ok installed {v1}"
    # The reference plugins are linked where a name is free, and postinst says so.
    assert "podwire: linked" in said and "portmap" in said, said
    assert root.out("readlink /opt/cni/bin/portmap") == "/usr/lib/cni/portmap"
    assert root.out("cat /opt/cni/bin/loopback") == "admin"
    # A change in /usr/lib/cni (containernetworking-plugins upgraded) triggers the linking again.
    said = root.out("rm /opt/cni/bin/portmap && dpkg-trigger --no-await /usr/lib/cni && dpkg --triggers-only -a")
    assert root.out("readlink /opt/cni/bin/portmap") == "/usr/lib/cni/portmap", said
    # Enabled the Debian way (no systemd here: deb-systemd-helper's symlinks and its state).
    for unit in UNITS:
        assert root.out(f"readlink {wants}/{unit}") == f"/lib/systemd/system/{unit}"
    # ... and enabled, then started, in dependency order.
    postinst = root.out("cat /var/lib/dpkg/info/podwire.postinst")
    started = re.findall(r"deb-systemd-invoke \$_dh_action '([^']+)'", postinst)
    enabled = re.findall(r"deb-systemd-helper enable '([^']+)'", postinst)
    assert started == list(UNITS) and enabled == list(UNITS), (started, enabled)
    conffiles = root.out("dpkg-query -W -f='${Conffiles}' podwire")
    assert "/etc/podwire/cri.toml" in conffiles and "/etc/cni/net.d/10-podwire.conflist" in conffiles
    # The bundled venv works offline from its final path: no PyPI, no staging path left in it.
    version = json.loads(root.out("CNI_COMMAND=VERSION /opt/cni/bin/podwire </dev/null"))
    assert "1.0.0" in version["supportedVersions"], version
    root.sh("/usr/lib/podwire/venv/bin/python -c 'import grpc, kubernetes, pyroute2, yaml, bcc, "
            "cri.server.main, cni.daemon.main, netpol.agent.serve'")
    root.sh("podwire-doctor --help >/dev/null && podwire-ctl --help >/dev/null && podwire-netpol --help >/dev/null")
    assert root.out("grep -rlF debian/podwire /usr/lib/podwire/venv/bin /usr/lib/podwire/venv/pyvenv.cfg"
                    " /opt/cni/bin/podwire || true") == ""
    assert int(root.out("find /usr/lib/podwire/venv -name __pycache__ | wc -l")) > 100   # postinst compiled

    # -- upgrade over itself, an edited conffile and run-time state in place
    root.sh("echo '# edited on this node' >> /etc/podwire/cri.toml"
            " && mkdir -p /var/lib/podwire/pods/p1 /var/lib/cni/networks/podwire /var/lib/cni/results"
            " && echo '{}' > /var/lib/podwire/pods/p1/pod.json"
            " && printf 'c1\\r\\neth0' > /var/lib/cni/networks/podwire/10.85.0.7"
            " && echo '{}' > /var/lib/cni/results/podwire-c1-eth0")
    said = root.dpkg("-i", f"/mnt/podwire_{v2}_amd64.deb")
    assert root.status() == f"install ok installed {v2}"
    assert root.out("tail -n 1 /etc/podwire/cri.toml") == "# edited on this node", said
    assert not root.exists("/etc/podwire/cri.toml.dpkg-dist") and not root.exists("/etc/podwire/cri.toml.dpkg-new")
    for unit in UNITS:
        assert root.exists(f"{wants}/{unit}")
    assert root.out("readlink /opt/cni/bin/portmap") == "/usr/lib/cni/portmap"
    root.sh("CNI_COMMAND=VERSION /opt/cni/bin/podwire-ipam </dev/null >/dev/null")

    # -- remove: the package's files and links go; conffiles and state stay
    said = root.dpkg("-r", "podwire")
    assert root.status().startswith("deinstall ok config-files"), said
    for gone in ("/opt/cni/bin/podwire", "/opt/cni/bin/podwire-ipam", "/opt/cni/bin/portmap",
                 "/usr/bin/podwire-cri", "/lib/systemd/system/podwire-cri.service",
                 "/usr/lib/podwire"):     # all of it: prerm took the bytecode and the links' record
        assert not root.exists(gone), (gone, said)
    assert "podwire: removed the links to" in said and "portmap" in said, said
    assert root.out("cat /opt/cni/bin/loopback") == "admin"            # not ours: stays
    assert root.exists("/usr/lib/cni/portmap")                         # containernetworking-plugins'
    for kept in ("/var/lib/podwire/pods/p1/pod.json", "/var/lib/cni/networks/podwire/10.85.0.7",
                 "/var/lib/cni/results/podwire-c1-eth0", "/etc/cni/net.d/10-podwire.conflist"):
        assert root.exists(kept), kept
    assert root.out("tail -n 1 /etc/podwire/cri.toml") == "# edited on this node"

    # -- purge: configuration, state and enablement go; other networks' leases stay
    said = root.dpkg("-P", "podwire")
    assert root.status() == "", said
    for gone in ("/var/lib/podwire", "/var/lib/cni/networks/podwire", "/var/lib/cni/results",
                 "/etc/podwire", "/etc/cni/net.d/10-podwire.conflist",
                 *(f"{wants}/{unit}" for unit in UNITS),
                 *(f"/var/lib/systemd/deb-systemd-helper-enabled/{unit}.dsh-also" for unit in UNITS)):
        assert not root.exists(gone), (gone, said)
    assert root.out("cat /var/lib/cni/networks/other/10.9.0.2") == "lease"
