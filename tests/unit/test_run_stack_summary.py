"""packaging/run_stack.py: what `make run` prints once the stack is up (sockets, metrics
addresses, podwire-ctl commands to try), and `--exit` (make demo) stopping after the commands."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "packaging", "run_stack.py")


@pytest.fixture
def run_stack():
    spec = importlib.util.spec_from_file_location("run_stack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_stack"] = module          # its dataclass looks itself up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["run_stack"]


def test_the_summary_names_each_socket_its_metrics_and_three_ctl_commands(run_stack, capsys):
    from cni import metrics
    daemons = run_stack.stack("/usr/local")
    run_stack.print_summary(daemons, "/usr/local")
    out = capsys.readouterr().out.splitlines()
    for d in daemons:
        assert any(d.name in line and d.socket in line and "/metrics" in line for line in out), out
    # The addresses the daemons really default to (cni.metrics holds all three).
    for address in (metrics.CNID_ADDRESS, metrics.NETPOL_ADDRESS, metrics.CRI_ADDRESS):
        assert any(f"http://{address}/metrics" in line for line in out), out
    tries = [line for line in out if line.startswith("run: try: /usr/local/bin/podwire-ctl ")]
    assert len(tries) == 3, out


def test_exit_stops_after_the_commands_with_their_status(tmp_path):
    """No daemon installed under the prefix: each is skipped, the commands run, the exit status
    says whether one failed."""
    def run(*after: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, SCRIPT, "--prefix", str(tmp_path), "--exit"]
        for command in after:
            argv += ["--after", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)
    ok = run("true")
    assert ok.returncode == 0 and "is not installed; skipped" in ok.stdout and "Ctrl-C" not in ok.stdout
    assert run("true", "false").returncode == 1


def test_a_socket_that_answers_is_used_not_started(run_stack, tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        daemon = run_stack.Daemon("podwire-cri", ["/nonexistent"], path)
        assert daemon.answers() and run_stack.start(daemon, 1) is None
