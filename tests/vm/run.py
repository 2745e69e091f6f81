"""`make vm-test`: boot a throwaway Debian VM and run root test suites inside it.

    VM_SUITE="tests/e2e/test_cri_cgroup_v2.py tests/vm"   one pass of just these (default: DEFAULT_PASSES)
    VM_DRIVER=systemd|cgroupfs   the e2e shims' cgroup driver for VM_SUITE (default systemd)
    VM_CGROUP=v2|v1        v1 boots with systemd.unified_cgroup_hierarchy=0 (default v2)
    VM_PYTEST_ARGS="-x"    more pytest arguments
    VM_TIMEOUT=2400        seconds before the VM is killed (the run then fails)
    VM_ACCEL=auto|kvm|tcg  auto: KVM only when a guest kernel is seen to start under it

The checkout is shared read-only over 9p; the guest copies it, runs pytest as root under systemd,
and writes its log, a JUnit report and facts (kernel, cgroup version, PID 1) to a second share,
build/vm/runs/<time>/.  The exit status is pytest's.  Each run boots a qcow2 overlay over the
cached image (tests/vm/image.py), so nothing a run does survives it.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image  # noqa: E402  (a script beside this one, not a package)

# What a default run covers, chosen for a 2-core machine under emulation (Python is ~19x slower).
# Two passes, one per cgroup driver of the e2e shims (PODWIRE_TEST_CGROUP_DRIVER): the kubeadm-style
# node (systemd) first, then cgroupfs.  Each runs the CRI e2e tests whose behaviour depends on the
# driver; what does not depend on it (the runc-level runtime tests, the kernel features this host
# lacks) runs once.
SYSTEMD_SUITE = [
    "tests/vm",                                   # node facts; the units under real systemd
    "tests/e2e/test_cri_cgroup_v2.py",            # v2 resources, stats, PSI, OOM; both drivers' parents
    "tests/e2e/test_cri_pods.py",                 # sandboxes, their cgroups and networks
    "tests/e2e/test_cri_containers.py",           # containers in the pod's cgroup
]
CGROUPFS_SUITE = [
    "tests/e2e/test_cri_pods.py",
    "tests/e2e/test_cri_containers.py",
    "tests/e2e/test_cri_pod_resize.py",           # the pod-level cgroup a cgroupfs kubelet makes and sizes
    "tests/e2e/runtime",                          # runc containers: resources, stats, OOM on this cgroup
    "tests/netns/test_plugin_options.py",         # bridge VLAN filtering, for real
    "tests/netns/test_netpol_bpf.py",             # the BPF programs on this (older) kernel
    "tests/netns/test_netpol_matrix.py::test_sctp_is_probed_with_what_the_kernel_offers[standalone]",
    "tests/netns/test_netpol_matrix.py::test_matrix_ipv4[standalone-sctp-only]",  # real SCTP associations
]
DEFAULT_PASSES = [("systemd", " ".join(SYSTEMD_SUITE)), ("cgroupfs", " ".join(CGROUPFS_SUITE))]
KVM_PROBE_SECONDS = 20


def main() -> int:
    passes = _passes()
    cgroup = os.environ.get("VM_CGROUP", "v2")
    if cgroup not in ("v1", "v2"):
        raise SystemExit(f"VM_CGROUP must be v1 or v2, not {cgroup!r}")
    timeout = float(os.environ.get("VM_TIMEOUT", "2400"))
    started = time.monotonic()
    img = image.ensure_image()
    accel = _choose_accel(img, os.environ.get("VM_ACCEL", "auto"))
    out = os.path.join(image.BUILD, "runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out)
    with open(os.path.join(out, "request.env"), "w") as f:
        f.write(f"VM_PASSES={shlex.quote(' '.join(driver for driver, _ in passes))}\n")
        for driver, suite in passes:
            f.write(f"VM_SUITE_{driver}={shlex.quote(suite)}\n")
        f.write(f"VM_PYTEST_ARGS={shlex.quote(os.environ.get('VM_PYTEST_ARGS', ''))}\nVM_VENV={image.VENV}\n")
    overlay = os.path.join(out, "overlay.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    os.path.join(img, "rootfs.img"), overlay], check=True)
    hierarchy = "1" if cgroup == "v2" else "0"
    append = (f"root=/dev/vda rw console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy={hierarchy} "
              "systemd.show_status=0 loglevel=4")
    cmd = [*_qemu(img, accel), "-append", append,
           "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
           "-virtfs", f"local,path={image.REPO},mount_tag=src,security_model=none,readonly=on",
           "-virtfs", f"local,path={out},mount_tag=out,security_model=none",
           # A NIC and a default route, as a node has (hostPort DNAT is to the node's address);
           # restrict=on: nothing reaches the host or beyond.
           "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0",
           "-serial", f"file:{os.path.join(out, 'console.log')}"]
    print(f"vm: booting ({accel}, cgroup {cgroup}); logs in {os.path.relpath(out, image.REPO)}", flush=True)
    for driver, suite in passes:
        print(f"vm: pass {driver}: {suite}", flush=True)
    booted = time.monotonic()
    try:
        subprocess.run(cmd, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"vm: no result after {timeout:.0f} s; killed (see console.log)", file=sys.stderr)
        return 124
    finally:
        os.unlink(overlay)  # gigabytes of writes, worthless after the run
    return _report(out, cgroup, passes, booted, started)


def _passes() -> list[tuple[str, str]]:
    suite = os.environ.get("VM_SUITE")
    if not suite:
        return DEFAULT_PASSES
    driver = os.environ.get("VM_DRIVER", "systemd")
    if driver not in ("systemd", "cgroupfs"):
        raise SystemExit(f"VM_DRIVER must be systemd or cgroupfs, not {driver!r}")
    return [(driver, suite)]


def _qemu(img: str, accel: str) -> list[str]:
    return ["qemu-system-x86_64", "-machine", f"q35,accel={accel}", "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(os.cpu_count() or 2), "-m", "6144", "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", os.path.join(img, "vmlinuz"), "-initrd", os.path.join(img, "initrd.img")]


def _choose_accel(img: str, wanted: str) -> str:
    """KVM only if a guest kernel is seen to start under it: on some hosts KVM_CREATE_VM answers
    and the guest never runs a single instruction."""
    if wanted in ("kvm", "tcg"):
        return wanted
    if not os.path.exists("/dev/kvm"):
        return "tcg"
    log = os.path.join(image.BUILD, "kvm-probe.log")
    cmd = [*_qemu(img, "kvm"), "-append", "console=ttyS0 panic=-1 rdinit=/nonexistent",
           "-serial", f"file:{log}"]
    try:
        subprocess.run(cmd, timeout=KVM_PROBE_SECONDS, check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pass
    try:
        with open(log, errors="replace") as f:
            started = "Linux version" in f.read()
    except FileNotFoundError:
        started = False
    print(f"vm: KVM probe: {'a guest kernel started' if started else 'no guest kernel output'}"
          f" -> {'kvm' if started else 'tcg'}", flush=True)
    return "kvm" if started else "tcg"


def _report(out: str, cgroup: str, passes: list[tuple[str, str]], booted: float, started: float) -> int:
    def read(name: str) -> str | None:
        try:
            with open(os.path.join(out, name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return None
    facts = json.loads(read("facts.json") or "{}")
    logs = "".join(read(f"pytest-{driver}.log") or "" for driver, _ in passes)
    print(f"vm: kernel {facts.get('kernel')}, PID 1 {facts.get('pid1')}, cgroup {facts.get('cgroup_version')} "
          f"(asked {cgroup}), shim's default cgroup driver {_driver_line(logs)}")
    status = 0
    for driver, _ in passes:
        rc_text = read(f"rc-{driver}")
        if rc_text is None:
            print(f"vm: pass {driver}: the guest never reported a result; last console lines:", file=sys.stderr)
            print("\n".join((read("console.log") or "").splitlines()[-40:]), file=sys.stderr)
            status = status or 1
            continue
        rc = int(rc_text.strip() or 1)
        print(f"vm: pass {driver} (e2e shims on the {driver} cgroup driver): "
              f"{_counts(os.path.join(out, f'junit-{driver}.xml'))}; exit {rc}")
        status = status or rc
    print(f"vm: {time.monotonic() - booted:.0f} s in the VM, {time.monotonic() - started:.0f} s in all; exit {status}")
    if facts.get("cgroup_version") != cgroup:
        print(f"vm: asked for cgroup {cgroup}, the guest ran {facts.get('cgroup_version')}", file=sys.stderr)
        return 1
    return status


def _counts(junit: str) -> str:
    try:
        root = ET.parse(junit).getroot()
    except (FileNotFoundError, ET.ParseError):
        return "no JUnit report"
    suites = [root] if root.tag == "testsuite" else list(root)
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return (f"{passed} passed, {total['failures']} failed, {total['errors']} errors, "
            f"{total['skipped']} skipped")


def _driver_line(log: str) -> str:
    """The driver the shim reported, printed by tests/vm/test_node_facts.py."""
    match = re.search(r"PODWIRE_VM_CGROUP_DRIVER=(\w+)", log)
    return match.group(1) if match else "not reported"


if __name__ == "__main__":
    if shutil.which("qemu-system-x86_64") is None or shutil.which("mmdebstrap") is None:
        raise SystemExit("vm-test needs qemu-system-x86 and mmdebstrap (make vm-test installs them)")
    sys.exit(main())
