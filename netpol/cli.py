"""`podwire-netpol`: the agent (`serve`) and its command line (kubectl-like verbs)."""
from __future__ import annotations

import argparse
import os
import sys

from cni import logs
from cni.metrics import NETPOL_ADDRESS, parse_address

from . import paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podwire-netpol", description="podwire NetworkPolicy agent and CLI")
    p.add_argument("--socket", default=os.environ.get("PODWIRE_NETPOL_SOCKET", paths.SOCKET))
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the agent")
    s.add_argument("--cni-socket", default=paths.CNI_SOCKET)
    s.add_argument("--state-dir", default=paths.STATE_DIR)
    s.add_argument("--pin-dir", default=paths.PIN_DIR)
    s.add_argument("--bpf-cache", default=None,
                   help=f"compiled programs, reused across restarts (default {paths.BPF_CACHE_DIR}, or "
                        f"$PODWIRE_NETPOL_BPF_CACHE)")
    s.add_argument("--service-mark", type=lambda v: int(v, 0), default=0x02000000,
                   help="skb mark bit tagging Service traffic whose egress check waits for kube-proxy's DNAT "
                        "(default 0x02000000; clear of kube-proxy's 0x4000/0x8000; 0 judges by the Service "
                        "address instead)")
    s.add_argument("--watch-dir", default="", help="apply and follow the manifests in this directory")
    s.add_argument("--kubernetes", action="store_true", help="watch policies, namespaces, pods and services in the API")
    s.add_argument("--kubeconfig", default=None)
    s.add_argument("--node-name", default=os.environ.get("NODE_NAME", ""))
    s.add_argument("-v", "--verbose", action="store_true", help="same as --log-level debug")
    s.add_argument("--log-level", choices=logs.LEVELS, default="info")
    s.add_argument("--log-format", choices=logs.FORMATS, default=logs.DEFAULT_FORMAT,
                   help="text: logfmt key=value lines; json: one object per line")
    s.add_argument("--metrics-address", type=_metrics_address, default=NETPOL_ADDRESS,
                   help=f"Prometheus /metrics on HOST:PORT, '' for none (default {NETPOL_ADDRESS})")

    a = sub.add_parser("apply", help="apply NetworkPolicy (and Namespace) manifests")
    a.add_argument("-f", "--filename", action="append", required=True, help="file, directory or - for stdin")
    a.add_argument("-n", "--namespace", default="")
    a.add_argument("--dry-run", action="store_true")

    d = sub.add_parser("delete", help="delete policies by name, --all, or -f FILE")
    d.add_argument("names", nargs="*")
    d.add_argument("-f", "--filename", action="append", default=[])
    d.add_argument("-n", "--namespace", default="")
    d.add_argument("--all", action="store_true")
    d.add_argument("--ignore-not-found", action="store_true")

    ls = sub.add_parser("list", help="list policies")
    ls.add_argument("-n", "--namespace", default="")
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    ls.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    dr = sub.add_parser("drops", help="recent denied flows")
    dr.add_argument("-f", "--follow", action="store_true")
    dr.add_argument("--recent", type=int, default=50)
    dr.add_argument("-o", "--output", choices=("table", "json"), default="table")

    st = sub.add_parser("stats", help="per-endpoint, per-policy and per-verdict counters")
    st.add_argument("-o", "--output", choices=("table", "json"), default="table")

    sub.add_parser("endpoints", help="pods the agent knows")

    c = sub.add_parser("compile", help="compile the BPF programs for this kernel into the cache "
                                       "(ahead of the agent's start; the agent compiles on a cold cache)")
    c.add_argument("--bpf-cache", default=None, help=f"default {paths.BPF_CACHE_DIR}")

    t = sub.add_parser("teardown", help="detach the programs from every interface and unpin the maps "
                                        "(uninstall; the agent must be stopped)")
    t.add_argument("--pin-dir", default=paths.PIN_DIR)
    return p


def _metrics_address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: list[str] | None = None) -> int:
    opts = _parser().parse_args(argv)
    if opts.command == "serve":
        from .agent.serve import serve
        return serve(opts)
    if opts.command == "compile":
        from .datapath.loader import compile_cache
        from .errors import DatapathError
        try:
            path, compiled = compile_cache(opts.bpf_cache)
        except DatapathError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{'compiled' if compiled else 'up to date'}: {path}")
        return 0
    if opts.command == "teardown":
        from .datapath.teardown import teardown
        for line in teardown(opts.pin_dir):
            print(line)
        return 0
    import grpc

    from . import commands
    try:
        return commands.run(opts)
    except grpc.RpcError as exc:
        print(f"error: {exc.details() if hasattr(exc, 'details') else exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
