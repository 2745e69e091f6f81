"""podwire-doctor on this node (root): the link kinds probed in throwaway network namespaces,
then deliberately broken set-ups -- bpffs unmounted (or covered) in a private mount namespace
only, a competing conflist in a temporary conf dir, a socket with a wrong mode or owner in a
temporary directory.  The host's mounts, links and configs are never changed."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cni.install import write_wrappers
from cnitest import REFERENCE_PLUGIN_DIR
from cri import config
from cri.doctor import linkprobe, runtimes
from cri.doctor.report import BLOCKER, OK, WARNING

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFLIST = REPO / "packaging" / "cni" / "10-podwire.conflist"
DOCTOR = [sys.executable, "-m", "cri.doctor.main", "-o", "json"]
BPFFS = "/sys/fs/bpf"
NOBODY = 65534


def bpffs_on_host() -> str | None:
    fstype = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == BPFFS:
                fstype = fields[2]
    return fstype


def host_links() -> set[str]:
    done = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines()}


@pytest.fixture
def installed(tmp_path):
    """What make install leaves, in temporary directories: podwire's conflist, its executables and
    the reference plugins linked beside them, a kubelet config with the shim's driver, a cri.toml
    whose sockets and state are ours.  Returns the doctor's flags for it."""
    conf_dir, bin_dir, run_dir = tmp_path / "net.d", tmp_path / "bin", tmp_path / "run"
    conf_dir.mkdir()
    run_dir.mkdir(mode=0o755)
    # The plugin's socket to the agent is ours too (the conflist key netpolSocket moves it).
    (conf_dir / "10-podwire.conflist").write_text(SHIPPED_CONFLIST.read_text().replace(
        '"mode": "bridge",', f'"mode": "bridge", "netpolSocket": "{run_dir}/netpol-cni.sock",'))
    write_wrappers(str(bin_dir), sys.executable)
    for name in ("portmap", "loopback"):
        os.symlink(os.path.join(REFERENCE_PLUGIN_DIR, name), bin_dir / name)
    kubelet = tmp_path / "kubelet.yaml"
    kubelet.write_text(f"cgroupDriver: {config.default_cgroup_driver()}\n")
    cri_toml = tmp_path / "cri.toml"
    cri_toml.write_text(f'listen = "{run_dir}/cri.sock"\nrun_dir = "{run_dir}"\nstate_dir = "{tmp_path}/state"\n'
                        f'netpol_socket = "{run_dir}/netpol.sock"\n')
    cnid_toml = tmp_path / "cnid.toml"
    cnid_toml.write_text(f'socket = "{run_dir}/cni.sock"\n')
    return ["--cni-conf-dir", str(conf_dir), "--cni-bin-dir", str(bin_dir), "--kubelet-config", str(kubelet),
            "--cri-config", str(cri_toml), "--cnid-config", str(cnid_toml)]


