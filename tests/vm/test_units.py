"""The units under real systemd (issue: a modern node): installed with packaging/install.sh,
enabled in the documented order, a pod and a container through podwire-ctl, the shim restarted
and stopped under a running container.  Runs only inside the VM of `make vm-test`, where PID 1
is systemd; it installs into /usr/local of a throwaway guest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from crihelpers import REPO

pytestmark = pytest.mark.skipif(os.environ.get("PODWIRE_IN_VM") != "1",
                                reason="runs inside the VM of `make vm-test` only")

UNITS = ["podwire-netpol", "podwire-cnid", "podwire-cri"]  # the README's order
CTL = "/usr/local/bin/podwire-ctl"


def sh(*cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def ctl(*args: str, check: bool = True) -> str:
    return sh(CTL, *args, check=check).stdout.strip()


def unit_pids(unit: str) -> set[int]:
    """Every process in the unit's cgroup (cgroup v2 or v1 name=systemd)."""
    path = sh("systemctl", "show", "-P", "ControlGroup", f"{unit}.service").stdout.strip()
    if not path:
        return set()
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
        procs = os.path.join(root + path, "cgroup.procs")
        if os.path.exists(procs):
            with open(procs) as f:
                return {int(p) for p in f.read().split()}
    return set()


@pytest.fixture(scope="module")
def installed():
    # The guest has no network: the venv install.sh makes takes the wheels the image carries.
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/opt/podwire/wheels"}
    subprocess.run(["packaging/install.sh", "install"], cwd=REPO, env=env, check=True, timeout=1200)
    yield
    sh("systemctl", "disable", "--now", *UNITS, check=False)
    subprocess.run(["packaging/install.sh", "uninstall"], cwd=REPO, check=False, timeout=300)


@pytest.fixture(scope="module")
def running(installed):
    for unit in UNITS:  # one by one, in order: each must be up before the next needs it
        sh("systemctl", "enable", "--now", unit, timeout=900)
        assert sh("systemctl", "is-active", unit, check=False).stdout.strip() == "active", \
            sh("journalctl", "-u", unit, "--no-pager", "-n", "50").stdout
    yield
    # Whatever the tests left: containers and pods go through the shim, not around it.
    for pod in ctl("pods", "-q", check=False).split():
        ctl("stopp", pod, check=False)
        ctl("rmp", pod, check=False)


@pytest.fixture(scope="module")
def busybox(running, image_pusher):
    ref = image_pusher.push("podwire-test/vm-busybox:1.0")
    ctl("pull", ref)
    return ref


@pytest.fixture(scope="module")
def workload(busybox, tmp_path_factory):
    d = tmp_path_factory.mktemp("ctl")
    pod = d / "pod.json"
    pod.write_text(json.dumps({"metadata": {"name": "vm-pod", "namespace": "vm", "uid": "vm-pod-uid"},
                               "log_directory": str(d / "logs")}))
    ctr = d / "ctr.json"
    ctr.write_text(json.dumps({"metadata": {"name": "sleeper"}, "image": {"image": busybox},
                               "command": ["sh", "-c", "echo started; sleep 100000"], "log_path": "sleeper.log"}))
    pod_id = ctl("runp", str(pod))
    ctr_id = ctl("create", pod_id, str(ctr), str(pod))
    ctl("start", ctr_id)
    return pod_id, ctr_id


def state_of(ctr_id: str) -> str:
    return json.loads(ctl("inspect", ctr_id))["status"]["state"]


def container_pid(ctr_id: str) -> int:
    return int(json.loads(ctl("inspect", ctr_id))["info"]["pid"])


def test_the_units_are_active_and_the_shim_logs_to_the_journal(running):
    for unit in UNITS:
        assert sh("systemctl", "is-active", unit, check=False).stdout.strip() == "active"
    journal = sh("journalctl", "-u", "podwire-cri", "--no-pager", "-o", "cat").stdout
    assert "podwire-cri" in journal or "serving" in journal.lower(), journal[-2000:]


def test_a_pod_and_a_container_through_podwire_ctl(workload):
    pod_id, ctr_id = workload
    assert state_of(ctr_id) == "CONTAINER_RUNNING"
    assert "started" in ctl("logs", ctr_id)


def wait_for_the_shim(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sh(CTL, "version", check=False).returncode and time.monotonic() < deadline:
        time.sleep(1)


def test_restarting_the_shim_keeps_the_container_running(workload):
    _, ctr_id = workload
    pid = container_pid(ctr_id)
    sh("systemctl", "restart", "podwire-cri")
    wait_for_the_shim()
    assert os.path.exists(f"/proc/{pid}"), "the container died with the shim's restart"
    assert state_of(ctr_id) == "CONTAINER_RUNNING"
    assert container_pid(ctr_id) == pid


def test_stopping_the_units_leaves_containers_alone_and_nothing_in_their_cgroups(workload):
    _, ctr_id = workload
    pid = container_pid(ctr_id)
    for unit in reversed(UNITS):
        sh("systemctl", "stop", unit)
    try:
        assert os.path.exists(f"/proc/{pid}"), "stopping the units killed the container"
        for unit in UNITS:
            assert unit_pids(unit) == set(), f"{unit} left processes in its cgroup"
    finally:
        for unit in UNITS:
            sh("systemctl", "start", unit, timeout=900)
        wait_for_the_shim()
    assert state_of(ctr_id) == "CONTAINER_RUNNING"


def test_podwire_doctor_finds_nothing_blocking_on_the_installed_node(running):
    """The installed node (units up, conflist and plugins in place, systemd and cgroup v2) is
    what podwire-doctor calls healthy: exit 0, no blocker, every check answered as root."""
    proc = sh("/usr/local/bin/podwire-doctor", "-o", "json", check=False)
    report = json.loads(proc.stdout)
    problems = [f for f in report["findings"] if f["status"] in ("blocker", "unchecked")]
    assert proc.returncode == 0 and report["counts"]["blocker"] == 0, problems
    assert problems == [], problems


def test_make_demo_shows_policy_at_work(busybox):
    """What `make demo` runs after `make install` (the units already serve, so run_stack.py
    uses them), with the test registry's busybox: every step's line, exit 0, and the demo's pods
    gone afterwards."""
    demo = (f"{sys.executable} packaging/demo.py --image {busybox} --ctl {CTL} "
            "--netpol /usr/local/bin/podwire-netpol")
    cmd = [sys.executable, "packaging/run_stack.py", "--prefix", "/usr/local", "--exit", "--after", demo]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for line in ("two pods through podwire-ctl", "answered (no policy yet)", "no answer: denied",
                 "podwire-netpol drops: podwire-demo/client -> podwire-demo/web:8080 TCP",
                 "metrics: podwire_netpol_drops_total went from", "answered again", "cleaned up"):
        assert line in out, out
    assert "podwire-demo" not in ctl("pods")
