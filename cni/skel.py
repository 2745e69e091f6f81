"""The CNI skeleton: read CNI_* variables and stdin, call a verb, print the answer.

This is the single boundary where a :class:`CniError` (or any unexpected
exception) becomes the spec's error JSON.  The dispatcher takes env, stdin and
stdout as parameters so verbs are testable in-process, without subprocesses.
Standard library only: it sits on the executables' start-up path.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import sys
import traceback
from typing import Callable, Mapping, Optional, TextIO

from . import version
from .context import STANDALONE, Context
from .errors import CniError, Code, invalid_env

CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
NETWORK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
MAX_CONTAINER_ID = 128   # keeps <net>-<cid>-<ifname> cache/lease names below NAME_MAX
MAX_IFNAME = 15          # IFNAMSIZ - 1
_NS_GET_NSTYPE = 0xB703  # ioctl(2) on a namespace fd, Linux >= 4.11
_CLONE_NEWNET = 0x40000000

# Which CNI_* variables each verb needs (the spec's "Parameters" section).
_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "STATUS": (),
    "GC": (),
}
# The spec version that introduced each verb.
_MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


@dataclasses.dataclass
class CmdArgs:
    """One invocation: the CNI_* environment plus the parsed stdin config."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict = dataclasses.field(default_factory=dict)
    path: list = dataclasses.field(default_factory=list)
    config: dict = dataclasses.field(default_factory=dict)
    stdin_data: bytes = b""
    # How the verb reaches the kernel and the stores (cni/context.py); not from CNI_*.
    context: Context = STANDALONE

    @property
    def cni_version(self) -> str:
        return self.config.get("cniVersion", "0.1.0")

    def env(self) -> dict:
        """The CNI_* variables again, for delegating to another plugin."""
        env = {"CNI_COMMAND": self.command, "CNI_CONTAINERID": self.container_id,
               "CNI_NETNS": self.netns, "CNI_IFNAME": self.ifname,
               "CNI_ARGS": ";".join(f"{k}={v}" for k, v in self.args.items()),
               "CNI_PATH": os.pathsep.join(self.path)}
        return {k: v for k, v in env.items() if v}


Verb = Callable[[CmdArgs], Optional[dict]]


@dataclasses.dataclass
class Verbs:
    """The verbs a plugin implements (skel.CNIFuncs); VERSION is built in."""

    add: Verb
    delete: Verb
    check: Optional[Verb] = None
    status: Optional[Verb] = None
    gc: Optional[Verb] = None
    about: str = ""

    def get(self, command: str) -> Optional[Verb]:
        return {"ADD": self.add, "DEL": self.delete, "CHECK": self.check,
                "STATUS": self.status, "GC": self.gc}.get(command)


def dispatch(verbs: Verbs, env: Mapping[str, str], stdin, stdout: TextIO,
             stderr: TextIO = sys.stderr, context: Context = STANDALONE) -> int:
    """Run one CNI invocation in ``context``; returns the process exit code."""
    cni_version = version.CURRENT
    try:
        command = env.get("CNI_COMMAND", "")
        data = _read(stdin)
        config = _decode(data, allow_empty=command in ("VERSION", ""))
        cni_version = _reply_version(config)
        if command == "VERSION":
            info = version.version_info()
            stdout.write(json.dumps({**info, "cniVersion": cni_version}))
            return 0
        args = dataclasses.replace(parse_env(command, env, data, config), context=context)
        result = _run(verbs, args)
        if result is not None:
            stdout.write(json.dumps(version.convert(result, args.cni_version)))
        return 0
    except CniError as err:
        stdout.write(err.to_json(cni_version))
        return 1
    except Exception as exc:  # the one boundary: anything else is an internal error
        traceback.print_exc(file=stderr)
        stdout.write(CniError(Code.INTERNAL, str(exc) or type(exc).__name__).to_json(cni_version))
        return 1


def _read(stdin) -> bytes:
    raw = stdin.read() if stdin is not None else b""
    return raw.encode() if isinstance(raw, str) else raw


def _decode(data: bytes, allow_empty: bool) -> dict:
    if not data.strip():
        if allow_empty:
            return {}
        raise CniError(Code.DECODING_FAILURE, "no network configuration on stdin")
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise CniError(Code.DECODING_FAILURE, "cannot decode network configuration", str(exc)) from None
    if not isinstance(config, dict):
        raise CniError(Code.DECODING_FAILURE, "network configuration is not a JSON object")
    return config


def _reply_version(config: dict) -> str:
    """The version to answer in: the config's when we speak it, else ours."""
    wanted = config.get("cniVersion")
    return wanted if wanted in version.SUPPORTED else version.CURRENT


