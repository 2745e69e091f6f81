"""Run a network configuration list: the Python counterpart of libcni's CNIConfig.

Semantics follow libcni (containernetworking/cni libcni/api.go), so a runtime
using this behaves like containerd or CRI-O towards the same plugins:

* ADD runs the plugins in order, each getting the previous one's result as
  ``prevResult``; the final result is cached.  A failed ADD does *not* run DEL:
  the caller (the runtime) decides, and the spec has it call DEL before giving
  up on the attachment.
* DEL runs them in reverse with the cached ADD result (cniVersion >= 0.4.0),
  stops at the first failure (keeping the cache so a retry still has the
  prevResult) and removes the cache entry once every plugin succeeded.
* CHECK (>= 0.4.0) runs them in order with the cached result.
* STATUS and GC exist from 1.1.0; GC first DELs every cached attachment of the
  network the runtime no longer knows.

The spec forbids concurrent operations on one attachment, and GC must not run
alongside ADD/DEL of the same network; callers serialise those.  Different
containers may be handled from different threads: a CNIConfig holds no
mutable state and cache entries are replaced atomically.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Optional, Sequence

from .. import version
from ..errors import CniError, Code
from ..invoke import DEFAULT_TIMEOUT, exec_plugin, find_plugin
from ..skel import validate_container_id, validate_ifname, validate_network_name
from . import cache
from .cache import DEFAULT_CACHE_DIR, CachedAttachment
from .conf import NetworkConfigList, plugin_description
from .inject import plugin_stdin


@dataclasses.dataclass
class RuntimeConf:
    """One attachment: everything a plugin gets besides its network config."""

    container_id: str
    netns: str
    ifname: str
    args: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    capability_args: dict = dataclasses.field(default_factory=dict)
    cache_dir: Optional[str] = None   # overrides CNIConfig.cache_dir for this attachment

    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)


class CNIConfig:
    """Find plugins in ``path`` (CNI_PATH order), cache results in ``cache_dir``.

    ``timeout`` bounds each plugin execution; an expired one raises TRY_AGAIN_LATER.
    """

    def __init__(self, path: Sequence[str], cache_dir: str = DEFAULT_CACHE_DIR,
                 timeout: Optional[float] = DEFAULT_TIMEOUT) -> None:
        self.path = list(path)
        self.cache_dir = cache_dir
        self.timeout = timeout

    # --- the verbs ------------------------------------------------------------

    def add_network_list(self, netlist: NetworkConfigList, rt: RuntimeConf) -> dict:
        """ADD every plugin in order; the final result, in the list's cniVersion."""
        _validate(netlist, rt)
        result: Optional[dict] = None
        for plugin in netlist.plugins:
            out = self._exec(plugin, "ADD", netlist, rt, prev_result=result)
            if out is None:
                raise CniError(Code.DECODING_FAILURE, f"plugin {plugin_description(plugin)} returned no result")
            result = _as_version(out, netlist.cni_version)
        if result is None:  # a conflist has at least one plugin (_validate)
            raise CniError(Code.INVALID_CONFIG, f"network {netlist.name!r} has no plugins")
        self._cache_add(netlist, rt, result)
        return result

    def del_network_list(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        """DEL every plugin in reverse order; also when the netns is already gone."""
        _validate(netlist, rt)
        prev = self._prev_result_for_del(netlist, rt)
        for plugin in reversed(netlist.plugins):
            self._exec(plugin, "DEL", netlist, rt, prev_result=prev)
        cache.remove(self._cache_dir(rt), netlist.name, rt.container_id, rt.ifname)

    def check_network_list(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK every plugin in order against the cached ADD result."""
        if not version.at_least(netlist.cni_version, "0.4.0"):
            raise CniError(Code.INCOMPATIBLE_VERSION,
                           f"configuration version {netlist.cni_version!r} does not support the CHECK command")
        if netlist.disable_check:
            return
        _validate(netlist, rt)
        cached = self.get_cached_result(netlist, rt)
        if cached is None:
            raise CniError(Code.UNKNOWN_CONTAINER, f"no cached result for network {netlist.name!r}",
                           f"container {rt.container_id}, interface {rt.ifname}")
        for plugin in netlist.plugins:
            self._exec(plugin, "CHECK", netlist, rt, prev_result=cached)

    def get_status_network_list(self, netlist: NetworkConfigList) -> None:
        """STATUS of each plugin; raises the first not-ready answer (50/51 by the spec)."""
        if not version.at_least(netlist.cni_version, "1.1.0"):
            return  # older plugins have no STATUS; libcni treats them as ready
        for plugin in netlist.plugins:
            self._exec(plugin, "STATUS", netlist, None)

    def gc_network_list(self, netlist: NetworkConfigList,
                        valid_attachments: Iterable[tuple[str, str]]) -> None:
        """DEL cached attachments not in ``valid_attachments`` ((containerID, ifname)
        pairs), then GC every plugin.  Continues past errors; raises at the end."""
        if netlist.disable_gc:
            return
        valid = [(cid, ifname) for cid, ifname in valid_attachments]
        errors = self._delete_stale(netlist, set(valid))
        if version.at_least(netlist.cni_version, "1.1.0"):
            errors += self._gc_plugins(netlist, valid)
        _raise_collected(errors)

    # --- cache ----------------------------------------------------------------

    def get_cached_result(self, netlist: NetworkConfigList, rt: RuntimeConf) -> Optional[dict]:
        """The cached ADD result in the list's cniVersion, or None if there is none."""
        entry = cache.read(self._cache_dir(rt), netlist.name, rt.container_id, rt.ifname)
        if entry is None or entry.result is None:
            return None
        return _as_version(entry.result, netlist.cni_version)

    def get_cached_attachments(self, container_id: str = "") -> list[CachedAttachment]:
        """Attachments in the cache (of one container if given), e.g. to rebuild state."""
        return cache.list_entries(self.cache_dir, container_id)

    # --- plugins --------------------------------------------------------------

    def get_version_info(self, plugin_type: str) -> dict:
        """The plugin's VERSION answer: ``{cniVersion, supportedVersions}``."""
        path = find_plugin(plugin_type, self.path)
        env = {"CNI_COMMAND": "VERSION", "CNI_PATH": os.pathsep.join(self.path)}
        stdin = json.dumps({"cniVersion": version.CURRENT}).encode()
        info = exec_plugin(path, env, stdin, self.timeout)
        # A plugin that prints nothing predates VERSION: it speaks 0.1.0 only.
        return info or {"cniVersion": "0.1.0", "supportedVersions": ["0.1.0"]}

    def validate_network_list(self, netlist: NetworkConfigList) -> list[str]:
        """Check that every plugin exists and speaks the list's version; the
        capabilities the list declares (libcni's ValidateNetworkList)."""
        errors = []
        for plugin in netlist.plugins:
            try:
                supported = self.get_version_info(plugin["type"]).get("supportedVersions", [])
                if netlist.cni_version not in supported:
                    raise CniError(Code.INCOMPATIBLE_VERSION,
                                   f"plugin {plugin['type']} does not support config version {netlist.cni_version!r}")
            except CniError as err:
                errors.append(err)
        _raise_collected(errors)
        return netlist.capabilities()

    # --- internals ------------------------------------------------------------

    def _exec(self, plugin: dict, command: str, netlist: NetworkConfigList,
              rt: Optional[RuntimeConf], prev_result: Optional[dict] = None,
              extra: Optional[dict] = None) -> Optional[dict]:
        stdin = plugin_stdin(plugin, netlist.name, netlist.cni_version, prev_result=prev_result,
                             capability_args=rt.capability_args if rt else None, extra=extra)
        try:
            path = find_plugin(plugin["type"], self.path)
            return exec_plugin(path, self._env(command, rt), stdin, self.timeout)
        except CniError as err:
            # Keep the plugin's own code/msg/details; say which plugin and verb failed.
            err.add_note(f"plugin {plugin_description(plugin)} failed ({command}) "
                         f"on network {netlist.name!r}")
            raise

    def _env(self, command: str, rt: Optional[RuntimeConf]) -> dict:
        """libcni sets all six variables, empty when they do not apply (STATUS, GC)."""
        rt = rt or RuntimeConf("", "", "")
        return {"CNI_COMMAND": command, "CNI_CONTAINERID": rt.container_id, "CNI_NETNS": rt.netns,
                "CNI_IFNAME": rt.ifname, "CNI_ARGS": rt.cni_args(),
                "CNI_PATH": os.pathsep.join(self.path)}

    def _cache_dir(self, rt: RuntimeConf) -> str:
        return rt.cache_dir or self.cache_dir

    def _cache_add(self, netlist: NetworkConfigList, rt: RuntimeConf, result: dict) -> None:
        entry = CachedAttachment(
            container_id=rt.container_id, ifname=rt.ifname, network=netlist.name, netns=rt.netns,
            cni_args=list(rt.args), capability_args=dict(rt.capability_args),
            config=netlist.raw, result=result)
        try:
            cache.write(self._cache_dir(rt), entry)
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"failed to set network {netlist.name!r} cached result",
                           exc.strerror or str(exc)) from None

    def _prev_result_for_del(self, netlist: NetworkConfigList, rt: RuntimeConf) -> Optional[dict]:
        """DEL's prevResult; before 0.4.0 there is none.  An unusable cache entry
        is deleted and DEL goes on without it, as libcni does: DEL must not get
        stuck on a corrupt file."""
        if not version.at_least(netlist.cni_version, "0.4.0"):
            return None
        try:
            return self.get_cached_result(netlist, rt)
        except CniError:
            cache.remove(self._cache_dir(rt), netlist.name, rt.container_id, rt.ifname)
            return None

    def _delete_stale(self, netlist: NetworkConfigList, valid: set) -> list[CniError]:
        """GC step 1: a synthesised DEL, with the cached runtime args, per stale entry."""
        errors = []
        for entry in cache.list_entries(self.cache_dir):
            if entry.network != netlist.name or (entry.container_id, entry.ifname) in valid:
                continue
            rt = RuntimeConf(entry.container_id, entry.netns, entry.ifname,
                             list(entry.cni_args), dict(entry.capability_args))
            try:
                self.del_network_list(netlist, rt)
            except CniError as err:
                err.add_note(f"deleting stale attachment {entry.container_id} {entry.ifname}")
                errors.append(err)
        return errors

    def _gc_plugins(self, netlist: NetworkConfigList, valid: list) -> list[CniError]:
        attachments = [{"containerID": cid, "ifname": ifname} for cid, ifname in valid]
        # libcni also sends the misspelled key (containernetworking/cni#1101).
        extra = {"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments}
        errors = []
        for plugin in netlist.plugins:
            try:
                self._exec(plugin, "GC", netlist, None, extra=extra)
            except CniError as err:
                errors.append(err)
        return errors


def _validate(netlist: NetworkConfigList, rt: RuntimeConf) -> None:
    """The IDs end up in file names (cache, IPAM leases): check them first."""
    validate_container_id(rt.container_id)
    validate_network_name(netlist.name)
    validate_ifname(rt.ifname)


def _as_version(result: dict, cni_version: str) -> dict:
    """A result in ``cni_version``: plugins should already answer in it, cached
    results may predate a config change (libcni's GetAsVersion)."""
    if result.get("cniVersion") == cni_version:
        return result
    return version.convert(version.to_current(result), cni_version)


def _raise_collected(errors: list[CniError]) -> None:
    """Raise the only error, or one CniError that carries all of them (``.errors``)."""
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    first = errors[0]
    summary = CniError(first.code, f"{len(errors)} operations failed, first: {first.msg}",
                       "; ".join(_describe(e) for e in errors))
    summary.errors = errors
    raise summary from first


def _describe(err: CniError) -> str:
    notes = getattr(err, "__notes__", [])
    return " ".join([str(err), *(f"({n})" for n in notes)])
