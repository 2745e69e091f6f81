"""Image volumes (KEP-4639) end to end: a pulled image mounted read-only into a container,
against the real registry, runc and conmon, over the shim's socket."""
from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

import crihelpers as h
from conftest import needs_root

pytestmark = needs_root
VOL = "/mnt/image-volume"


def _pull(shim, ref: str) -> str:
    return shim.img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=ref)), timeout=120).image_ref


def _pod(shim, tmp_path) -> tuple[str, api.PodSandboxConfig]:
    cfg = h.pod_config(log_directory=str(tmp_path / "logs"))
    return shim.rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id, cfg


def _volume(image: str, sub_path: str = "", path: str = VOL, readonly: bool = True) -> api.Mount:
    # As the kubelet sends it: no host path, the image by the ref PullImage returned.
    return api.Mount(container_path=path, readonly=readonly, image=api.ImageSpec(image=image),
                     image_sub_path=sub_path)


def _create(shim, pod_id, pod_cfg, image: str, *mounts: api.Mount, name: str = "") -> str:
    name = name or "c" + str(time.monotonic_ns())[-6:]
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
                              command=["sleep", "3600"], mounts=list(mounts))
    return shim.rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg), timeout=120).container_id


def _run(shim, cid: str, *cmd: str) -> api.ExecSyncResponse:
    return shim.rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10))


def _remove(shim, cid: str) -> None:
    shim.rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0))
    shim.rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))


def _wire_field(data: bytes, number: int) -> bytes | None:
    """The last length-delimited field `number` in a serialized message: reads ImageSpec.image_ref
    (field 20) whether or not the installed stubs know it by name."""
    i, found = 0, None
    while i < len(data):
        key, i = _varint(data, i)
        kind = key & 7
        if kind == 0:
            _, i = _varint(data, i)
        elif kind == 2:
            size, i = _varint(data, i)
            if key >> 3 == number:
                found = data[i:i + size]
            i += size
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
        else:
            raise ValueError(f"wire type {kind}")
    return found


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _volume_mounts_of(root: str) -> list[str]:
    return [m for m in h.mounts_under(root) if "/image-volumes/" in m]


def test_content_read_only_executable_and_digest(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    image_ref = _pull(shim, test_images.volume)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cid = _create(shim, pod_id, pod_cfg, test_images.busybox, _volume(image_ref))
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))

    assert _run(shim, cid, "cat", VOL + "/data/hello.txt").stdout == b"hello from an image\n"
    res = _run(shim, cid, "touch", VOL + "/written")
    assert res.exit_code != 0 and b"Read-only file system" in res.stderr      # EROFS
    res = _run(shim, cid, VOL + "/bin/echo", "ran")                            # not noexec
    assert (res.exit_code, res.stdout) == (0, b"ran\n")
    assert b" ro," in _run(shim, cid, "grep", VOL, "/proc/mounts").stdout

    st = shim.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status
    [m] = [m for m in st.mounts if m.container_path == VOL]
    assert m.image.image == image_ref and m.readonly
    assert _wire_field(m.image.SerializeToString(), 20) == image_ref.encode()   # ImageSpec.image_ref

    root = shim.cfg.state_dir
    assert len(_volume_mounts_of(os.path.dirname(root))) == 1
    _remove(shim, cid)
    assert _volume_mounts_of(os.path.dirname(root)) == []


@pytest.mark.parametrize("sub_path, path, expect", [
    ("data", "hello.txt", b"hello from an image\n"),
    ("data/sub/", "deep.txt", b"deep\n"),
    ("links/in/sub", "deep.txt", b"deep\n"),          # an absolute link, taken inside the image
    ("links/rel", "hello.txt", b"hello from an image\n"),
    ("data/hello.txt", "", b"hello from an image\n"),  # a file onto a file
])
def test_sub_path(shim, tmp_path, test_images, sub_path, path, expect):
    _pull(shim, test_images.busybox)
    image_ref = _pull(shim, test_images.volume)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cid = _create(shim, pod_id, pod_cfg, test_images.busybox, _volume(image_ref, sub_path))
    shim.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    assert _run(shim, cid, "cat", f"{VOL}/{path}" if path else VOL).stdout == expect
    assert _run(shim, cid, "ls", VOL + "/bin").exit_code != 0        # not the whole image
    _remove(shim, cid)


