"""The plugins podwire-cnid serves, by executable name.

The daemon's own: the thin client (client.py) keeps a lazy name -> module map so
that an invocation the daemon answers imports no verb code at all.
"""
from __future__ import annotations

from .. import skel
from ..ipam.main import VERBS as IPAM_VERBS
from ..plugin.main import VERBS as PODWIRE_VERBS

PLUGINS: dict[str, skel.Verbs] = {"podwire": PODWIRE_VERBS, "podwire-ipam": IPAM_VERBS}
