"""Field errors worded the way the Kubernetes API server words them.

Mirrors k8s.io/apimachinery/pkg/util/validation/field (Error, ErrorBody,
aggregate) and the message strings of pkg/apis/networking/validation and
apimachinery/pkg/util/validation, so `podwire-netpol apply` rejects exactly what
`kubectl apply` would, with the same text.
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import re
from typing import Any, Optional

from .model import compact_net

_NO_VALUE = object()

PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_QNAME_CHARS = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
              "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
              f"validation is '{_QNAME_CHARS}')")
_LABEL_VALUE_RE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE_RE}')")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + r")*"
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                  "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                  f"regex used for validation is '{_DNS1123_SUBDOMAIN}')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
              "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
              f"used for validation is '{_DNS1123_LABEL}')")


@dataclasses.dataclass
class FieldError:
    path: str
    kind: str  # "Invalid value", "Unsupported value", "Required value", "Forbidden"
    value: Any = _NO_VALUE
    detail: str = ""

    def __str__(self) -> str:
        body = self.kind
        if self.kind not in ("Required value", "Forbidden") and self.value is not _NO_VALUE:
            body += ": " + _go_value(self.value)
        if self.detail:
            body += ": " + self.detail
        return f"{self.path}: {body}"


def _go_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value)  # Go's %q for the strings we meet
    return str(value)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", value, detail)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail=detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail=detail)


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError(path, "Unsupported value", value,
                      "supported values: " + ", ".join(json.dumps(s) for s in supported))


def aggregate(errors: list[FieldError]) -> str:
    """utilerrors.Aggregate's Error(): one message alone, several in brackets."""
    msgs = list(dict.fromkeys(str(e) for e in errors))
    return msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"


def port_number_errors(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else [PORT_RANGE_MSG]


def port_name_errors(name: str) -> list[str]:
    """IsValidPortName (an IANA_SVC_NAME)."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    elif not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def qualified_name_errors(key: str) -> list[str]:
    """IsQualifiedName: a label key, with an optional DNS subdomain prefix."""
    parts = key.split("/")
    if len(parts) > 2:
        return ["a qualified name " + _QNAME_MSG + " with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    name = parts[-1]
    errs = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in dns_subdomain_errors(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not re.fullmatch(_QNAME_CHARS, name):
        errs.append("name part " + _QNAME_MSG)
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not re.fullmatch(_LABEL_VALUE_RE, value):
        errs.append(_LABEL_VALUE_MSG)
    return errs


def dns_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not re.fullmatch(_DNS1123_SUBDOMAIN, value):
        errs.append(_SUBDOMAIN_MSG)
    return errs


def dns_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not re.fullmatch(_DNS1123_LABEL, value):
        errs.append(_LABEL_MSG)
    return errs


@functools.lru_cache(maxsize=65536)
def parse_cidr(value: str) -> Optional[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """ParseCIDRSloppy as the (non-strict) legacy field validation uses it: host bits
    beyond the prefix are accepted and masked off; None when it is not a CIDR at all.
    The network comes as a model.HostPrefix (what an ipaddress network is, in an eighth of
    its memory: equal to it and hashing like it).  Cached (prefixes are immutable):
    validation and the model parse each cidr, and a 20,000-rule manifest spends most of its
    parse time in ipaddress; parse.shared_parts clears the cache after a manifest."""
    if "/" not in value:
        return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        # Go parses ::ffff:a.b.c.d/len as an IPv4 network; keep that mapping explicit.
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{max(net.prefixlen - 96, 0)}",
                                   strict=False)
    return compact_net(net)
