"""Image records over the content store: lookups, tags, removal, garbage collection.

Readers never lock: the whole record set is an immutable :class:`State` that writers
replace (copy on write) under ``_lock``, so List/Status run while a pull downloads; a
pull holds the lock only to record what it has finished.

Content stays alive while something refers to it: an image record, a holder (a
container using the layers, see :meth:`ImageStore.hold`) or a lease (a pull in
progress).  Everything else is garbage, collected whenever records change.

Records live in ``<root>/images.json``, rewritten atomically on every change.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import threading
from typing import Iterator, Mapping, Optional

from . import reference
from .content import Content
from .image import Image
from ..store import atomic
from ..errors import CriError, not_found

log = logging.getLogger("podwire.cri.images")

RECORDS = "images.json"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Layer:
    size: int       # bytes of file content
    inodes: int


class State:
    """An immutable view of all records, with the lookups readers need."""

    def __init__(self, images: Mapping[str, Image], layers: Mapping[str, Layer],
                 holders: Mapping[str, tuple]) -> None:
        self.images = dict(images)
        self.layers = dict(layers)
        self.holders = dict(holders)
        self._by_ref = {r: img.id for img in self.images.values()
                        for r in img.repo_tags + img.repo_digests}

    def replace(self, **changes) -> "State":
        kw = {"images": self.images, "layers": self.layers, "holders": self.holders, **changes}
        return State(**kw)

    def resolve(self, ref_or_id: str) -> Optional[Image]:
        """By full ID, by any tag or repo digest (normalised), else by unique ID prefix."""
        if ref_or_id in self.images:
            return self.images[ref_or_id]
        try:
            image_id = self._by_ref.get(str(reference.parse(ref_or_id)))
        except CriError:
            image_id = None
        return self.images[image_id] if image_id else self._by_id_prefix(ref_or_id)

    def _by_id_prefix(self, value: str) -> Optional[Image]:
        hexpart = value[len("sha256:"):] if value.startswith("sha256:") else value
        if not hexpart or hexpart.strip("0123456789abcdef"):
            return None
        matches = [img for i, img in self.images.items() if i.startswith("sha256:" + hexpart)]
        return matches[0] if len(matches) == 1 else None


class Lease:
    """Keeps the blobs and layers a pull works on alive until it has recorded its image."""

    def __init__(self, store: "ImageStore") -> None:
        self._store = store
        self.keys: list[str] = []

    def add(self, key: str) -> None:
        with self._store._lock:
            self._store._leased[key] += 1
            self.keys.append(key)


class ImageStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.content = Content(root)
        self._lock = threading.Lock()
        self._leased: collections.Counter = collections.Counter()
        self.content.sweep()
        self._state = self._load()
        with self._lock:
            self._commit(self._state)
        self.content.empty_trash()

    @property
    def state(self) -> State:
        return self._state

    def resolve(self, ref_or_id: str) -> Optional[Image]:
        return self._state.resolve(ref_or_id)

    def has_layer(self, diff_id: str) -> bool:
        return diff_id in self._state.layers

    def layer_dirs(self, image: Image) -> list[str]:
        """The image's layer directories as overlayfs's ``lowerdir=`` wants them: top-most
        layer first, base layer last (``":".join(dirs)``).  A layer that occurs twice is
        kept at its top-most place only (the lower copy could not show through it)."""
        missing = [d for d in image.diff_ids if d not in self._state.layers]
        if missing:
            raise not_found(f"image {image.id}: layers {missing} are not unpacked; pull it again")
        dirs: list[str] = []
        for diff_id in reversed(image.diff_ids):
            path = self.content.layer_dir(diff_id)
            if path not in dirs:
                dirs.append(path)
        return dirs

    def usage(self) -> tuple[int, int]:
        """(bytes, inodes) used by stored content."""
        blobs = list(self.content.blobs())
        layers = self._state.layers.values()
        return (sum(size for _, size in blobs) + sum(la.size for la in layers),
                len(blobs) + sum(la.inodes for la in layers))

    # -- writers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self) -> Iterator[Lease]:
        lease = Lease(self)
        try:
            yield lease
        finally:
            with self._lock:
                self._leased.subtract(lease.keys)
                self._leased += collections.Counter()     # drop the zero counts
                # What a failed pull left behind (finished layers, a manifest) goes now.
                self._commit(self._state)
            self.content.empty_trash()

    def add_layer(self, diff_id: str, layer: Layer) -> None:
        with self._lock:
            self._commit(self._state.replace(layers={**self._state.layers, diff_id: layer}))

    def add(self, image: Image, tag: Optional[str], repo_digest: str) -> Image:
        """Record ``image`` under ``tag`` and ``repo_digest``, merging with an existing record
        of the same ID.  The tag moves here from any other image."""
        with self._lock:
            images = dict(self._state.images)
            old = images.get(image.id)
            new = dataclasses.replace(
                image,
                repo_tags=_union(old.repo_tags if old else (), (tag,) if tag else ()),
                repo_digests=_union(old.repo_digests if old else (), (repo_digest,)))
            images[image.id] = new
            if tag:
                _untag_others(images, tag, image.id)
            self._commit(self._state.replace(images=images))
        self.content.empty_trash()
        return new

    def remove(self, image_id: str) -> bool:
        """Remove the image with all its tags and digests; False if it was not there."""
        with self._lock:
            if image_id not in self._state.images:
                return False
            images = {i: img for i, img in self._state.images.items() if i != image_id}
            self._commit(self._state.replace(images=images))
        self.content.empty_trash()
        return True

    def hold(self, holder: str, image: Image) -> list[str]:
        """Keep ``image``'s layers on disk for ``holder`` (a container) even if the image is
        removed, until :meth:`release`; returns :meth:`layer_dirs`."""
        with self._lock:
            dirs = self.layer_dirs(image)
            holders = {**self._state.holders, holder: image.diff_ids}
            self._commit(self._state.replace(holders=holders))
        return dirs

    def release(self, holder: str) -> None:
        """Release ``holder`` and every ``holder/…`` (a container's image volumes hold their
        images as ``<container>/volume/<n>``).  Idempotent: an unknown holder is a no-op."""
        def held_by(h: str) -> bool:
            return h == holder or h.startswith(holder + "/")
        with self._lock:
            if not any(map(held_by, self._state.holders)):
                return
            holders = {h: d for h, d in self._state.holders.items() if not held_by(h)}
            self._commit(self._state.replace(holders=holders))
        self.content.empty_trash()

    # -- under the lock ----------------------------------------------------------------------

    def _commit(self, state: State) -> None:
        """Collect garbage, persist, publish.  Caller holds ``_lock``."""
        state = self._collect(state)
        atomic.write_json(os.path.join(self.root, RECORDS), {
            "version": FORMAT,
            "images": [img.to_json() for img in state.images.values()],
            "layers": {d: dataclasses.asdict(la) for d, la in state.layers.items()},
            "holders": {h: list(d) for h, d in state.holders.items()}})
        self._state = state

    def _collect(self, state: State) -> State:
        leased = set(self._leased)
        live_blobs = {b for img in state.images.values() for b in img.blobs} | leased
        live_layers = ({d for img in state.images.values() for d in img.diff_ids}
                       | {d for ds in state.holders.values() for d in ds} | leased)
        dead_blobs = {d for d, _ in self.content.blobs()} - live_blobs
        dead_layers = (set(self.content.layer_ids()) | set(state.layers)) - live_layers
        if dead_blobs or dead_layers:
            log.info("image gc: %d blobs, %d layers", len(dead_blobs), len(dead_layers))
            self.content.discard(dead_blobs, dead_layers)
        return state.replace(layers={d: la for d, la in state.layers.items()
                                     if d not in dead_layers})

    def _load(self) -> State:
        try:
            with open(os.path.join(self.root, RECORDS), "rb") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return State({}, {}, {})
        layers = {d: Layer(**la) for d, la in doc.get("layers", {}).items()
                  if os.path.isdir(self.content.layer_dir(d))}
        images = {}
        for entry in doc.get("images", []):
            img = Image.from_json(entry)
            if self._complete(img, layers):
                images[img.id] = img
        holders = {h: tuple(d) for h, d in doc.get("holders", {}).items()}
        return State(images, layers, holders)

    def _complete(self, img: Image, layers: Mapping[str, Layer]) -> bool:
        missing = [d for d in img.diff_ids if d not in layers] + \
                  [b for b in img.blobs if not self.content.has_blob(b)]
        if missing:
            log.warning("image %s dropped: content missing on disk: %s", img.id, missing)
        return not missing


def _union(first: tuple, second: tuple) -> tuple:
    return tuple(dict.fromkeys(first + second))


def _untag_others(images: dict, tag: str, keep: str) -> None:
    for image_id, img in list(images.items()):
        if image_id == keep or tag not in img.repo_tags:
            continue
        # It keeps its repo digest (every pull records one), so it stays reachable and
        # removable, like docker's "<none>" images.
        images[image_id] = dataclasses.replace(
            img, repo_tags=tuple(t for t in img.repo_tags if t != tag))
