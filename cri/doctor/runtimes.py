"""runc and conmon, as podwire-cri would run them: present, and new enough.

The floors (a blocker below) are what podwire-cri's contracts need; the tested versions (a
warning below) are Debian 12's, which `make test` and `make vm-test` run against:
- runc >= 1.0.0: the first stable release, with cgroup v2 supported in full (since rc93);
  podwire-cri hands runc v2 `unified` keys and leaves v1-to-v2 conversions to it.
  Tested: 1.1.5; upstream made no 1.0.y release after 1.1.0, so 1.0 gets no fixes.
- conmon >= 2.0.0: podwire-cri speaks `--api-version 1`, the JSON sync pipe of conmon 2
  (cri/monitor/conmon.py).  Tested: 2.1.6."""
from __future__ import annotations

import os
import re
import subprocess
from typing import Optional

from .node import Node
from .report import Finding, blocker, ok, warning

TIMEOUT = 10.0
# Where a bare name in cri.toml is looked up on a node (a root's own PATH, not the doctor's).
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
Version = tuple[int, int, int, int]     # major, minor, patch, 1 for a release (0: a release candidate)
# (floor, tested): below the floor a blocker, below the tested version a warning.
FLOORS: dict[str, tuple[Version, Version]] = {"runc": ((1, 0, 0, 1), (1, 1, 0, 1)),
                                              "conmon": ((2, 0, 0, 1), (2, 1, 0, 1))}


def check(node: Node) -> list[Finding]:
    cfg = node.cri_or_default
    return [_runtime(node, "runc", cfg.runc), _runtime(node, "conmon", cfg.conmon)]


def find(node: Node, name: str) -> Optional[str]:
    """The executable `name` (cri.toml's value: a path or a bare name) under the node's root."""
    candidates = [name] if "/" in name else [os.path.join(d, name) for d in SEARCH_PATH]
    for candidate in candidates:
        path = node.path(candidate)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def parse_version(text: str) -> Optional[Version]:
    """"runc version 1.1.5+ds1" -> (1, 1, 5, 1); "runc version 1.0.0-rc93" -> (1, 0, 0, 0),
    which sorts before 1.0.0 itself."""
    match = re.search(r"version\s+v?(\d+)\.(\d+)(?:\.(\d+))?(-rc)?", text)
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0), 0 if match[4] else 1


def _dotted(version: Version) -> str:
    return ".".join(map(str, version[:3])) + ("" if version[3] else "-rc")


def _runtime(node: Node, tool: str, configured: str) -> Finding:
    check = f"runtime.{tool}"
    path = find(node, configured)
    if path is None:
        return blocker(check, f"{configured} not found (cri.toml {tool} = {configured!r})",
                       f"apt-get install {tool}, or set {tool} in {node.cri_config} to its path")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
        text = done.stdout + done.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return blocker(check, f"{path} --version failed: {exc}", f"reinstall {tool}")
    version = parse_version(text)
    if version is None:
        return blocker(check, f"{path} --version says no version: {text.strip()[:120]!r}",
                       f"reinstall {tool}")
    floor, tested = FLOORS[tool]
    shown = f"{tool} {_dotted(version)} ({path})"
    if version < floor:
        return blocker(check, f"{shown} is older than {_dotted(floor)}, the oldest podwire-cri works with",
                       f"upgrade {tool} to >= {_dotted(tested)}")
    if version < tested:
        return warning(check, f"{shown} is older than {_dotted(tested)}, the oldest podwire is tested with",
                       f"upgrade {tool} to >= {_dotted(tested)}")
    return ok(check, shown)
