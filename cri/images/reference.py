"""Image references, normalised the way the kubelet and docker do it.

``busybox``                  -> ``docker.io/library/busybox:latest``
``quay.io/x/y``              -> ``quay.io/x/y:latest``
``localhost:5000/x:1``       -> kept (a first component with ``.`` or ``:``, or ``localhost``,
                                 is a registry host; anything else is a Docker Hub path)
``x@sha256:…``               -> pulled by digest, no tag added
``x:1@sha256:…``             -> the tag is dropped: the digest names the content (as
                                 distribution's ParseDockerRef and containerd do)

The grammar is distribution/reference's (regexp.go); errors are INVALID_ARGUMENT.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

from . import digest as digests
from ..errors import invalid

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")


@dataclasses.dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name(self) -> str:
        """``domain/path``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What the manifest endpoint is asked for: the digest if any, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    def with_digest(self, value: str) -> "Reference":
        return Reference(self.domain, self.path, None, value)

    def familiar(self) -> str:
        """The short form people type (``busybox:latest``), for displays only."""
        name = self.name
        if self.domain == DEFAULT_DOMAIN:
            name = self.path[len(OFFICIAL_REPO_PREFIX):] if self.path.startswith(
                OFFICIAL_REPO_PREFIX) and self.path.count("/") == 1 else self.path
        return f"{name}@{self.digest}" if self.digest else f"{name}:{self.tag or DEFAULT_TAG}"


def parse(ref: str) -> Reference:
    """Parse and normalise ``ref``; INVALID_ARGUMENT if it is not an image reference."""
    # Kept, all of these: the same rules as containerd's reference parser (distribution's
    # grammar, its 64-hex refusal and 255-character name limit); CRI-O uses the same grammar.
    if not ref:
        raise invalid("image reference is empty")
    if _IMAGE_ID.match(ref):
        raise invalid(f"invalid reference {ref!r}: a 64-hex string is an image ID, not a name")
    domain, remainder = _split_domain(ref)
    m = _REFERENCE.match(f"{domain}/{remainder}")
    if not m or m.group(1) != domain:
        raise invalid(f"invalid reference format {ref!r}" + _hint(remainder))
    path, tag, digest = m.group(2), m.group(3), m.group(4)
    if len(f"{domain}/{path}") > NAME_MAX:
        raise invalid(f"invalid reference {ref!r}: repository name longer than {NAME_MAX}")
    if digest is not None:
        digests.check(digest)
        return Reference(domain, path, None, digest)
    return Reference(domain, path, tag or DEFAULT_TAG, None)


def normalize(ref: str) -> str:
    return str(parse(ref))


def _split_domain(ref: str) -> tuple[str, str]:
    """distribution's splitDockerDomain: the first component is a host only if it
    looks like one (has ``.`` or ``:``, is ``localhost``, or has upper case)."""
    first, sep, rest = ref.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, ref
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _hint(remainder: str) -> str:
    name = remainder.split("@", 1)[0].rsplit(":", 1)[0]
    return ": repository name must be lowercase" if name.lower() != name else ""
