"""The image record: what the store persists and what ImageService hands out.

Records are immutable; a change (a new tag, a removed tag) makes a new record.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class Image:
    id: str                             # "sha256:<config digest hex>" (the config blob's digest)
    repo_tags: tuple[str, ...] = ()     # normalised "domain/path:tag"
    repo_digests: tuple[str, ...] = ()  # "domain/path@sha256:…" (the digest the ref resolved to)
    size: int = 0                       # bytes of content: config + compressed layers
    config: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)
    diff_ids: tuple[str, ...] = ()      # uncompressed layer digests, bottom layer first
    blobs: tuple[str, ...] = ()         # content kept for this image: manifests (index), config
    os: str = "linux"
    architecture: str = ""
    created: str = ""

    @property
    def user(self) -> str:
        """The image's USER (``name``, ``uid``, ``uid:gid`` or ``name:group``)."""
        return self.config.get("User") or ""

    @property
    def uid(self) -> Optional[int]:
        """USER's numeric uid, if USER is numeric (``1000`` or ``1000:1000``)."""
        return user_id(self.user)[0]

    @property
    def username(self) -> str:
        """USER's name, if USER is a name (``nobody`` or ``nobody:nogroup``)."""
        return user_id(self.user)[1]

    def to_json(self) -> dict:
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_json(cls, doc: dict) -> "Image":
        names = {f.name for f in dataclasses.fields(cls)}
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in doc.items() if k in names}
        return cls(**fields)


def user_id(user: str) -> tuple[Optional[int], str]:
    """(uid, "") for a numeric user, (None, name) for a named one, as containerd's
    getUserFromImage: the group part is not the image's user and is dropped."""
    name = user.split(":", 1)[0]
    if not name:
        return None, ""
    if name.isascii() and name.isdigit():
        return int(name), ""
    return None, name
