"""Find and exec CNI plugins: what a plugin does to delegate (e.g. to IPAM) and
what the runtime library does for every plugin of a conflist.

Standard library only.
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Mapping, Optional, Sequence

from .errors import CniError, Code

DEFAULT_TIMEOUT = 60.0


def find_plugin(plugin_type: str, paths: Sequence[str]) -> str:
    """The first executable called ``plugin_type`` in ``paths`` (CNI_PATH order)."""
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise CniError(Code.INVALID_CONFIG, "invalid plugin type", repr(plugin_type))
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INVALID_CONFIG, f"failed to find plugin {plugin_type!r} in path {list(paths)}")


def exec_plugin(path: str, env: Mapping[str, str], stdin: bytes,
                timeout: Optional[float] = DEFAULT_TIMEOUT,
                caller_environ: Optional[Mapping[str, str]] = None) -> Optional[dict]:
    """Run one plugin; its JSON result, or None when it printed nothing.

    A failing plugin's error JSON becomes a :class:`CniError` carrying the
    plugin's own code and message.  The plugin inherits ``caller_environ`` (podwire-cnid
    passes the requesting executable's, so PATH etc. match standalone), else ours.
    """
    base = caller_environ or os.environ
    full_env = {k: v for k, v in base.items() if not k.startswith("CNI_")}
    full_env.update(env)
    try:
        proc = subprocess.run([path], input=stdin, env=full_env, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CniError(Code.TRY_AGAIN_LATER, f"plugin {os.path.basename(path)} timed out",
                       f"no answer after {timeout}s") from None
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot exec plugin {path}", exc.strerror or str(exc)) from None
    return _parse_output(path, proc)


def _parse_output(path: str, proc: subprocess.CompletedProcess) -> Optional[dict]:
    name = os.path.basename(path)
    out = proc.stdout.strip()
    stderr = proc.stderr.decode(errors="replace").strip()
    try:
        data = json.loads(out) if out else None
    except ValueError:
        data = None
        if proc.returncode == 0:
            raise CniError(Code.DECODING_FAILURE, f"plugin {name} printed invalid JSON",
                           out[:200].decode(errors="replace")) from None
    if proc.returncode != 0:
        if isinstance(data, dict) and "code" in data:
            raise CniError.from_dict(data)
        raise CniError(Code.INTERNAL, f"plugin {name} failed with exit status {proc.returncode}",
                       stderr or out.decode(errors="replace"))
    return data
