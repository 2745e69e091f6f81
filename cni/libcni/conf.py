"""Load network configurations: conflists, and single-plugin .conf files upconverted
to one-plugin lists (libcni's conf.go: ConfFiles, ConfListFromBytes, ConfListFromConf).

Every error names the file it came from, because a runtime reads a whole
directory and an operator has to know which file to fix.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Iterator

from .. import version
from ..errors import CniError, Code
from ..skel import validate_network_name

DEFAULT_EXTENSIONS = (".conf", ".conflist", ".json")
# Extensions of per-plugin files in <confdir>/<network name>/ (libcni >= 1.2).
PLUGIN_DIR_EXTENSIONS = (".conf",)


@dataclasses.dataclass
class NetworkConfigList:
    """A parsed conflist.  ``raw`` is what libcni caches as the attachment's config."""

    name: str
    cni_version: str
    plugins: list[dict]
    disable_check: bool = False
    disable_gc: bool = False
    load_only_inlined_plugins: bool = False
    raw: bytes = b""
    source: str = "<bytes>"

    def capabilities(self) -> list[str]:
        """Every capability some plugin of the list declares ``true``."""
        caps = {c for p in self.plugins for c, on in (p.get("capabilities") or {}).items() if on}
        return sorted(caps)


def conf_files(directory: str, extensions: Iterable[str] = DEFAULT_EXTENSIONS) -> list[str]:
    """Config files in ``directory`` with one of ``extensions``, sorted by name.

    A missing directory is not an error (libcni): the runtime simply has no network yet.
    """
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read config directory {directory}",
                       exc.strerror or str(exc)) from None
    exts = tuple(extensions)
    return [e.path for e in entries
            if not e.is_dir() and os.path.splitext(e.name)[1] in exts]


def load_conflist(path: str) -> NetworkConfigList:
    """Load one file: a conflist, or a single-plugin config turned into a list."""
    netlist = _parse(_read(path), source=path)
    if not netlist.load_only_inlined_plugins:
        netlist.plugins.extend(_plugins_from_dir(os.path.dirname(path), netlist.name))
    return _require_plugins(netlist)


def load_default_network(directory: str) -> NetworkConfigList:
    """The first valid config in sorted order, as containerd and CRI-O choose it.

    Invalid files are skipped; when none is valid the error lists why each failed.
    """
    problems: list[str] = []
    for netlist in _valid_lists(directory, problems):
        return netlist
    raise CniError(Code.INVALID_CONFIG, f"no valid network configuration in {directory}",
                   "; ".join(problems))


def load_network(directory: str, name: str) -> NetworkConfigList:
    """The first valid config in ``directory`` whose network is called ``name``."""
    problems: list[str] = []
    for netlist in _valid_lists(directory, problems):
        if netlist.name == name:
            return netlist
    raise CniError(Code.INVALID_CONFIG, f"no network configuration named {name!r} in {directory}",
                   "; ".join(problems))


def _valid_lists(directory: str, problems: list[str]) -> Iterator[NetworkConfigList]:
    """Load each config in order; a broken file must not hide the others, so its
    error is recorded in ``problems`` instead of raised."""
    for path in conf_files(directory):
        try:
            yield load_conflist(path)
        except CniError as err:
            problems.append(f"{path}: {err}")


def conflist_from_bytes(data: bytes, source: str = "<bytes>") -> NetworkConfigList:
    """Parse a conflist; a single-plugin config (``type``, no ``plugins``) is upconverted."""
    return _require_plugins(_parse(data, source))


def _parse(data: bytes, source: str) -> NetworkConfigList:
    """The list as written; it may still lack plugins that live in <confdir>/<name>/."""
    raw = _decode(data, source)
    if "plugins" not in raw and "type" in raw:
        return _from_single_conf(raw, source)
    name = _name(raw, source)
    netlist = NetworkConfigList(
        name=name, cni_version=_pick_version(raw, source), plugins=[],
        disable_check=_bool(raw, "disableCheck", source),
        disable_gc=_bool(raw, "disableGC", source),
        load_only_inlined_plugins=_bool(raw, "loadOnlyInlinedPlugins", source),
        raw=bytes(data), source=source)
    netlist.plugins = _plugins(raw, source)
    return netlist


