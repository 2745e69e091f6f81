"""The native CNI client (cni/daemon/client.c) against the Python one (cni/daemon/client.py):
byte for byte the same request, the same relay of the answer and the same ack, and the same
fall-backs to running in process (no daemon, declined, lost, relative netns, bad timeout)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from cni.daemon import wire
from cni.install import compiler, write_wrappers
from cnitest import Daemon, run_plugin

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler")


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    base = tmp_path_factory.mktemp("clients")
    write_wrappers(str(base / "py"), sys.executable)
    write_wrappers(str(base / "c"), sys.executable, native=True)
    return {"py": str(base / "py"), "c": str(base / "c")}


class FakeDaemon:
    """Records each request's raw bytes and answers per ``mode``: answer, decline, close."""

    def __init__(self, path: str, mode: str = "answer", code: int = 0,
                 stdout: bytes = b'{"ok": true}\n', stderr: bytes = b"a warning\n") -> None:
        self.path, self.mode, self.code, self.stdout, self.stderr = path, mode, code, stdout, stderr
        self.requests: list[bytes] = []
        self.acks: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.settimeout(10)
                try:
                    raw = wire.recv_exact(conn, 4)
                    for _ in range(4):
                        size = wire.recv_exact(conn, 4)
                        raw += size + wire.recv_exact(conn, int.from_bytes(size, "big"))
                except (EOFError, OSError):
                    continue
                self.requests.append(raw)
                if self.mode == "close":
                    continue
                status = wire.DECLINED if self.mode == "decline" else wire.ANSWERED
                conn.sendall(wire.encode_answer(status, self.code, self.stdout, self.stderr))
                if status == wire.ANSWERED:
                    try:
                        self.acks.append(conn.recv(1))
                    except OSError:
                        self.acks.append(b"")

    def wait_acks(self, n: int) -> list[bytes]:
        """The acks (b"" for none) of the first ``n`` answered connections: the client may exit
        before this thread has recorded its ack."""
        deadline = time.monotonic() + 10
        while len(self.acks) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acks

    def close(self) -> None:
        self.sock.close()


def run(bin_dir: str, name: str, env: dict, stdin: bytes, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(bin_dir, name)], input=stdin, env=env, capture_output=True,
                          timeout=60, **kw)


# LC_ALL set: without it the Python client's interpreter coerces a C locale (PEP 538) and adds
# LC_CTYPE=C.UTF-8 to the environment it forwards; the native client forwards the runtime's as is.
ENV = {"LC_ALL": "C", "CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "ODD": "a=b=c", "EMPTY": "", "UTF": "h\u00e9llo"}


@pytest.mark.parametrize("name", ["podwire", "podwire-ipam"])
def test_same_request_bytes_answer_relay_and_ack(bins, tmp_path, name):
    fake = FakeDaemon(str(tmp_path / "s"), code=7, stdout=b"x" * 300000, stderr=b"e\0rr")
    try:
        stdin = b'{"cniVersion": "1.0.0", "blob": "' + b"\xff\x00" * 100000 + b'"}'
        env = {**ENV, "PODWIRE_CNID_SOCKET": fake.path, "PODWIRE_CNI_TIMEOUT": " 2.5\n"}
        procs = {kind: run(bins[kind], name, env, stdin) for kind in ("py", "c")}
        assert fake.requests[0] == fake.requests[1]
        assert fake.requests[0].startswith(b"PWC1" + wire.field(name.encode()))
        assert fake.requests[0].endswith(wire.field(b"2500"))
        for proc in procs.values():
            assert (proc.returncode, proc.stdout, proc.stderr) == (7, b"x" * 300000, b"e\0rr")
        assert fake.wait_acks(2) == [wire.ACK, wire.ACK]
    finally:
        fake.close()


def test_default_timeout_and_the_runtimes_environment_as_is(bins, tmp_path):
    fake = FakeDaemon(str(tmp_path / "s"))
    try:
        env = {"CNI_COMMAND": "DEL", "PODWIRE_CNID_SOCKET": fake.path}
        for kind in ("py", "c"):
            run(bins[kind], "podwire", env, b"")
        _, py_env, py_stdin, py_timeout = wire.recv_request(_Replay(fake.requests[0]))
        assert (py_env, py_stdin, py_timeout) == ({**env, "LC_CTYPE": "C.UTF-8"}, b"", 0)
        _, got_env, stdin, timeout = wire.recv_request(_Replay(fake.requests[1]))
        assert (got_env, stdin, timeout) == (env, b"", 0)
    finally:
        fake.close()


class _Replay:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


def _in_process_version(bins, env: dict) -> dict:
    conf = b'{"cniVersion": "0.4.0"}'
    out = {kind: run(bins[kind], "podwire", env, conf) for kind in ("py", "c")}
    assert out["c"].returncode == out["py"].returncode == 0, out
    assert out["c"].stdout == out["py"].stdout
    assert b'"supportedVersions"' in out["c"].stdout
    return out


def test_declined_runs_in_process(bins, tmp_path):
    fake = FakeDaemon(str(tmp_path / "s"), mode="decline")
    try:
        _in_process_version(bins, {"CNI_COMMAND": "VERSION", "PODWIRE_CNID_SOCKET": fake.path})
        assert len(fake.requests) == 2 and fake.acks == []
    finally:
        fake.close()


@pytest.mark.parametrize("socket_env", ["", "/nonexistent/cni.sock", "/x" * 80])
def test_no_daemon_runs_in_process(bins, socket_env):
    _in_process_version(bins, {"CNI_COMMAND": "VERSION", "PODWIRE_CNID_SOCKET": socket_env})


def test_relative_netns_and_bad_timeout_run_in_process(bins, tmp_path):
    fake = FakeDaemon(str(tmp_path / "s"))
    try:
        _in_process_version(bins, {"CNI_COMMAND": "VERSION", "PODWIRE_CNID_SOCKET": fake.path,
                                   "CNI_NETNS": "run/netns/x"})
        assert fake.connections == 0
        for bad in ("abc", "nan", "", "0x10"):
            _in_process_version(bins, {"CNI_COMMAND": "VERSION", "PODWIRE_CNID_SOCKET": fake.path,
                                       "PODWIRE_CNI_TIMEOUT": bad})
        assert fake.requests == []
    finally:
        fake.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root")
def test_lost_daemon_add_fails_try_again_other_verbs_run_in_process(bins, tmp_path):
    fake = FakeDaemon(str(tmp_path / "s"), mode="close")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])  # its netns goes with it
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare --net did not take"
            time.sleep(0.01)
        _in_process_version(bins, {"CNI_COMMAND": "VERSION", "PODWIRE_CNID_SOCKET": fake.path})
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/proc/{holder.pid}/ns/net",
               "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent", "PODWIRE_CNID_SOCKET": fake.path}
        # The IPAM plugin: it does not look at the netns before the verb runs.
        conf = b'{"cniVersion": "1.0.0", "name": "n", "type": "podwire-ipam"}'
        out = {kind: run(bins[kind], "podwire-ipam", env, conf) for kind in ("py", "c")}
        assert out["c"].returncode == out["py"].returncode != 0
        assert out["c"].stdout == out["py"].stdout
        assert b"podwire-cnid went away during ADD" in out["c"].stdout
    finally:
        holder.kill()
        holder.wait()
        fake.close()