def test_refused_requests_leave_nothing(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    image_ref = _pull(shim, test_images.volume)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cases = [
        (_volume(image_ref, "links/up"), grpc.StatusCode.INVALID_ARGUMENT, "leads out of the image"),
        (_volume(image_ref, "links/up/etc"), grpc.StatusCode.INVALID_ARGUMENT, "leads out"),
        (_volume(image_ref, "../etc"), grpc.StatusCode.INVALID_ARGUMENT, "'..'"),
        (_volume(image_ref, "data/../../etc"), grpc.StatusCode.INVALID_ARGUMENT, "'..'"),
        (_volume(image_ref, "/data"), grpc.StatusCode.INVALID_ARGUMENT, "must be relative"),
        (_volume(image_ref, "links/loop"), grpc.StatusCode.INVALID_ARGUMENT, "too many symlinks"),
        (_volume(image_ref, "not-existing"), grpc.StatusCode.NOT_FOUND, "does not exist"),
        (_volume(image_ref, readonly=False), grpc.StatusCode.INVALID_ARGUMENT, "read-only"),
        (_volume("podwire-test/never-pulled:1"), grpc.StatusCode.NOT_FOUND, "pull it first"),
    ]
    for n, (mount, code, words) in enumerate(cases):
        with pytest.raises(grpc.RpcError) as err:
            # A good volume first: the refused one must undo it too.
            _create(shim, pod_id, pod_cfg, test_images.busybox, _volume(image_ref, path="/ok"), mount,
                    name=f"refused{n}")
        assert err.value.code() == code and words in err.value.details(), (mount, err.value.details())
    assert _volume_mounts_of(os.path.dirname(shim.cfg.state_dir)) == []
    assert shim.rt.ListContainers(api.ListContainersRequest()).containers == []
    # Nothing held: the image can go.
    shim.img.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=image_ref)))


def test_image_in_use_cannot_be_removed(shim, tmp_path, test_images):
    _pull(shim, test_images.busybox)
    image_ref = _pull(shim, test_images.volume)
    pod_id, pod_cfg = _pod(shim, tmp_path)
    cid = _create(shim, pod_id, pod_cfg, test_images.busybox, _volume(image_ref), name="reader")
    for name in (test_images.volume, image_ref):
        with pytest.raises(grpc.RpcError) as err:
            shim.img.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=name)))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert cid in err.value.details() and "reader" in err.value.details()
    assert shim.img.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image=image_ref))).image.id
    # The container's own (rootfs) image may go, as in containerd: it holds its layers.
    shim.img.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=test_images.busybox)))
    _remove(shim, cid)
    shim.img.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=image_ref)))
    assert not shim.img.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image=image_ref))).HasField("image")


def test_shim_killed_and_restarted_then_removed(shim_factory, tmp_path, test_images):
    first = shim_factory(process=True)
    _pull(first, test_images.busybox)
    image_ref = _pull(first, test_images.volume)
    pod_id, pod_cfg = _pod(first, tmp_path)
    cid = _create(first, pod_id, pod_cfg, test_images.busybox, _volume(image_ref, "data"))
    first.rt.StartContainer(api.StartContainerRequest(container_id=cid))
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()

    second = shim_factory(process=True)
    assert _run(second, cid, "cat", VOL + "/hello.txt").stdout == b"hello from an image\n"
    st = second.rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status
    assert _wire_field(st.mounts[0].image.SerializeToString(), 20) == image_ref.encode()
    with pytest.raises(grpc.RpcError) as err:
        second.img.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=image_ref)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    _remove(second, cid)
    assert _volume_mounts_of(os.path.dirname(second.cfg.state_dir)) == []