def doctor(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, dict]:
    done = subprocess.run([*prefix, *DOCTOR, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stderr == "", done.stderr
    data = json.loads(done.stdout)
    assert data["exit_code"] == done.returncode
    return done.returncode, {f["check"]: f for f in data["findings"]}


def test_healthy_node(installed):
    code, found = doctor(*installed)
    blockers = {check: f["summary"] for check, f in found.items() if f["status"] == BLOCKER}
    assert blockers == {} and code == 0
    for kind in ("veth", "bridge", "vxlan", "clsact"):
        assert found[f"kernel.{kind}"]["status"] == OK, found[f"kernel.{kind}"]
    # The probes made their links in namespaces that are gone: none is left in the host's.
    assert not {"pwdoc0", "pwdoc1"} & host_links()
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding = f.read().strip()
    assert found["sysctl.ipv4-forwarding"]["status"] == (OK if forwarding == "1" else WARNING)
    runc = subprocess.run([shutil.which("runc") or "runc", "--version"], capture_output=True, text=True).stdout
    version = ".".join(map(str, runtimes.parse_version(runc)[:3]))
    assert found["runtime.runc"]["summary"].startswith(f"runc {version} (")
    assert found["cni.plugins"]["status"] == OK and found["cni.config-order"]["status"] == OK
    run_dir = Path(installed[installed.index("--cri-config") + 1]).parent / "run"
    for check in ("socket.cri", "socket.cnid", "socket.netpol", "socket.netpol-cni"):
        assert str(run_dir) in found[check]["summary"]      # never the node's own /run/podwire


def test_probe_reports_the_kernels_refusal(monkeypatch):
    monkeypatch.setitem(linkprobe.PROBES, "bogus", ["ip", "link", "add", "pwdoc0", "type", "nosuchkind"])
    refusal = linkprobe.probe("bogus")
    assert refusal is not None and "unknown" in refusal.lower()    # ip: "Error: Unknown device type."
    assert linkprobe.probe("veth") is None
    assert not {"pwdoc0", "pwdoc1"} & host_links()


# --- bpffs, in a private mount namespace only ----------------------------------------------------

IN_PRIVATE_MOUNT_NS = ("unshare", "--mount", "--propagation", "private", "sh", "-c")


def in_mount_ns(setup: str, *args: str) -> tuple[int, dict]:
    """The doctor in a new mount namespace where `setup` ran first (the host's mounts stay)."""
    script = f'set -e; {setup}; exec "$@"'
    return doctor(*args, prefix=(*IN_PRIVATE_MOUNT_NS, script, "sh"))


UNMOUNT_BPFFS = f"while mountpoint -q {BPFFS}; do umount {BPFFS}; done"


def test_bpffs_unmounted(installed):
    before = bpffs_on_host()
    _, found = in_mount_ns(UNMOUNT_BPFFS, *installed)
    assert found["kernel.bpffs"]["status"] == WARNING
    assert "not mounted" in found["kernel.bpffs"]["summary"] and "/etc/fstab" in found["kernel.bpffs"]["fix"]
    assert bpffs_on_host() == before


def test_bpffs_covered_by_another_filesystem(installed):
    before = bpffs_on_host()
    code, found = in_mount_ns(f"mount -t tmpfs pwdoc {BPFFS}", *installed)
    assert code == 1 and found["kernel.bpffs"]["status"] == BLOCKER
    assert "tmpfs" in found["kernel.bpffs"]["summary"]
    assert bpffs_on_host() == before


def test_bpffs_mounted_afresh(installed):
    before = bpffs_on_host()
    _, found = in_mount_ns(f"{UNMOUNT_BPFFS}; mount -t bpf bpf {BPFFS}", *installed)
    assert found["kernel.bpffs"]["status"] == OK
    assert bpffs_on_host() == before


# --- a competing conflist --------------------------------------------------------------------------

def test_competing_conflist(installed):
    conf_dir = Path(installed[installed.index("--cni-conf-dir") + 1])
    other = conf_dir / "05-othernet.conflist"
    other.write_text(json.dumps({"cniVersion": "1.0.0", "name": "othernet",
                                 "plugins": [{"type": "bridge", "bridge": "other0"}]}))
    code, found = doctor(*installed)
    assert code == 1 and found["cni.config-order"]["status"] == BLOCKER
    assert f"{other} (network 'othernet') sorts before 10-podwire.conflist" in found["cni.config-order"]["summary"]
    other.rename(conf_dir / "50-othernet.conflist")
    code, found = doctor(*installed)
    assert code == 0 and found["cni.config-order"]["status"] == OK


# --- sockets ---------------------------------------------------------------------------------------

@pytest.fixture
def cri_socket(installed):
    toml = Path(installed[installed.index("--cri-config") + 1])
    path = config.load(str(toml)).socket_path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    try:
        yield path
    finally:
        sock.close()
        os.unlink(path)


def test_socket_with_a_wrong_mode(installed, cri_socket):
    os.chmod(cri_socket, 0o666)
    code, found = doctor(*installed)
    assert code == 1 and found["socket.cri"]["status"] == BLOCKER
    assert "mode 0666" in found["socket.cri"]["summary"] and "root on the node" in found["socket.cri"]["summary"]
    os.chmod(cri_socket, 0o660)
    code, found = doctor(*installed)
    assert code == 0 and found["socket.cri"]["status"] == OK


def test_socket_owned_by_someone_else(installed, cri_socket):
    os.chmod(cri_socket, 0o660)
    os.chown(cri_socket, NOBODY, 0)
    code, found = doctor(*installed)
    assert code == 1 and found["socket.cri"]["status"] == BLOCKER
    assert f"uid {NOBODY}" in found["socket.cri"]["summary"]
