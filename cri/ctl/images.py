"""pull (with progress), images, rmi, imagefsinfo."""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

import grpc
from cri_api.v1 import api_pb2 as api

from . import output


def add_parsers(sub) -> None:
    p = sub.add_parser("pull", help="pull an image")
    p.add_argument("image")
    p.add_argument("--creds", default="", help="USERNAME[:PASSWORD]")
    p.add_argument("--auth", default="", help="base64 user:password")
    p.add_argument("--username", "-u", default="")
    p.add_argument("--pod-config", "-p", default="")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=pull)
    p = sub.add_parser("images", aliases=["image", "img"], help="list images")
    p.add_argument("filter", nargs="?", default="")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--digests", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--output", "-o", default="table", choices=["table", "json", "yaml"])
    p.set_defaults(func=images)
    p = sub.add_parser("rmi", help="remove one or more images")
    p.add_argument("refs", nargs="*")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--prune", "-q", action="store_true", help="remove images not used by any container")
    p.set_defaults(func=rmi)
    p = sub.add_parser("imagefsinfo", help="image filesystem usage")
    p.add_argument("--output", "-o", default="json", choices=["json", "yaml", "table"])
    p.set_defaults(func=imagefsinfo)


def _auth(opts) -> api.AuthConfig | None:
    if opts.creds:
        user, _, password = opts.creds.partition(":")
        return api.AuthConfig(username=user, password=password)
    if opts.auth:
        return api.AuthConfig(auth=opts.auth)
    if opts.username:
        import getpass
        return api.AuthConfig(username=opts.username, password=getpass.getpass("Password: "))
    return None


def pull(c, opts) -> int:
    req = api.PullImageRequest(image=api.ImageSpec(image=opts.image))
    auth = _auth(opts)
    if auth is not None:
        req.auth.CopyFrom(auth)
    if opts.pod_config:
        from .configs import pod_config
        req.sandbox_config.CopyFrom(pod_config(opts.pod_config))
    ref = _pull_with_progress(c, req, show=not opts.no_progress and interactive())
    print(f"Image is up to date for {ref}")
    return 0


def ensure_image(c, image: str, pod_config) -> None:
    st = c.call(c.images.ImageStatus, api.ImageStatusRequest(image=api.ImageSpec(image=image)))
    if st.image.id:
        return
    req = api.PullImageRequest(image=api.ImageSpec(image=image), sandbox_config=pod_config)
    _pull_with_progress(c, req, show=interactive())


def interactive(stdout: TextIO | None = None, stderr: TextIO | None = None) -> bool:
    """Progress only for a person at a terminal: stderr (where it is drawn) and stdout both
    TTYs.  Piped or redirected, either way (``ref=$(podwire-ctl pull x)``, ``| tee``, a log
    file), the output is the result line alone."""
    return all(_isatty(s) for s in (stdout or sys.stdout, stderr or sys.stderr))


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):     # no such method, or closed
        return False


def _pull_with_progress(c, req, show: bool, out: TextIO | None = None, interval: float = 0.25) -> str:
    """PullImage is unary: the runtime reports nothing until the image is complete, so
    progress is observed from outside.  While the pull runs: the elapsed time and how much
    the image filesystem grew (ImageFsInfo's used bytes: each layer counts once it is
    downloaded and unpacked, at its unpacked size -- so it moves in steps, and another
    pull or a removal at the same time moves it too).  At the end: the image's layers and
    size as the runtime records them (ImageStatus: the registry's compressed size of the
    config and layers; the layers from the image config's rootfs)."""
    out = out or sys.stderr
    done = threading.Event()
    start = time.monotonic()
    ticker = None
    if show:
        ticker = threading.Thread(target=_progress, args=(c, req.image.image, done, out, interval), daemon=True)
        ticker.start()
    try:
        ref = c.call(c.images.PullImage, req, timeout=24 * 3600).image_ref
    finally:
        done.set()
        if ticker is not None:
            ticker.join(2)
            out.write("\r\033[K")
            out.flush()
    if show:
        out.write(_summary(c, req.image.image, ref, time.monotonic() - start) + "\n")
        out.flush()
    return ref


def _used_bytes(c) -> int:
    try:
        fs = c.call(c.images.ImageFsInfo, api.ImageFsInfoRequest(), timeout=2)
        return sum(u.used_bytes.value for u in fs.image_filesystems)
    except grpc.RpcError:
        return 0


