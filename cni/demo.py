"""`make run`, once the node stack is up: wire two throwaway pods with the
installed conflist, show them pinging each other, then tear everything down.

It drives the plugins exactly as a runtime would — through the runtime library,
from the CNI bin and conf dirs — and prints each step.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid

from .errors import CniError
from .libcni import CNIConfig, RuntimeConf, load_default_network


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def _bridges(netlist) -> list[str]:
    return [p.get("bridge", "podwire0") for p in netlist.plugins
            if p.get("type") == "podwire" and p.get("mode", "bridge") == "bridge"]


def run_netns_mounted() -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == "/run/netns" for line in f)


def release_run_netns(was_mounted: bool) -> None:
    """`ip netns add` turns /run/netns into a bind mount of itself and never undoes it: when
    it was not one before and no namespace is left in it, undo that, leaving the host as found."""
    if not was_mounted and run_netns_mounted() and not os.listdir("/run/netns"):
        _sh("umount", "/run/netns", check=False)


def run(conf_dir: str, bin_dir: str, extra_paths: tuple[str, ...] = ("/usr/lib/cni",)) -> int:
    netlist = load_default_network(conf_dir)
    netns_was_mounted = run_netns_mounted()
    print(f"network {netlist.name!r} from {netlist.source} (cniVersion {netlist.cni_version}); "
          f"plugins: {' -> '.join(p['type'] for p in netlist.plugins)}")
    preexisting = {b for b in _bridges(netlist) if _sh("ip", "link", "show", b, check=False).returncode == 0}
    # The reference plugins chained after podwire (portmap) may live in Debian's dir.
    cni = CNIConfig([bin_dir] + [d for d in extra_paths if os.path.isdir(d)])
    pods = [f"podwire-demo-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    wired: list[tuple[str, RuntimeConf]] = []
    try:
        results = {}
        for name in pods:
            _sh("ip", "netns", "add", name)
            rt = RuntimeConf(container_id=name, netns=f"/run/netns/{name}", ifname="eth0")
            results[name] = cni.add_network_list(netlist, rt)
            wired.append((name, rt))
            ips = ", ".join(ip["address"] for ip in results[name]["ips"])
            print(f"ADD  {name}: eth0 {ips}")
        ok = True
        for src, dst in ((pods[0], pods[1]), (pods[1], pods[0])):
            for ip in results[dst]["ips"]:
                target = ip["address"].split("/")[0]
                rc = _sh("ip", "netns", "exec", src, "ping", "-c", "1", "-W", "2", target, check=False).returncode
                ok &= rc == 0
                print(f"PING {src} -> {target}: {'ok' if rc == 0 else 'FAILED'}")
        return 0 if ok else 1
    except CniError as err:
        print(f"CNI error: {err}", file=sys.stderr)
        return 1
    finally:
        for name, rt in reversed(wired):
            cni.del_network_list(netlist, rt)
            print(f"DEL  {name}")
        for name in pods:
            _sh("ip", "netns", "del", name, check=False)
        for bridge in set(_bridges(netlist)) - preexisting:
            _sh("ip", "link", "del", bridge, check=False)
        release_run_netns(netns_was_mounted)
        print("torn down: namespaces, veths, leases and the demo's bridge are gone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conf-dir", default="/etc/cni/net.d")
    parser.add_argument("--bin-dir", default="/opt/cni/bin")
    opts = parser.parse_args()
    sys.exit(run(opts.conf_dir, opts.bin_dir))


if __name__ == "__main__":
    main()