def test_unwritable_stdout_exits_1_without_ack(bins, tmp_path):
    fake = FakeDaemon(str(tmp_path / "s"))
    try:
        for kind in ("py", "c"):
            read, write = os.pipe()
            os.close(read)
            try:
                proc = subprocess.run([os.path.join(bins[kind], "podwire")], input=b"{}", stdout=write,
                                      stderr=subprocess.PIPE, env={"PODWIRE_CNID_SOCKET": fake.path}, timeout=60)
            finally:
                os.close(write)
            assert proc.returncode == 1, (kind, proc.stderr)
        assert fake.wait_acks(2) == [b"", b""]
    finally:
        fake.close()


def test_in_process_argv0_is_the_executable(bins, tmp_path):
    """The in-process path sees the executable as sys.argv[0], as under the Python script."""
    probe = tmp_path / "code" / "cni" / "daemon"
    probe.mkdir(parents=True)
    (tmp_path / "code" / "cni" / "__init__.py").write_text("")
    (probe / "__init__.py").write_text("")
    (probe / "client.py").write_text(
        "import sys\ndef in_process_main(plugin, lost):\n"
        "    sys.stdout.write(repr((sys.argv, plugin, lost, sys.stdin.read())))\n    return 3\n")
    write_wrappers(str(tmp_path / "bin"), sys.executable, code_dir=str(tmp_path / "code"), native=True)
    exe = str(tmp_path / "bin" / "podwire-ipam")
    proc = run(str(tmp_path / "bin"), "podwire-ipam", {"PODWIRE_CNID_SOCKET": "/nonexistent"}, b"in")
    assert (proc.returncode, proc.stdout.decode()) == (3, repr(([exe], "podwire-ipam", False, "in")))


def test_version_through_a_real_daemon_and_in_process_alike(bins, tmp_path):
    (tmp_path / "cnid").mkdir()
    daemon = Daemon(str(tmp_path / "cnid")).start()
    try:
        conf = {"cniVersion": "0.4.0"}
        via_daemon = run_plugin(bins["c"], "podwire", "VERSION", conf,
                                extra_env={"PODWIRE_CNID_SOCKET": daemon.socket})
        in_process = run_plugin(bins["c"], "podwire", "VERSION", conf, extra_env={"PODWIRE_CNID_SOCKET": ""})
        assert via_daemon == in_process
        assert via_daemon[0] == 0 and "1.1.0" in via_daemon[1]["supportedVersions"]
        assert daemon.health()["served"] == 1
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_install_falls_back_to_the_python_scripts_when_the_c_client_does_not_build(tmp_path):
    env = {**os.environ, "CC": "false"}
    bin_dir = tmp_path / "bin"
    proc = subprocess.run([sys.executable, "-m", "cni.install", "--bin-dir", str(bin_dir), "--python",
                           sys.executable, "--native", "auto"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Python scripts" in proc.stderr
    assert (bin_dir / "podwire").read_text().startswith(f"#!{sys.executable} -IS\n")
    proc = subprocess.run([sys.executable, "-m", "cni.install", "--bin-dir", str(tmp_path / "strict"),
                           "--python", sys.executable, "--native", "yes"], env=env, capture_output=True, timeout=60)
    assert proc.returncode != 0 and not (tmp_path / "strict" / "podwire").exists()


def test_the_installed_default_is_the_python_thin_client(tmp_path):
    """The product's thin client is the stdlib-only script (design.md); C is opt-in."""
    bin_dir = tmp_path / "bin"
    proc = subprocess.run([sys.executable, "-m", "cni.install", "--bin-dir", str(bin_dir), "--python",
                           sys.executable], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in ("podwire", "podwire-ipam"):
        assert (bin_dir / name).read_text().startswith(f"#!{sys.executable} -IS\n")
