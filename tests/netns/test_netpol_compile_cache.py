"""The agent's compile cache (netpol/datapath/objects.py): programs compiled once, by bcc in a
short-lived process, and loaded from the stored object by an agent that never maps LLVM.

Each test has its own cache directory and pin directory (the session's shared cache is not
used here: these tests are about filling it)."""
from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from cnitest import needs_root
from netpolnet import AgentProcess
from netpolpackets import frame

pytestmark = needs_root

# The agent's resident set with a warm cache, idle (no pods, no policies).  Before the cache it
# was ~172 MiB, most of it bcc's LLVM; without it the agent measures ~45-60 MiB here (gRPC,
# the official Kubernetes client is not imported without --kubernetes).  The bound fails if
# libbcc is ever mapped again.
WARM_RSS_BOUND_KIB = 90 * 1024


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "bpf-cache")


@pytest.fixture
def pin_dir():
    from netpol.datapath.loader import remove_pins
    path = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    yield path
    remove_pins(path)


@pytest.fixture
def veth():
    """An ifindex nobody registered (BPF_PROG_TEST_RUN needs a real device)."""
    import subprocess
    name = f"pwc{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    try:
        yield int(open(f"/sys/class/net/{name}/ifindex").read())
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def _objects(cache: str) -> list[str]:
    return sorted(n for n in os.listdir(cache) if n.endswith(".json")) if os.path.isdir(cache) else []


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def _mapped(pid: int, needle: str) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return any(needle in line for line in f)


def _agent(tmp_path, cache: str, name: str) -> AgentProcess:
    workdir = tmp_path / name
    workdir.mkdir()
    return AgentProcess(str(workdir), extra=("--bpf-cache", cache))


def test_a_cold_cache_compiles_once_and_a_warm_restart_loads_without_the_compiler(tmp_path, cache):
    first = _agent(tmp_path, cache, "first")
    try:
        first.start()
        assert "compiled now" in first.log()
        assert len(_objects(cache)) == 1
        stored = os.stat(os.path.join(cache, _objects(cache)[0]))
        pin_dir = first.pin_dir
        first.stop()

        second = _agent(tmp_path, cache, "second")
        second.pin_dir = pin_dir  # the same node: the pinned maps are picked up again
        second.start()
        try:
            assert "cached, no compile" in second.log() and "compiled the BPF programs" not in second.log()
            assert os.stat(os.path.join(cache, _objects(cache)[0])).st_mtime_ns == stored.st_mtime_ns
            pid = second.proc.pid
            assert not _mapped(pid, "libbcc") and not _mapped(pid, "libLLVM") and not _mapped(pid, "libclang")
            rss = _rss_kib(pid)
            assert rss < WARM_RSS_BOUND_KIB, f"agent RSS {rss} KiB with a warm cache"
        finally:
            second.stop()
    finally:
        first.close()


def test_a_cold_cache_agent_enforces_like_a_warm_one(pin_dir, cache, veth):
    """The programs loaded from a fresh compile and from the stored object behave the same."""
    from netpol.datapath.loader import Programs
    from netpol.datapath.testrun import TC_ACT_SHOT, run

    packet = frame("10.9.0.1", "10.9.0.2")
    cold = Programs(pin_dir, cache)
    warm = Programs(pin_dir, cache)
    try:
        assert cold.compiled and not warm.compiled
        # an unregistered interface fails closed, in both
        assert run(cold.fd("from_pod"), packet, veth, veth) == TC_ACT_SHOT
        assert run(warm.fd("from_pod"), packet, veth, veth) == TC_ACT_SHOT
        assert warm.map_fds.keys() == cold.map_fds.keys()
    finally:
        cold.close()
        warm.close()


