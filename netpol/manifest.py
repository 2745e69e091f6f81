"""Multi-document Kubernetes YAML/JSON -> NetworkPolicy, Namespace and Service objects.

Accepts what `kubectl apply -f` accepts for these kinds: several documents
separated by `---`, `kind: List` / `NetworkPolicyList` wrappers, JSON.  A
document that does not parse rejects the whole manifest (all or nothing).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import threading
from typing import Iterable, Iterator, Optional

import yaml
from yaml.events import (DocumentEndEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent,
                         ScalarEvent, SequenceEndEvent, SequenceStartEvent, StreamEndEvent)
from yaml.nodes import ScalarNode

from .errors import InvalidPolicy
from .model import NetworkPolicy
from .parse import parse_policy
from .services import Service, service_from_object

# libyaml's parser when PyYAML has it: 3x faster on 10,000-rule policies.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FAST = _LOADER is not yaml.SafeLoader  # the event loop below pays off only over libyaml's parser

_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (nestable, across threads).  Parsing and
    compiling a 20,000-rule manifest allocate ~10^6 acyclic containers, and the collector's
    repeated full passes over that growing heap cost more than the work itself (YAML 3.3 s ->
    1.0 s, JSON 0.48 s -> 0.23 s).  Refcounting still frees everything; cycles wait until after."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


@dataclasses.dataclass
class Manifest:
    policies: list[NetworkPolicy] = dataclasses.field(default_factory=list)
    objects: dict[str, dict] = dataclasses.field(default_factory=dict)  # policy key -> the object as given
    # policy key -> the object as given, as canonical JSON (instead of objects: see parse_manifest)
    raws: dict[str, str] = dataclasses.field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    services: dict[str, Service] = dataclasses.field(default_factory=dict)  # by key


def load_documents(text: str, source: str = "<stdin>") -> list[dict]:
    with gc_paused():
        return _load_documents(text, source)


def _load_documents(text: str, source: str) -> list[dict]:
    docs = _json_documents(text)
    if docs is None and _FAST:
        docs = _plain_yaml_documents(text)
    try:
        if docs is None:
            docs = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidPolicy(f"error parsing {source}: error converting YAML to JSON: {_yaml_reason(exc)}") from None
    return list(_expand_lists(docs))


def _expand_lists(docs: Iterable) -> Iterator:
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") in ("List", "NetworkPolicyList", "ServiceList"):
            yield from (i for i in doc.get("items") or [] if i is not None)
        else:
            yield doc


def _json_documents(text: str) -> Optional[list]:
    """JSON is YAML, and json.loads is ~20x faster than even libyaml's loader on a 20,000-rule
    manifest; anything that is not one JSON value goes to the YAML parser."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return [doc] if doc is not None else []


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                         "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})


class _NotPlain(Exception):
    """The stream uses more of YAML than _plain_yaml_documents builds itself."""


def _plain_yaml_documents(text: str) -> Optional[list]:
    """What ``[d for d in yaml.load_all(text, Loader=CSafeLoader) if d is not None]`` returns,
    built straight from libyaml's events, for streams without anchors, aliases, explicit tags,
    complex keys, merge keys or scalars other than strings, numbers, booleans and nulls (the
    manifests people write).  PyYAML composes a node tree (a Python resolver call and a node per
    scalar) and then walks it again with its constructor: 3x the time of building the values
    here.  Scalars are resolved and constructed by the loader's own resolver and constructors,
    once per distinct (text, implicit) pair, so the values are the same.  Anything else, or any
    error, returns None: the caller then runs PyYAML's loader, whose result or error stands."""
    loader = _LOADER(text)
    try:
        return [d for d in _build_documents(loader) if d is not None]
    except Exception:  # noqa: BLE001 -- _NotPlain, or a YAML error the full loader will report
        return None
    finally:
        loader.dispose()


class _Restart(Exception):
    """The streamed documents need PyYAML's loader after all (see _streamed_documents)."""


def _streamed_documents(text: str) -> Iterator:
    """What _load_documents returns, one document at a time as libyaml's events complete it, so
    a document can be done with (and freed) before the next is built.  Raises _Restart where
    _plain_yaml_documents would return None (the caller then starts again with _load_documents,
    whose result or error stands)."""
    loader = _LOADER(text)
    try:
        roots = _build_documents(loader)
        while True:
            try:
                doc = next(roots)
            except StopIteration:
                return
            except Exception:  # noqa: BLE001 -- _NotPlain, or a YAML error the full loader will report
                raise _Restart from None
            if doc is not None:
                yield from _expand_lists((doc,))
            doc = None
    finally:
        loader.dispose()


