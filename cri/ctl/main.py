"""podwire-ctl: crictl's verbs against a CRI endpoint (default podwire-cri's socket)."""
from __future__ import annotations

import argparse
import os
import sys

import grpc

from . import containers, images, info, logs, pods, streaming
from .client import DEFAULT_ENDPOINT, Client
from .configs import ConfigFileError

# crictl's default is 2 s; the slow verbs pass their own deadlines.
DEFAULT_TIMEOUT = 2.0
SLOW_VERBS = {"runp": 300, "stopp": 120, "rmp": 120, "create": 300, "start": 60, "rm": 60,
              "pull": 24 * 3600, "rmi": 60,
              "exec": 30, "attach": 30, "port-forward": 30}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podwire-ctl", description=__doc__)
    p.add_argument("--runtime-endpoint", "-r", default="",
                   help=f"CRI endpoint (env CONTAINER_RUNTIME_ENDPOINT; default {DEFAULT_ENDPOINT})")
    p.add_argument("--image-endpoint", "-i", default="", help="image endpoint (default: the runtime's)")
    p.add_argument("--timeout", "-t", type=float, default=0, help="seconds per call (default: per verb)")
    p.add_argument("--debug", "-D", action="store_true")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")
    sub.required = True
    for mod in (info, pods, containers, streaming, logs, images):
        mod.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    timeout = opts.timeout or SLOW_VERBS.get(opts.verb, DEFAULT_TIMEOUT)
    client = Client(opts.runtime_endpoint, opts.image_endpoint, timeout)
    try:
        return opts.func(client, opts)
    except grpc.RpcError as err:
        print(f"podwire-ctl {opts.verb}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    except ConfigFileError as err:
        print(f"podwire-ctl {opts.verb}: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
