"""The result cache: byte-compatible with libcni's cniCacheV1 entries."""
from __future__ import annotations

import json
import os
import stat

import pytest

from cni.errors import CniError, Code
from cni.libcni import cache
from cni.libcni.cache import CachedAttachment

ENTRY = CachedAttachment(
    container_id="abc123", ifname="eth0", network="net", netns="/run/netns/x",
    cni_args=[("K8S_POD_NAME", "web&<1>")],
    capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
    config=b'{"name":"net"}',
    result={"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24"}],
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}]})

# What Go's json.Marshal(&cachedInfo{...}) writes for ENTRY: struct field order,
# []byte as base64, map keys sorted, &<> escaped as \u00XX.
GO_BYTES = (
    b'{"kind":"cniCacheV1","containerId":"abc123","config":"eyJuYW1lIjoibmV0In0=",'
    b'"ifName":"eth0","networkName":"net","netns":"/run/netns/x",'
    b'"cniArgs":[["K8S_POD_NAME","web\\u0026\\u003c1\\u003e"]],'
    b'"capabilityArgs":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},'
    b'"result":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],'
    b'"ips":[{"address":"10.1.2.3/24"}]}}')


def test_encode_matches_go_bytes():
    assert cache.encode(ENTRY) == GO_BYTES


def test_encode_omits_empty_fields_like_omitempty():
    bare = CachedAttachment("c", "eth0", "net", config=b"{}")
    assert cache.encode(bare) == (b'{"kind":"cniCacheV1","containerId":"c","config":"e30=",'
                                  b'"ifName":"eth0","networkName":"net"}')


def test_write_read_roundtrip_mode_and_name(tmp_path):
    cache_dir = str(tmp_path / "results")
    path = cache.write(cache_dir, ENTRY)
    assert path == os.path.join(cache_dir, "net-abc123-eth0")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    assert os.listdir(cache_dir) == ["net-abc123-eth0"]        # no temp file left
    assert cache.read(cache_dir, "net", "abc123", "eth0") == ENTRY


def test_read_missing_is_none(tmp_path):
    assert cache.read(str(tmp_path), "net", "abc123", "eth0") is None


def test_read_go_written_entry(tmp_path):
    (tmp_path / "net-abc123-eth0").write_bytes(GO_BYTES)
    assert cache.read(str(tmp_path), "net", "abc123", "eth0") == ENTRY


def test_read_legacy_result_only_entry(tmp_path):
    """Before cniCacheV1 libcni cached just the result."""
    (tmp_path / "net-abc123-eth0").write_text(json.dumps(ENTRY.result))
    entry = cache.read(str(tmp_path), "net", "abc123", "eth0")
    assert entry.result == ENTRY.result
    assert (entry.network, entry.container_id, entry.ifname) == ("net", "abc123", "eth0")


@pytest.mark.parametrize("content", [b"garbage", b"[]", b'{"kind":"cniCacheV9"}',
                                     b'{"kind":"cniCacheV1","config":"!!notbase64"}',
                                     b'{"kind":"cniCacheV1","result":[1]}'])
def test_corrupt_entry_is_a_decode_error(tmp_path, content):
    (tmp_path / "net-abc123-eth0").write_bytes(content)
    with pytest.raises(CniError) as err:
        cache.read(str(tmp_path), "net", "abc123", "eth0")
    assert err.value.code == Code.DECODING_FAILURE


def test_list_entries_skips_junk_and_filters_by_container(tmp_path):
    cache.write(str(tmp_path), ENTRY)
    cache.write(str(tmp_path), CachedAttachment("other", "eth1", "net2", config=b"{}"))
    (tmp_path / "net-junk-eth0").write_text("garbage")
    (tmp_path / "net-legacy-eth0").write_text(json.dumps(ENTRY.result))
    (tmp_path / ".tmp-half").write_text("{")
    assert [e.container_id for e in cache.list_entries(str(tmp_path))] == ["abc123", "other"]
    assert [e.container_id for e in cache.list_entries(str(tmp_path), "other")] == ["other"]
    assert cache.list_entries(str(tmp_path / "missing")) == []


def test_entry_path_needs_all_parts(tmp_path):
    with pytest.raises(CniError):
        cache.entry_path(str(tmp_path), "net", "", "eth0")