def _from_single_conf(raw: dict, source: str) -> NetworkConfigList:
    """libcni's ConfListFromConf: wrap the config in a list and re-marshal it, so the
    cached ``config`` bytes are the same JSON libcni would write (Go sorts map keys)."""
    _plugin(raw, 0, source)
    wrapped = {"cniVersion": raw.get("cniVersion", ""), "name": raw.get("name"), "plugins": [raw]}
    data = json.dumps(wrapped, sort_keys=True, separators=(",", ":")).encode()
    return _parse(data, source)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read {path}", exc.strerror or str(exc)) from None


def _decode(data: bytes, source: str) -> dict:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise CniError(Code.DECODING_FAILURE, f"{source}: cannot parse network configuration",
                       str(exc)) from None
    if not isinstance(raw, dict):
        raise CniError(Code.DECODING_FAILURE, f"{source}: network configuration is not a JSON object")
    return raw


def _invalid(source: str, msg: str, details: str = "") -> CniError:
    return CniError(Code.INVALID_CONFIG, f"{source}: {msg}", details)


def _name(raw: dict, source: str) -> str:
    name = raw.get("name")
    if name is None:
        raise _invalid(source, "missing network name")
    try:
        validate_network_name(name)
    except CniError as err:
        raise _invalid(source, err.msg, err.details) from None
    return name


def _pick_version(raw: dict, source: str) -> str:
    """``cniVersions`` (plus ``cniVersion``): the highest we support wins (libcni)."""
    wanted = raw.get("cniVersion", "")
    if not isinstance(wanted, str):
        raise _invalid(source, "cniVersion must be a string")
    if "cniVersions" in raw:
        versions = raw["cniVersions"]
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise _invalid(source, "cniVersions must be a list of strings")
        best = version.pick(versions + ([wanted] if wanted else []))
        if best is None:
            raise CniError(Code.INCOMPATIBLE_VERSION, f"{source}: no supported version in cniVersions",
                           f"{versions}, supported {list(version.SUPPORTED)}")
        return best
    # Plugins read a missing cniVersion as 0.1.0; say so explicitly.
    wanted = wanted or "0.1.0"
    if wanted not in version.SUPPORTED:
        raise CniError(Code.INCOMPATIBLE_VERSION, f"{source}: unsupported cniVersion {wanted!r}",
                       f"supported {list(version.SUPPORTED)}")
    return wanted


def _bool(raw: dict, key: str, source: str) -> bool:
    """libcni accepts JSON booleans and the strings "true"/"false" (any case)."""
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _invalid(source, f"invalid value for {key}", repr(value))


def _plugins(raw: dict, source: str) -> list[dict]:
    plugins = raw.get("plugins")
    if plugins is None:
        # Plugins may still come from <confdir>/<name>/; _require_plugins checks the total.
        if _bool(raw, "loadOnlyInlinedPlugins", source):
            raise _invalid(source, "loadOnlyInlinedPlugins is true but there is no plugins list")
        return []
    if not isinstance(plugins, list) or not plugins:
        raise _invalid(source, "plugins must be a non-empty list")
    return [_plugin(p, i, source) for i, p in enumerate(plugins)]


def _plugin(conf, index: int, source: str) -> dict:
    if not isinstance(conf, dict):
        raise _invalid(source, f"plugin {index} is not a JSON object")
    plugin_type = conf.get("type")
    if not plugin_type or not isinstance(plugin_type, str):
        raise _invalid(source, f"plugin {index}: missing 'type'")
    caps = conf.get("capabilities") or {}    # JSON null is an empty map, as in Go
    if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
        raise _invalid(source, f"plugin {index} ({plugin_type}): capabilities must map names to booleans")
    return conf


def _plugins_from_dir(confdir: str, name: str) -> list[dict]:
    """Plugins kept beside the conflist in <confdir>/<name>/*.conf (libcni >= 1.2)."""
    return [_plugin(_decode(_read(path), path), 0, path)
            for path in conf_files(os.path.join(confdir, name), PLUGIN_DIR_EXTENSIONS)]


def _require_plugins(netlist: NetworkConfigList) -> NetworkConfigList:
    if not netlist.plugins:
        raise _invalid(netlist.source, "no plugins in network configuration")
    return netlist


def plugin_description(plugin: dict) -> str:
    """`type="bridge"`, plus the plugin's own name if it has one (libcni's pluginDescription)."""
    out = f"type={plugin.get('type')!r}"
    return f"{out} name={plugin['name']!r}" if plugin.get("name") else out