def _progress(c, image: str, done: threading.Event, out: TextIO, interval: float) -> None:
    start, base = time.monotonic(), _used_bytes(c)
    spin = "|/-\\"
    i = 0
    while not done.wait(interval):
        got = max(0, _used_bytes(c) - base)
        if done.is_set():
            return      # the pull finished while we asked: do not draw over the cleared line
        out.write(f"\r{spin[i % 4]} pulling {image}: {output.size(got)} stored "
                  f"({time.monotonic() - start:.1f}s)\033[K")
        out.flush()
        i += 1


def _summary(c, image: str, ref: str, seconds: float) -> str:
    """The closing line, e.g. ``pulled busybox: 1 layer, 2.2MB in 0.8s``, from ImageStatus
    (verbose, for the layers)."""
    try:
        st = c.call(c.images.ImageStatus, api.ImageStatusRequest(image=api.ImageSpec(image=ref), verbose=True),
                    timeout=10)
    except grpc.RpcError:
        return f"pulled {image} in {seconds:.1f}s"
    layers = _layer_count(st.info.get("info", ""))
    what = [] if layers is None else [f"{layers} layer{'' if layers == 1 else 's'}"]
    if st.image.size:
        what.append(output.size(st.image.size))
    return f"pulled {image}: {', '.join(what) or ref} in {seconds:.1f}s"


def _layer_count(info: str) -> int | None:
    """The image config's ``rootfs.diff_ids`` in a verbose ImageStatus's info (podwire's
    and containerd's both carry the config as ``imageSpec``); None if absent."""
    try:
        diff_ids = json.loads(info)["imageSpec"]["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        return None
    return len(diff_ids) if isinstance(diff_ids, list) else None


def _split_tag(tag: str) -> tuple[str, str]:
    repo, _, t = tag.rpartition(":")
    if "/" in t or not repo:
        return tag, "<none>"
    return repo, t


def images(c, opts) -> int:
    f = api.ImageFilter(image=api.ImageSpec(image=opts.filter)) if opts.filter else None
    items = c.call(c.images.ListImages, api.ListImagesRequest(filter=f)).images
    if opts.quiet:
        for im in items:
            print(im.id)
        return 0
    if opts.output != "table":
        output.dump({"images": [output.to_obj(im) for im in items]}, opts.output)
        return 0
    header = ["IMAGE", "TAG"] + (["DIGEST"] if opts.digests else []) + ["IMAGE ID", "SIZE"]
    rows = []
    for im in items:
        digest = im.repo_digests[0].rpartition("@")[2] if im.repo_digests else "<none>"
        image_id = im.id if opts.no_trunc else im.id.removeprefix("sha256:")[:13]
        for tag in (im.repo_tags or ["<none>:<none>"]):
            repo, t = _split_tag(tag)
            if repo == "<none>" and im.repo_digests:
                repo = im.repo_digests[0].partition("@")[0]
            d = [digest if opts.no_trunc else digest.removeprefix("sha256:")[:13]] if opts.digests else []
            rows.append([repo, t, *d, image_id, output.size(im.size)])
    output.table(header, rows)
    return 0


def rmi(c, opts) -> int:
    refs = list(opts.refs)
    if opts.all or opts.prune:
        listed = c.call(c.images.ListImages, api.ListImagesRequest()).images
        refs = [im.id for im in listed]
        if opts.prune:
            used = {x.image_id for x in c.call(c.runtime.ListContainers, api.ListContainersRequest()).containers}
            used |= {x.image_ref for x in c.call(c.runtime.ListContainers, api.ListContainersRequest()).containers}
            refs = [r for r in refs if r not in used]
    if not refs:
        print("podwire-ctl rmi: give image references or --all/--prune", file=sys.stderr)
        return 1
    rc = 0
    for ref in refs:
        st = c.call(c.images.ImageStatus, api.ImageStatusRequest(image=api.ImageSpec(image=ref)))
        if not st.image.id:
            print(f"no such image {ref}", file=sys.stderr)
            rc = 1
            continue
        c.call(c.images.RemoveImage, api.RemoveImageRequest(image=api.ImageSpec(image=st.image.id)))
        for tag in st.image.repo_tags or [st.image.id]:
            print(f"Deleted: {tag}")
    return rc


def imagefsinfo(c, opts) -> int:
    resp = c.call(c.images.ImageFsInfo, api.ImageFsInfoRequest())
    if opts.output == "table":
        rows = [[u.fs_id.mountpoint, output.size(u.used_bytes.value), str(u.inodes_used.value)]
                for u in list(resp.image_filesystems) + list(resp.container_filesystems)]
        output.table(["MOUNTPOINT", "USED", "INODES"], rows)
        return 0
    output.dump({"status": output.to_obj(resp)}, opts.output)
    return 0
