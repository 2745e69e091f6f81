"""Build (or reuse) the VM image `make vm-test` boots: Debian bookworm, systemd as PID 1, the stock
kernel, and everything the root suites need, installed at build time.

The image is cached under build/vm/<key>/, the key a hash of what goes into it: the Debian package
lists, the Python requirements, this builder and the guest files.  A key already built is reused
as is; a new one is built aside and renamed into place, so an interrupted build is never used.

  build/vm/<key>/rootfs.img   raw ext4, never written by a run (each boots a qcow2 overlay)
  build/vm/<key>/vmlinuz, initrd.img   the guest's kernel, taken out of the image's /boot
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(REPO, "build", "vm")
SUITE = "bookworm"
IMAGE_SIZE = "8G"          # sparse: the filled part is about 1.5 GB
VENV = "/opt/podwire/venv"  # inside the guest

# What the guest needs beyond packaging/debian-packages.txt (the node's own list).
GUEST_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "udev",     # PID 1, and the bus runc's systemd driver talks to
    "linux-image-amd64", "initramfs-tools", "kmod",  # the stock kernel, its modules and initrd
    "procps", "util-linux", "mount", "tar", "make", "ca-certificates", "psmisc",
]


def node_packages() -> list[str]:
    out = []
    with open(os.path.join(REPO, "packaging", "debian-packages.txt")) as f:
        for line in f:
            out += line.split("#", 1)[0].split()
    return out


def requirements() -> list[str]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["test"])


def build_requires() -> list[str]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return list(tomllib.load(f)["build-system"]["requires"]) + ["wheel"]


BUILD_REQUIRES = build_requires()


def cache_key() -> str:
    h = hashlib.sha256()
    h.update(json.dumps([SUITE, IMAGE_SIZE, sorted(node_packages()), sorted(GUEST_PACKAGES),
                         requirements(), BUILD_REQUIRES]).encode())
    for path in [__file__, *sorted(_guest_files())]:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _guest_files() -> list[str]:
    """What the image bakes in (run-suite.sh is read from the checkout at each boot)."""
    guest = os.path.join(HERE, "guest")
    return [os.path.join(guest, n) for n in ("bootstrap.sh", "customize.sh", "podwire-vm-test.service")]


def ensure_image(log=print) -> str:
    """The directory of a built image for the current key (built now if missing)."""
    final = os.path.join(BUILD, cache_key())
    if os.path.exists(os.path.join(final, "rootfs.img")):
        log(f"vm: image {os.path.relpath(final, REPO)} (cached)")
        return final
    os.makedirs(BUILD, exist_ok=True)
    started = time.monotonic()
    work = tempfile.mkdtemp(dir=BUILD, prefix=".building-")
    try:
        _build(work, log)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _prune(keep=final)
    log(f"vm: image {os.path.relpath(final, REPO)} built in {time.monotonic() - started:.0f} s")
    return final


def _build(work: str, log) -> None:
    wheels = os.path.join(work, "wheels")
    log("vm: building wheels for the guest's venv (host pip, same Debian python)")
    # setuptools too: packaging/install.sh builds podwire itself inside the guest (tests/vm/test_units.py).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", wheels, *requirements(), *BUILD_REQUIRES],
                   check=True)
    root = os.path.join(work, "root")
    guest = os.path.join(HERE, "guest")
    hooks = [
        f'--customize-hook=mkdir -p "$1/opt/podwire" && cp -a {wheels} "$1/opt/podwire/wheels"',
        f'--customize-hook=cp {guest}/podwire-vm-test.service "$1/etc/systemd/system/"',
        f'--customize-hook=install -m 0755 {guest}/bootstrap.sh "$1/usr/local/sbin/podwire-vm-run-suite"',
        f'--customize-hook=sh {guest}/customize.sh "$1" {VENV}',
    ]
    packages = ",".join(node_packages() + GUEST_PACKAGES)
    log(f"vm: mmdebstrap {SUITE} ({len(node_packages()) + len(GUEST_PACKAGES)} packages and their dependencies)")
    subprocess.run(["mmdebstrap", "--variant=minbase", "--format=directory", f"--include={packages}",
                    "--aptopt=APT::Install-Recommends \"false\"", *hooks, SUITE, root], check=True)
    boot = os.path.join(root, "boot")
    kernels = sorted(n for n in os.listdir(boot) if n.startswith("vmlinuz-"))
    initrds = sorted(n for n in os.listdir(boot) if n.startswith("initrd.img-"))
    if not kernels or not initrds:
        raise SystemExit(f"vm: no kernel or initrd in the image's /boot: {os.listdir(boot)}")
    shutil.copy(os.path.join(boot, kernels[-1]), os.path.join(work, "vmlinuz"))
    shutil.copy(os.path.join(boot, initrds[-1]), os.path.join(work, "initrd.img"))
    log("vm: writing the ext4 image")
    subprocess.run(["mkfs.ext4", "-q", "-L", "podwire-vm", "-d", root, os.path.join(work, "rootfs.img"),
                    IMAGE_SIZE], check=True)
    shutil.rmtree(root)
    shutil.rmtree(wheels)


def _prune(keep: str) -> None:
    """Images of older keys go: each is gigabytes (sparse) and never used again."""
    for name in os.listdir(BUILD):
        path = os.path.join(BUILD, name)
        if path != keep and os.path.exists(os.path.join(path, "rootfs.img")):
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    print(ensure_image())
