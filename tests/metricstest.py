"""Scraping a daemon's /metrics in tests and benchmarks: every sample, parsed back with
prometheus_client's own parser (so the exposition format is checked too)."""
from __future__ import annotations

import re
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def get(samples: Samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels) -> float:
    """The sum of ``name`` over the series whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def url_in_log(read_log, timeout: float = 20.0) -> str:
    """The metrics URL a daemon logged at start (``metrics on http://...``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"http://[0-9.\[\]:a-f]+:\d+/metrics", read_log())
        if found:
            return found.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no metrics URL in the log:\n{read_log()}")
