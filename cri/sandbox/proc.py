"""Run the short-lived helper processes the sandbox code relies on."""
from __future__ import annotations

import subprocess

from .. import errors

TIMEOUT = 30.0


def run(argv: list[str], *, check: bool = True, what: str = "") -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, close_fds=True)
    except subprocess.TimeoutExpired:
        raise errors.deadline(f"{what or argv[0]}: timed out after {TIMEOUT:.0f}s") from None
    except FileNotFoundError:
        raise errors.internal(f"{argv[0]} not found; is it installed?") from None
    if check and proc.returncode != 0:
        raise errors.internal(f"{what or ' '.join(argv)}: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}")
    return proc