def _run(verbs: Verbs, args: CmdArgs) -> Optional[dict]:
    verb = verbs.get(args.command)
    if verb is None:
        if args.command in _REQUIRED:
            raise CniError(Code.INVALID_ENVIRONMENT, f"{args.command} is not supported by this plugin")
        raise invalid_env("unknown CNI_COMMAND", repr(args.command))
    minimum = _MIN_VERSION.get(args.command)
    if minimum and not version.at_least(args.cni_version, minimum):
        raise CniError(Code.INCOMPATIBLE_VERSION,
                       f"config version does not allow {args.command}",
                       f"config is {args.cni_version}, {args.command} needs {minimum}")
    return verb(args)


def parse_env(command: str, env: Mapping[str, str], data: bytes, config: dict) -> CmdArgs:
    """Validate the CNI_* variables for ``command`` and build :class:`CmdArgs`."""
    if not command:
        raise invalid_env("required env variables [CNI_COMMAND] missing")
    if command not in _REQUIRED:
        raise invalid_env("unknown CNI_COMMAND", repr(command))
    missing = [k for k in _REQUIRED[command] if not env.get(k)]
    if missing:
        raise invalid_env(f"required env variables [{','.join(missing)}] missing")
    version.require_supported(config.get("cniVersion", "0.1.0"))
    validate_network_name(config.get("name"))
    args = CmdArgs(command=command, container_id=env.get("CNI_CONTAINERID", ""),
                   netns=env.get("CNI_NETNS", ""), ifname=env.get("CNI_IFNAME", ""),
                   args=parse_cni_args(env.get("CNI_ARGS", "")),
                   path=[p for p in env.get("CNI_PATH", "").split(os.pathsep) if p],
                   config=config, stdin_data=data)
    if command in ("ADD", "CHECK", "DEL"):
        validate_container_id(args.container_id)
        validate_ifname(args.ifname)
    if args.netns and env.get("CNI_NETNS_OVERRIDE") != "1":
        validate_netns(args.netns, must_exist=command != "DEL")
    return args


def validate_container_id(cid: str) -> None:
    if not cid:
        raise CniError(Code.UNKNOWN_CONTAINER, "missing containerID")
    if len(cid) > MAX_CONTAINER_ID:
        raise invalid_env("containerID too long", f"{len(cid)} > {MAX_CONTAINER_ID} characters")
    if not CONTAINER_ID_RE.match(cid):
        raise invalid_env("invalid characters in containerID", cid)


def validate_ifname(name: str) -> None:
    if not name:
        raise invalid_env("interface name is empty")
    if len(name.encode()) > MAX_IFNAME:
        raise invalid_env("interface name is too long",
                          f"interface name should be less than {MAX_IFNAME + 1} characters")
    if name in (".", ".."):
        raise invalid_env("interface name is . or ..")
    if any(c in name for c in "/:") or any(c.isspace() for c in name):
        raise invalid_env("interface name contains / or : or whitespace characters", name)


def validate_network_name(name) -> None:
    if not name:
        raise CniError(Code.INVALID_CONFIG, "missing network name")
    if not isinstance(name, str) or not NETWORK_NAME_RE.match(name):
        raise CniError(Code.INVALID_CONFIG, "invalid characters found in network name", str(name))


def validate_netns(path: str, must_exist: bool) -> None:
    """CNI_NETNS must be a network namespace, and never the plugin's own."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if must_exist:
            raise CniError(Code.INVALID_NETNS, "netns does not exist", path) from None
        return
    except OSError as exc:
        raise CniError(Code.INVALID_NETNS, "cannot open netns", f"{path}: {exc.strerror}") from None
    try:
        try:
            nstype = fcntl.ioctl(fd, _NS_GET_NSTYPE)
        except OSError:
            nstype = None
        if nstype != _CLONE_NEWNET:
            raise CniError(Code.INVALID_NETNS, "netns path is not a network namespace", path)
        own = os.stat("/proc/self/ns/net")
        mine = os.fstat(fd)
        if (own.st_dev, own.st_ino) == (mine.st_dev, mine.st_ino):
            raise CniError(Code.INVALID_NETNS, "netns must not be the plugin's own network namespace", path)
    finally:
        os.close(fd)


def parse_cni_args(raw: str) -> dict:
    """CNI_ARGS: ``K=V;K2=V2`` (deprecated by the spec in favour of ``args``)."""
    out = {}
    for pair in filter(None, raw.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise invalid_env("invalid CNI_ARGS pair", pair)
        out[key] = value
    return out


def main(verbs: Verbs) -> int:
    """Entry point for an executable: real env, stdin and stdout."""
    code = dispatch(verbs, os.environ, sys.stdin.buffer, sys.stdout)
    sys.stdout.flush()
    return code
