"""Output in crictl's shapes: aligned tables, or protobuf JSON/YAML (camelCase keys)."""
from __future__ import annotations

import json
import sys
import time

import yaml
from google.protobuf import json_format


def to_obj(msg) -> dict:
    """A message as crictl prints it: protojson names, zero values included (crictl
    marshals with EmitDefaults, so e.g. state SANDBOX_READY, which is 0, shows)."""
    return json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)


def dump(obj, fmt: str, out=sys.stdout) -> None:
    if fmt == "yaml":
        out.write(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    else:
        out.write(json.dumps(obj, indent=2) + "\n")


def table(header: list[str], rows: list[list[str]], out=sys.stdout) -> None:
    """Left-aligned columns separated by three spaces (tabwriter with crictl's padding)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [header, *rows]:
        out.write("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def truncate(id_: str, no_trunc: bool, n: int = 13) -> str:
    return id_ if no_trunc else id_[:n]


def ago(ns: int, now: float | None = None) -> str:
    """go-units HumanDuration + " ago", as crictl prints CREATED."""
    secs = max(0.0, (now or time.time()) - ns / 1e9)
    return human_duration(secs) + " ago"


def human_duration(secs: float) -> str:
    if secs < 1:
        return "Less than a second"
    if secs < 2:
        return "1 second"
    if secs < 60:
        return f"{int(secs)} seconds"
    mins = secs / 60
    if mins < 2:
        return "About a minute"
    if mins < 60:
        return f"{int(mins)} minutes"
    hours = mins / 60
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if hours < 24 * 7 * 2:
        return f"{int(hours / 24)} days"
    if hours < 24 * 30 * 2:
        return f"{int(hours / 24 / 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{int(hours / 24 / 30)} months"
    return f"{int(hours / 24 / 365)} years"


def size(n: float) -> str:
    """go-units HumanSize (decimal, 4 significant digits), e.g. 1.23MB."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def state_name(enum_value: int, names: dict[int, str]) -> str:
    return names.get(enum_value, str(enum_value))


def label_selector(selector, pairs: list[str]) -> None:
    """crictl's repeated --label k=v into a filter's label_selector map."""
    for kv in pairs:
        k, _, v = kv.partition("=")
        selector[k] = v


def newest(items: list, opts) -> list:
    """Newest first, cut to --latest / --last N, as crictl lists."""
    items = sorted(items, key=lambda x: x.created_at, reverse=True)
    if opts.latest:
        return items[:1]
    return items[:opts.last] if opts.last else items


def ids_or_dump(items: list, opts, key: str) -> bool:
    """-q prints ids, -o json|yaml dumps under ``key``; True when either handled the listing."""
    if opts.quiet:
        for x in items:
            print(x.id)
        return True
    if opts.output != "table":
        dump({key: [to_obj(x) for x in items]}, opts.output)
        return True
    return False
