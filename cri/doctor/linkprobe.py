"""Does the running kernel offer a link kind or the clsact qdisc?  Ask it: make one.

Each probe runs `ip` or `tc` under `unshare --net`, in a network namespace of its own that
dies with the command, so whatever the probe made goes with it and the host's namespace is
never touched.  Making a link kind may load its module, as the first pod would."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from typing import Iterable, Optional

TIMEOUT = 10.0
# What each probe makes; the names live only inside the throwaway namespace.
PROBES = {
    "veth": ["ip", "link", "add", "pwdoc0", "type", "veth", "peer", "name", "pwdoc1"],
    "bridge": ["ip", "link", "add", "pwdoc0", "type", "bridge"],
    "vxlan": ["ip", "link", "add", "pwdoc0", "type", "vxlan", "id", "42", "dstport", "4789"],
    "clsact": ["tc", "qdisc", "add", "dev", "lo", "clsact"],
}
# The module behind each: loaded already means offered, no probe needed (and no root).
MODULES = {"veth": "veth", "bridge": "bridge", "vxlan": "vxlan", "clsact": "sch_ingress"}


@dataclasses.dataclass(frozen=True)
class Probe:
    offered: Optional[bool]     # None: the probe could not run, nothing is known
    detail: str = ""            # the kernel's refusal, or why the probe could not run


class CannotProbe(Exception):
    """The probe could not run (no root, no unshare/ip/tc): nothing is known."""


def probe(feature: str) -> Optional[str]:
    """None when the kernel made it; else the kernel's refusal, as ip/tc print it."""
    argv = PROBES[feature]
    if os.geteuid() != 0:
        raise CannotProbe("needs root (a private network namespace)")
    for tool in ("unshare", argv[0]):
        if shutil.which(tool) is None:
            raise CannotProbe(f"no {tool} command")
    try:
        done = subprocess.run(["unshare", "--net", "--", *argv], capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CannotProbe(f"{' '.join(argv)} did not finish in {TIMEOUT:.0f}s") from None
    if done.returncode == 0:
        return None
    stderr = done.stderr.strip()
    if stderr.startswith("unshare:"):       # unshare itself failed (e.g. seccomp, no netns)
        raise CannotProbe(stderr)
    return stderr or f"exit status {done.returncode}"


def probe_all(features: Iterable[str] = tuple(PROBES)) -> dict[str, Probe]:
    results = {}
    for feature in features:
        try:
            refusal = probe(feature)
        except CannotProbe as exc:
            results[feature] = Probe(None, str(exc))
        else:
            results[feature] = Probe(refusal is None, refusal or "")
    return results
