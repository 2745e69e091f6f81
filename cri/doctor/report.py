"""What a check finds, how bad it is, and what the doctor's exit code says about it all.

A blocker stops podwire (or a part of it) from working on this node; a warning works today
but bites later or in a set-up the doctor cannot see; unchecked means the doctor could not
tell (no root, no tool) and says why.  Only blockers fail the run, unless --strict."""
from __future__ import annotations

import dataclasses
import json
from typing import Iterable, TextIO

OK = "ok"
WARNING = "warning"
BLOCKER = "blocker"
UNCHECKED = "unchecked"
STATUSES = (BLOCKER, WARNING, UNCHECKED, OK)   # also the order the summary counts them in

EXIT_OK = 0
EXIT_BLOCKERS = 1
# 2 is argparse's (bad usage).  Warnings fail only under --strict, with a code of their own so
# a script can tell "must fix" from "should fix".
EXIT_WARNINGS = 3

JSON_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str          # "<family>.<name>", e.g. "kernel.clsact": stable, for scripts
    status: str
    summary: str        # one line: what the doctor saw
    fix: str = ""       # what to do about it (warnings and blockers)


def ok(check: str, summary: str) -> Finding:
    return Finding(check, OK, summary)


def warning(check: str, summary: str, fix: str) -> Finding:
    return Finding(check, WARNING, summary, fix)


def blocker(check: str, summary: str, fix: str) -> Finding:
    return Finding(check, BLOCKER, summary, fix)


def unchecked(check: str, summary: str) -> Finding:
    return Finding(check, UNCHECKED, summary)


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    tally = {status: 0 for status in STATUSES}
    for finding in findings:
        tally[finding.status] += 1
    return tally


def exit_code(findings: Iterable[Finding], strict: bool = False) -> int:
    tally = counts(findings)
    if tally[BLOCKER]:
        return EXIT_BLOCKERS
    if strict and tally[WARNING]:
        return EXIT_WARNINGS
    return EXIT_OK


def as_data(findings: list[Finding], root: str, strict: bool = False) -> dict:
    """The report as -o json prints it (format version 1: keys are only ever added)."""
    return {
        "version": JSON_FORMAT_VERSION,
        "root": root,
        "exit_code": exit_code(findings, strict),
        "counts": counts(findings),
        "findings": [dataclasses.asdict(f) for f in findings],
    }


def write_json(findings: list[Finding], root: str, out: TextIO, strict: bool = False) -> None:
    out.write(json.dumps(as_data(findings, root, strict), indent=2) + "\n")


def write_text(findings: list[Finding], out: TextIO) -> None:
    """One line per check, problems first; each problem's fix indented below it."""
    order = {status: i for i, status in enumerate(STATUSES)}
    width = max((len(f.check) for f in findings), default=0)
    for finding in sorted(findings, key=lambda f: order[f.status]):
        out.write(f"{finding.status.upper():<9}  {finding.check:<{width}}  {finding.summary}\n")
        if finding.fix:
            out.write(f"{'':<9}  {'':<{width}}  fix: {finding.fix}\n")
    tally = counts(findings)
    out.write(", ".join(f"{tally[s]} {s}" for s in STATUSES) + "\n")
