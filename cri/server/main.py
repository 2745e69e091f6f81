"""podwire-cri: serve CRI runtime.v1 on a unix socket until SIGTERM/SIGINT.

Stopping the shim never stops containers: each one's monitor process holds its
stdio and waits for its exit, and the next shim picks the state up again.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import signal
import sys
import threading

from cni import logs, sdnotify

from .. import config as config_mod
from .heap import start_trimmer
from .server import create_server, secure_socket

GRACE = 5.0
M_ARENA_MAX = -8     # mallopt(3)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core);
    gRPC's worker threads would each keep one mostly empty.  Two arenas are plenty
    for a server that spends its time waiting on children and files."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass            # not glibc


def main(argv: list[str] | None = None) -> int:
    sdnotify.claim()     # conmon and runc must not see systemd's socket (runc start would wait)
    _limit_malloc_arenas()
    opts = _parser().parse_args(argv)
    try:
        cfg = config_mod.load(opts.config, required=opts.config is not None)
        if opts.listen:
            cfg.listen = opts.listen
        if opts.state_dir:
            cfg.state_dir = opts.state_dir
        if opts.metrics_address is not None:
            config_mod.check_metrics_address(opts.metrics_address, "--metrics-address")
            cfg.metrics_address = opts.metrics_address
        if opts.print_config:
            # Effective: the cgroup driver as detected here and its default parent filled in.
            sys.stdout.write(config_mod.to_toml(cfg.resolved()))
            return 0
    except config_mod.ConfigError as err:
        print(f"podwire-cri: {err}", file=sys.stderr)
        return 2
    logs.setup("podwire-cri", opts.log_level or cfg.log_level, opts.log_format or cfg.log_format)
    try:
        server, svc = create_server(cfg)
    except RuntimeError as err:      # the socket or the metrics address in use
        logging.getLogger("podwire.cri").error("%s", err)
        return 1
    server.start()
    start_trimmer()
    secure_socket(cfg.socket_path, cfg.socket_mode, cfg.socket_group)
    logging.getLogger("podwire.cri").info("serving CRI v1 on unix://%s (state %s, cgroup driver %s)",
                                          cfg.socket_path, cfg.state_dir, svc.config.cgroup_driver)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    # Type=notify: `systemctl start podwire-cri` returns once the socket answers, so a kubelet
    # ordered after this unit never finds it missing.
    sdnotify.notify("READY=1")
    done.wait()
    sdnotify.notify("STOPPING=1")
    server.stop(GRACE).wait()
    svc.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podwire-cri", description=__doc__.splitlines()[0])
    p.add_argument("--config", help=f"TOML config (default {config_mod.DEFAULT_PATH}, optional)")
    p.add_argument("--listen", help="unix socket path or unix:// URL (overrides the config)")
    p.add_argument("--state-dir", help="state directory (overrides the config)")
    p.add_argument("--metrics-address", metavar="HOST:PORT",
                   help='Prometheus metrics endpoint (overrides the config; "" turns it off)')
    p.add_argument("--log-level", choices=logs.LEVELS, help="overrides the config's log_level")
    p.add_argument("--log-format", choices=logs.FORMATS, help="overrides the config's log_format")
    p.add_argument("--print-config", action="store_true", help="print the effective config as TOML")
    return p


if __name__ == "__main__":
    sys.exit(main())
