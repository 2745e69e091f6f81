#!/usr/bin/env python3
"""`make demo`, once the node stack is up: NetworkPolicy at work, one line per step.

Two pods run through podwire-ctl, as a kubelet runs them through the CRI: "web" (busybox httpd
on port 8080) and "client", in namespace podwire-demo, real containers under runc.  The client
fetches the web page (an HTTP GET through nc); a policy that admits nothing to app=web is applied with
`podwire-netpol apply`; the fetch fails, the drop shows in `podwire-netpol drops` and in the
agent's metrics; the policy is deleted and the fetch works again.  The pods are stopped and
removed at the end, also on failure or Ctrl-C.

The image must be pullable by the shim (--image; the default needs a registry mirror or the
internet: Docker Hub's busybox).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from cni import metrics   # the agent's default metrics address (standard library at import)

NAMESPACE = "podwire-demo"
POLICY = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-deny-ingress, namespace: {NAMESPACE}}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Ingress]
"""
WEB = "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"


class Demo:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.scratch = tempfile.mkdtemp(prefix="podwire-demo-")
        self.pods: dict[str, str] = {}          # name -> pod sandbox id
        self.containers: dict[str, str] = {}    # name -> container id
        self.step = 0

    def say(self, line: str) -> None:
        self.step += 1
        print(f"demo {self.step:>2}. {line}", flush=True)

    def run_tool(self, tool: str, *argv: str, stdin: str | None = None, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([tool, *argv], input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode:
            raise RuntimeError(f"{os.path.basename(tool)} {' '.join(argv)}: {proc.stderr.strip() or proc.stdout}")
        return proc

    def ctl(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run_tool(self.opts.ctl, *argv, check=check)

    def netpol(self, *argv: str, stdin: str | None = None) -> str:
        return self.run_tool(self.opts.netpol, *argv, stdin=stdin).stdout

    def write(self, name: str, doc: dict) -> str:
        path = os.path.join(self.scratch, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def start_pod(self, name: str, command: list[str]) -> str:
        """RunPodSandbox, CreateContainer, StartContainer; the pod's IPv4 address."""
        pod = self.write(f"{name}-pod.json", {
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"{NAMESPACE}-{name}"},
            "labels": {"app": name}, "log_directory": os.path.join(self.scratch, name)})
        ctr = self.write(f"{name}-ctr.json", {"metadata": {"name": name}, "image": {"image": self.opts.image},
                                              "command": command, "log_path": f"{name}.log"})
        self.pods[name] = self.ctl("runp", pod).stdout.strip()
        self.containers[name] = self.ctl("create", self.pods[name], ctr, pod).stdout.strip()
        self.ctl("start", self.containers[name])
        status = json.loads(self.ctl("inspectp", self.pods[name]).stdout)["status"]
        return status["network"]["ip"]

    def fetch(self, web_ip: str) -> bool:
        """The client fetches the web page (3 s to connect): was it answered?  An HTTP request
        through nc, not wget: a static glibc busybox's wget crashes in its NSS lookups."""
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {web_ip} 8080"
        proc = self.ctl("exec", "-s", "--timeout", "15", self.containers["client"], "sh", "-c", request, check=False)
        return "hello-from-web" in proc.stdout

    def drops_total(self) -> float | None:
        """The agent's drop counters summed, from its metrics; None when it serves none."""
        try:
            with urllib.request.urlopen(f"http://{self.opts.metrics}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("podwire_netpol_drops_total"))

    def wait_for_drop(self, src: str, dst: str) -> str:
        """The agent's record of a denied connection (one JSON object per line), as one line."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.netpol("drops", "-o", "json").splitlines():
                drop = json.loads(line)
                if (drop.get("src_ip"), drop.get("dst_ip")) == (src, dst):
                    return (f"{drop.get('src_pod') or src} -> {drop.get('dst_pod') or dst}:{drop.get('dst_port', '')} "
                            f"{drop.get('protocol', '')}, {drop.get('direction', '')} of "
                            f"{drop.get('isolated_pod', '?')}: {drop.get('reason', '')}")
            time.sleep(0.2)
        return ""

    def run(self) -> int:
        self.ctl("pull", self.opts.image)
        web = self.start_pod("web", ["sh", "-c", WEB])
        client = self.start_pod("client", ["sleep", "100000"])
        self.say(f"two pods through podwire-ctl in namespace {NAMESPACE}: web {web} (httpd :8080), client {client}")
        if not any(self.fetch(web) for _ in range(10)):     # httpd may still be starting
            self.say("client -> web: no answer before any policy; stopping")
            return 1
        self.say("client -> web: GET http://web:8080/ answered (no policy yet)")
        drops_before = self.drops_total()
        self.netpol("apply", "-f", "-", stdin=POLICY)
        self.say(f"applied NetworkPolicy {NAMESPACE}/web-deny-ingress (app=web admits nothing)")
        if self.fetch(web):
            self.say("client -> web: still answered: the policy is not enforced")
            return 1
        self.say("client -> web: no answer: denied")
        seen = self.wait_for_drop(client, web)
        self.say(f"podwire-netpol drops: {seen}" if seen else "podwire-netpol drops: no entry for client -> web")
        drops_after = self.drops_total()
        if drops_before is None or drops_after is None:
            self.say(f"metrics: not served at {self.opts.metrics} (podwire-netpol serve --metrics-address)")
        else:
            self.say(f"metrics: podwire_netpol_drops_total went from {drops_before:g} to {drops_after:g}")
        self.netpol("delete", "-n", NAMESPACE, "web-deny-ingress")
        self.say("deleted the policy")
        back = self.fetch(web)
        self.say("client -> web: answered again" if back else "client -> web: still no answer")
        moved = drops_before is not None and drops_after is not None and drops_after > drops_before
        return 0 if seen and back and moved else 1

    def clean_up(self) -> None:
        subprocess.run([self.opts.netpol, "delete", "-n", NAMESPACE, "--ignore-not-found", "web-deny-ingress"],
                       capture_output=True, timeout=60)
        for pod in reversed(list(self.pods.values())):     # removing a pod removes its containers
            self.ctl("stopp", pod, check=False)
            self.ctl("rmp", pod, check=False)
        subprocess.run(["rm", "-rf", self.scratch])
        self.say("cleaned up: pods, containers and the policy are gone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=os.environ.get("DEMO_IMAGE", "docker.io/library/busybox:1.36"),
                        help="a busybox image the shim can pull (env DEMO_IMAGE)")
    parser.add_argument("--ctl", default="/usr/local/bin/podwire-ctl", help="the CRI client")
    parser.add_argument("--netpol", default="/usr/local/bin/podwire-netpol", help="the agent's CLI")
    parser.add_argument("--metrics", default=metrics.NETPOL_ADDRESS, help="the agent's metrics address")
    opts = parser.parse_args()
    demo = Demo(opts)
    try:
        return demo.run()
    except (RuntimeError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        demo.clean_up()


if __name__ == "__main__":
    sys.exit(main())
