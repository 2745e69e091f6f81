"""Manifests load to the same values through every YAML path netpol/manifest.py has.

The paths: PyYAML's pure SafeLoader (no libyaml), its CSafeLoader (libyaml), and the event loop
over libyaml that manifest.py uses for plain YAML (anchors, tags and the like go to CSafeLoader).
Values are compared with their types (1, 1.0 and True are equal in Python, not here).
"""
from __future__ import annotations

import gc
import json
import math

import pytest
import yaml

from netpol import manifest as M
from netpol.errors import InvalidPolicy

needs_libyaml = pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML without libyaml")

POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: team-a
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - from: [{{ipBlock: {{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}}}]
    ports: [{{port: 80}}, {{port: 8080, protocol: TCP}}, {{port: http}}]
"""

# Plain YAML: the event loop builds these itself.
PLAIN = {
    "one policy": POLICY.format(name="web"),
    "multi-document": "---\n" + POLICY.format(name="a") + "---\n" + POLICY.format(name="b") + "...\n",
    "empty documents": "---\n---\n" + POLICY.format(name="a") + "---\n# only a comment\n---\n",
    "nothing at all": "",
    "only comments": "# nothing here\n\n",
    "null documents": "--- ~\n--- null\n---\n",
    "List kind": "apiVersion: v1\nkind: List\nitems:\n- " + POLICY.format(name="a").replace("\n", "\n  ")
                 + "\n- null\n",
    "NetworkPolicyList": "kind: NetworkPolicyList\napiVersion: networking.k8s.io/v1\nitems: []\n",
    "quoted numbers": "a: '80'\nb: \"0x1F\"\nc: '1e3'\nd: 'true'\ne: 'null'\nf: \"\"\ng: ''\n",
    "YAML 1.1 scalars": ("ints: [0x1F, 0o17, 017, 0b101, 1_000, +12, -0, 190:20:30]\n"
                         "floats: [1.5, 1e3, 6.8523015e+5, .inf, -.Inf, .NaN, 1_000.5, 190:20:30.15]\n"
                         "bools: [yes, No, on, OFF, true, False, y, n]\n"
                         "nulls: [~, null, Null, NULL, ]\n"),
    "long names": "metadata:\n  name: " + "a" * 253 + "\n  labels: {" + "k" * 63 + ": " + "v" * 63 + "}\n"
                  "long: " + "x" * 70000 + "\n",
    "block scalars": "a: |\n  line one\n  line two\nb: >-\n  folded\n  text\nc: |+\n  kept\n\n",
    "flow and block mixed": "a: [1, {b: [2, 3]}, [], {}]\nb:\n- - nested\n  - [x]\n- {k: v}\n",
    "duplicate keys": "a: 1\nb: 2\na: 3\n",
    "scalar keys of many types": "1: int\n1.5: float\ntrue: bool\n~: null\n'1': str\n",
    "unicode and escapes": "name: \"caf\\u00e9 \\t tab\"\nplain: café ✓\nsingle: 'it''s'\n",
    "crlf": "a: 1\r\nb: [x, y]\r\n",
    "bom": "\ufeffa: 1\n",
    "document end markers": "a: 1\n...\n---\nb: 2\n...\n",
    "a scalar document": "--- just text\n--- 42\n",
    "a sequence document": "- 1\n- two\n",
    "directives": "%YAML 1.1\n---\na: 1\n",
    "indentation styles": "a:\n    b:\n        - c\n        -   d: e\n            f: g\n",
}

# YAML beyond the plain subset: the event loop declines it and CSafeLoader loads it.
UNUSUAL = {
    "anchors and aliases": "base: &b {app: web}\nsel: *b\nlist: [*b, *b]\n",
    "merge key": "base: &b {a: 1, b: 2}\nmerged:\n  <<: *b\n  b: 3\n",
    "explicit tags": "a: !!str 80\nb: !!int '42'\nc: !!float 1\nd: ! 12\n",
    "timestamps": "a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00\n",
    "binary": "a: !!binary aGVsbG8=\n",
    "complex key": "? [a, b]\n: c\n",
    "mapping key": "? {a: 1}\n: c\n",
    "set": "a: !!set {x, y}\n",
    "omap": "a: !!omap [{x: 1}, {y: 2}]\n",
    "value key": "=: x\n",
    "anchored scalar": "a: &x 1\nb: *x\n",
}

BAD = {
    "unclosed flow": "a: [1, 2\n",
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "tab indentation": "a:\n\tb: 1\n",
    "undefined alias": "a: *nope\n",
    "unknown tag": "a: !custom 1\n",
    "unhashable key in flow": "{[a]: 1}: x\n",
    "unknown directive": "%FOO bar\n---\na: 1\n",
    "stray document end": "a: 1\n--- ]\n",
}


def typed(value):
    """The value with every scalar's type spelled out (and NaN comparable)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, set):
        return ("set", sorted(map(repr, value)))
    return (type(value).__name__, value)


def load(text: str, loader) -> list:
    return [d for d in yaml.load_all(text, Loader=loader) if d is not None]


def outcome(fn, text):
    try:
        return "ok", typed(fn(text))
    except yaml.YAMLError as exc:
        return "error", M._yaml_reason(exc)
    except InvalidPolicy as exc:
        return "error", str(exc)


@needs_libyaml
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_yaml_same_through_every_loader(name):
    text = PLAIN[name]
    pure, libyaml = load(text, yaml.SafeLoader), load(text, yaml.CSafeLoader)
    fast = M._plain_yaml_documents(text)
    assert fast is not None, "the event loop declined plain YAML"
    assert typed(fast) == typed(libyaml) == typed(pure)


@needs_libyaml
@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_yaml_goes_to_pyyaml(name):
    text = UNUSUAL[name]
    assert M._plain_yaml_documents(text) is None
    assert outcome(lambda t: load(t, yaml.CSafeLoader), text) == outcome(lambda t: load(t, yaml.SafeLoader), text)
    got = outcome(M.load_documents, text)
    want = outcome(lambda t: load(t, yaml.CSafeLoader), text)
    assert got[0] == want[0]
    if got[0] == "ok":
        assert got == want


def test_aliases_share_objects_as_pyyaml_does():
    docs = M.load_documents(UNUSUAL["anchors and aliases"])
    assert docs[0]["sel"] is docs[0]["base"]


@needs_libyaml
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_yaml_same_error_as_before(name):
    """load_documents reports what CSafeLoader reports (the event loop never answers for errors)."""
    text = BAD[name]
    assert M._plain_yaml_documents(text) is None or name == "unknown directive"
    want = outcome(lambda t: load(t, yaml.CSafeLoader), text)
    got = outcome(M.load_documents, text)
    if want[0] == "error":
        assert got == ("error", f"error parsing <stdin>: error converting YAML to JSON: {want[1]}")
    else:
        assert got[0] == "ok"


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_load_documents_without_libyaml(monkeypatch, name):
    """Where PyYAML has no libyaml, SafeLoader loads everything, to the same documents."""
    text = PLAIN[name]
    want = outcome(M.load_documents, text)
    monkeypatch.setattr(M, "_LOADER", yaml.SafeLoader)
    monkeypatch.setattr(M, "_FAST", False)
    assert outcome(M.load_documents, text) == want


def test_json_and_yaml_manifest_same_policies():
    text = "---\n" + POLICY.format(name="a") + "---\n" + POLICY.format(name="b")
    as_json = json.dumps({"kind": "List", "items": load(text, yaml.SafeLoader)})
    from_yaml, from_json = M.parse_manifest(text), M.parse_manifest(as_json)
    assert from_yaml.policies == from_json.policies
    assert from_yaml.objects == from_json.objects
    assert [p.key for p in from_yaml.policies] == ["team-a/a", "team-a/b"]


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_paused_nests_and_restores(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with M.gc_paused():
            assert not gc.isenabled()
            with M.gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(InvalidPolicy):
            M.parse_manifest("a: [1\n")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def manifest_outcome(text: str, keep_objects: bool):
    try:
        m = M.parse_manifest(text, keep_objects=keep_objects)
    except InvalidPolicy as exc:
        return "error", str(exc)
    raws = {k: M.canonical_json(o) for k, o in m.objects.items()} if keep_objects else m.raws
    return "ok", m.policies, raws, m.namespaces, m.services


INVALID = POLICY.format(name="bad").replace("port: 80}", "port: 0}")
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {x: y}}\n"
STREAMS = {
    **{f"plain: {k}": v for k, v in PLAIN.items() if k in ("one policy", "multi-document", "empty documents",
                                                          "nothing at all", "null documents", "List kind",
                                                          "NetworkPolicyList")},
    "namespace and policies": "---\n" + NAMESPACE + "---\n" + POLICY.format(name="a") + "---\n"
                              + POLICY.format(name="b"),
    "an invalid policy, then valid YAML": "---\n" + INVALID + "---\n" + POLICY.format(name="b"),
    "an invalid policy, then a YAML error": "---\n" + INVALID + "---\na: [1, 2\n",
    "a valid policy, then a YAML error": "---\n" + POLICY.format(name="a") + "---\na: *nope\n",
    "a policy twice": "---\n" + POLICY.format(name="a") + "---\n" + POLICY.format(name="a"),
    "an invalid policy, then anchors": "---\n" + INVALID + "---\nbase: &b {app: web}\nsel: *b\n",
    "a policy, then one with anchors": "---\n" + POLICY.format(name="a") + "---\n"
                                       + POLICY.format(name="b").replace("{app: web}", "&s {app: web}"),
    "a scalar document": "--- just text\n---\n" + POLICY.format(name="a"),
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_manifest_read_a_document_at_a_time_same_outcome(name):
    """The agent's apply reads YAML a document at a time (keep_objects=False): the same policies,
    the same stored JSON, and the same error (a YAML error later in the stream still wins over an
    invalid policy before it, as when the whole stream is loaded first)."""
    text = STREAMS[name]
    assert manifest_outcome(text, keep_objects=False) == manifest_outcome(text, keep_objects=True)