def _build_documents(loader) -> Iterator:
    """The documents' roots, each as soon as it is complete."""
    get_event = loader.get_event
    scalars: dict = {}  # (text, implicit) -> value
    frame = container = None
    stack: list = []    # [container, key or _KEY] of each open mapping/sequence, innermost last
    get_event()  # StreamStartEvent
    while True:
        event = get_event()
        kind = type(event)
        opens = False
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotPlain
            memo = (event.value, event.implicit)
            value = scalars.get(memo, _KEY)
            if value is _KEY:
                value = scalars[memo] = _scalar(loader, event.value, event.implicit)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotPlain
            value = {} if kind is MappingStartEvent else []
            opens = True
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            done = stack.pop()
            if not stack:  # a document's root
                root, done, frame, container, value = done[0], None, None, None, None
                yield root
                root = None
            continue
        elif kind is DocumentStartEvent or kind is DocumentEndEvent:
            continue
        elif kind is StreamEndEvent:
            return
        else:  # AliasEvent
            raise _NotPlain
        if not stack:
            if not opens:
                yield value  # a scalar document's root
        else:
            frame = stack[-1]
            container = frame[0]
            if type(container) is list:
                container.append(value)
            elif frame[1] is _KEY:
                if opens:
                    raise _NotPlain  # a mapping or sequence as a key
                frame[1] = value
            else:
                container[frame[1]] = value
                frame[1] = _KEY
        if opens:
            stack.append([value, _KEY])


class _Key:
    """A mapping awaiting its next key (and the 'not seen' marker of the scalar memo)."""


_KEY = _Key()


def _scalar(loader, text: str, implicit: tuple):
    tag = loader.resolve(ScalarNode, text, implicit)
    if tag not in _PLAIN_TAGS:
        raise _NotPlain  # timestamps, merge keys (<<), =, ...
    return loader.yaml_constructors[tag](loader, ScalarNode(tag, text))


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"yaml: line {mark.line + 1}: {problem}" if mark is not None else f"yaml: {problem}"


def parse_manifest(text: str, source: str = "<stdin>", default_namespace: str = "default",
                   keep_objects: bool = True) -> Manifest:
    """``keep_objects``: the policies' objects as dicts in ``objects``; else as canonical JSON in
    ``raws``, and a YAML stream is read a document at a time (each document's dicts go before
    the next is built: a 10,000-rule policy is ~5 MiB of them)."""
    with gc_paused():
        if keep_objects or not _FAST or text.lstrip()[:1] in ("{", "["):
            return _parse_manifest(_load_documents(text, source), source, default_namespace, keep_objects)
        try:
            return _parse_manifest(_streamed_documents(text), source, default_namespace, keep_objects)
        except _Restart:
            return _parse_manifest(_load_documents(text, source), source, default_namespace, keep_objects)


def _parse_manifest(docs: Iterable, source: str, default_namespace: str, keep_objects: bool) -> Manifest:
    manifest = Manifest()
    error: Optional[InvalidPolicy] = None
    for doc in docs:
        if error is not None:
            continue  # the rest of a stream is read still: a YAML error in it is the one reported
        try:
            _add_document(manifest, doc, source, default_namespace, keep_objects)
        except InvalidPolicy as exc:
            error = exc
        doc = None
    if error is not None:
        raise error
    return manifest


def _add_document(manifest: Manifest, doc, source: str, default_namespace: str, keep_objects: bool) -> None:
    if isinstance(doc, dict) and doc.get("kind") == "Namespace" and doc.get("apiVersion") == "v1":
        meta = doc.get("metadata") or {}
        if not meta.get("name"):
            raise InvalidPolicy('Namespace "" is invalid: metadata.name: Required value: name or '
                                'generateName is required')
        manifest.namespaces[meta["name"]] = dict(meta.get("labels") or {})
        return
    if isinstance(doc, dict) and doc.get("kind") == "Service" and doc.get("apiVersion") == "v1":
        svc = service_from_object(doc, default_namespace)
        if svc.key in manifest.services:
            raise InvalidPolicy(f"{source}: Service {svc.key} appears twice")
        manifest.services[svc.key] = svc
        return
    policy = parse_policy(doc, default_namespace)
    if policy.key in manifest.objects or policy.key in manifest.raws:
        raise InvalidPolicy(f"{source}: NetworkPolicy {policy.key} appears twice")
    manifest.policies.append(policy)
    if keep_objects:
        manifest.objects[policy.key] = doc
    else:
        manifest.raws[policy.key] = canonical_json(doc)


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def canonical_json(obj) -> str:
    """An object as the agent stores it: ``json.dumps(obj, sort_keys=True, separators=(",", ":"))``,
    with a long list encoded an item at a time (the encoder's pieces of a 10,000-rule policy,
    all held until they are joined, are ~2 MiB: the apply's peak memory)."""
    if type(obj) is dict and all(type(k) is str for k in obj):
        return "{" + ",".join([f"{_dumps(k)}:{canonical_json(obj[k])}" for k in sorted(obj)]) + "}"
    if type(obj) is list and len(obj) > 64:
        return "[" + ",".join([_dumps(item) for item in obj]) + "]"
    return _dumps(obj)