def test_an_upgrade_that_changes_a_program_recompiles_it_and_keeps_the_pinned_maps(pin_dir, cache, veth, tmp_path):
    from netpol.datapath import sysbpf
    from netpol.datapath.loader import BPF_DIR, Programs
    from netpol.datapath.testrun import TC_ACT_OK, TC_ACT_SHOT, run

    old = Programs(pin_dir, cache)
    ids = {name: sysbpf.map_info(fd).id for name, fd in old.map_fds.items() if name != "pw_drops"}
    packet = frame("10.9.0.1", "10.9.0.2")
    assert run(old.fd("from_pod"), packet, veth, veth) == TC_ACT_SHOT
    old.close()

    # The "new release": from_pod lets packets of unregistered interfaces pass.
    upgraded = tmp_path / "bpf"
    shutil.copytree(BPF_DIR, upgraded)
    source = (upgraded / "from_pod.c").read_text()
    closed = "\t\treturn tc_action(pw_drop(&m, 0, DIR_EGRESS, &f, WORLD_IDENTITY, DROP_UNKNOWN_ENDPOINT));"
    assert closed in source
    (upgraded / "from_pod.c").write_text(source.replace(closed, "\t\treturn TC_ACT_OK;"))

    new = Programs(pin_dir, cache, bpf_dir=str(upgraded))
    try:
        assert new.compiled
        assert len(_objects(cache)) == 2  # the old release's object stays for a downgrade
        assert run(new.fd("from_pod"), packet, veth, veth) == TC_ACT_OK
        assert {name: sysbpf.map_info(fd).id for name, fd in new.map_fds.items() if name != "pw_drops"} == ids
    finally:
        new.close()
    again = Programs(pin_dir, cache, bpf_dir=str(upgraded))
    try:
        assert not again.compiled
    finally:
        again.close()


def test_an_unreadable_object_is_compiled_again(pin_dir, cache):
    from netpol.datapath.loader import Programs

    Programs(pin_dir, cache).close()
    (name,) = _objects(cache)
    with open(os.path.join(cache, name), "w") as f:
        f.write('{"format": 1, "key": "x"')  # what a full disk might have left
    p = Programs(pin_dir, cache)
    try:
        assert p.compiled
        json.load(open(os.path.join(cache, name)))
    finally:
        p.close()


def test_an_object_the_kernel_refuses_is_compiled_again(pin_dir, cache):
    """A stored program the verifier rejects (here: its instructions cut short) is not fatal:
    the loader compiles once more and loads the fresh object."""
    from netpol.datapath import objects
    from netpol.datapath.loader import Programs

    Programs(pin_dir, cache).close()
    (name,) = _objects(cache)
    path = os.path.join(cache, name)
    obj = objects.Objects.from_json(open(path).read())
    obj.programs["to_pod"].insns = obj.programs["to_pod"].insns[:16]  # no exit: the verifier refuses
    obj.programs["to_pod"].maps = [(i, n) for i, n in obj.programs["to_pod"].maps if i < 2]
    with open(path, "w") as f:
        f.write(obj.to_json())
    p = Programs(pin_dir, cache)
    try:
        assert p.compiled and p.fd("to_pod") > 0
    finally:
        p.close()


def test_a_compile_failure_is_a_datapath_error_and_leaves_nothing(pin_dir, cache, tmp_path):
    from netpol.datapath.loader import BPF_DIR, Programs
    from netpol.errors import DatapathError

    broken = tmp_path / "bpf"
    shutil.copytree(BPF_DIR, broken)
    with open(broken / "to_pod.c", "a") as f:
        f.write("\nthis is not C;\n")
    with pytest.raises(DatapathError, match="compiling the BPF programs failed"):
        Programs(pin_dir, cache, bpf_dir=str(broken))
    assert _objects(cache) == []
    assert not [n for n in os.listdir("/sys/fs/bpf") if n.startswith("podwire-compile-")]


def test_podwire_netpol_compile_fills_the_cache_ahead_of_the_agent(cache):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "netpol.cli", "compile", "--bpf-cache", cache]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert first.stdout.startswith("compiled: ")
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert second.stdout == first.stdout.replace("compiled:", "up to date:")
