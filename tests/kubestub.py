"""An in-test Kubernetes API server that the official client talks to over HTTP.

It serves list, get and watch (with ``resourceVersion`` and ``410 Gone``) for the
kinds podwire's daemons read -- Nodes, Pods, Namespaces, Services,
EndpointSlices and NetworkPolicies -- from an in-memory store that the test
changes with :meth:`KubeStub.put` and :meth:`KubeStub.delete`.  Every change
gets the next resourceVersion and is sent to open watches as ADDED, MODIFIED
or DELETED, so the daemons exercise the same list-then-watch code they run
against a real API server.

A "node" of a multi-node test bed is a network namespace, where 127.0.0.1 is
not the test's loopback.  :meth:`KubeStub.kubeconfig` with ``netns=`` therefore
also listens on 127.0.0.1 inside that namespace: a short child process binds
the socket there and hands its descriptor back over SCM_RIGHTS, so the test
process itself never calls setns().
"""
from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

# plural -> (API group/version prefix, kind, namespaced)
KINDS = {
    "nodes": ("/api/v1", "Node", False),
    "namespaces": ("/api/v1", "Namespace", False),
    "pods": ("/api/v1", "Pod", True),
    "services": ("/api/v1", "Service", True),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "EndpointSlice", True),
    "networkpolicies": ("/apis/networking.k8s.io/v1", "NetworkPolicy", True),
}
PLURAL_OF_KIND = {kind: plural for plural, (_, kind, _) in KINDS.items()}
API_VERSION = {"/api/v1": "v1", "/apis/discovery.k8s.io/v1": "discovery.k8s.io/v1",
               "/apis/networking.k8s.io/v1": "networking.k8s.io/v1"}

# A child that binds 127.0.0.1 in the namespace it was started in (by `ip netns exec`)
# and passes the listening socket back through the socketpair end it inherited.
_BIND_IN_NETNS = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen(128)\n"
    "socket.send_fds(socket.socket(fileno=int(sys.argv[1])), [b'ok'], [s.fileno()])\n")


class Store:
    """Objects by (plural, namespace, name), plus the event log watches replay from."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.events: list[tuple[int, str, str, dict]] = []  # (rv, plural, type, object)
        self.version = 1
        self.oldest = 1  # watches from before this get 410 Gone
        self.changed = threading.Condition()

    def put(self, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        plural = PLURAL_OF_KIND[obj["kind"]]
        prefix, kind, namespaced = KINDS[plural]
        meta = obj.setdefault("metadata", {})
        namespace = (meta.setdefault("namespace", "default") if namespaced else "")
        key = (plural, namespace, meta["name"])
        obj["apiVersion"] = API_VERSION[prefix]
        with self.changed:
            old = self.objects.get(key)
            self.version += 1
            meta["resourceVersion"] = str(self.version)
            meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{self.version}")
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            self.objects[key] = obj
            self.events.append((self.version, plural, "MODIFIED" if old else "ADDED", obj))
            self.changed.notify_all()
        return copy.deepcopy(obj)

    def delete(self, plural: str, namespace: str, name: str) -> bool:
        key = (plural, namespace if KINDS[plural][2] else "", name)
        with self.changed:
            obj = self.objects.pop(key, None)
            if obj is None:
                return False
            self.version += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.version)
            self.events.append((self.version, plural, "DELETED", obj))
            self.changed.notify_all()
        return True

    def compact(self) -> None:
        """Forget the event log, as etcd compaction does: older watches get 410 Gone."""
        with self.changed:
            self.events.clear()
            self.oldest = self.version + 1
            self.changed.notify_all()

    def listing(self, plural: str, namespace: Optional[str]) -> dict:
        with self.changed:
            items = [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                     if p == plural and (namespace is None or ns == namespace)]
            version = self.version
        prefix, kind, _ = KINDS[plural]
        return {"kind": f"{kind}List", "apiVersion": API_VERSION[prefix],
                "metadata": {"resourceVersion": str(version)}, "items": items}


def _route(path: str) -> Optional[tuple[str, Optional[str], Optional[str]]]:
    """(plural, namespace or None for all, name or None) for an API path we serve."""
    for prefix in API_VERSION:
        if not path.startswith(prefix + "/"):
            continue
        parts = path[len(prefix) + 1:].strip("/").split("/")
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] in KINDS:
            namespace, parts = parts[1], parts[2:]
        if parts and parts[0] in KINDS and KINDS[parts[0]][0] == prefix and len(parts) <= 2:
            return parts[0], namespace, parts[1] if len(parts) == 2 else None
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, fmt, *args) -> None:  # quiet: tests read assertions, not access logs
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        route = _route(url.path)
        store = self.server.stub.store
        self.server.stub.requests.append(url.path + (f"?{url.query}" if url.query else ""))
        if route is None:
            return self._status(404, "NotFound", f"no such resource {url.path}")
        plural, namespace, name = route
        if name is not None:
            with store.changed:
                obj = store.objects.get((plural, namespace or "", name))
            if obj is None:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            return self._json(200, obj)
        if query.get("watch") in ("true", "True", "1"):
            return self._watch(plural, namespace, query)
        return self._json(200, store.listing(plural, namespace))

    def _watch(self, plural: str, namespace: Optional[str], query: dict) -> None:
        store, stub = self.server.stub.store, self.server.stub
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 300)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with store.changed:
            if since and since < store.oldest - 1:
                self._chunk({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
                    "message": f"too old resource version: {since} ({store.oldest - 1})"}})
                return self._chunk_end()
            since = since or store.version
        deadline = stub.clock() + timeout
        try:
            while not stub.closed:
                with store.changed:
                    pending = [(rv, kind, obj) for rv, p, kind, obj in store.events
                               if rv > since and p == plural and
                               (namespace is None or obj["metadata"].get("namespace") == namespace)]
                    if not pending:
                        left = deadline - stub.clock()
                        if left <= 0:
                            break
                        store.changed.wait(min(left, 0.5))
                        continue
                for rv, kind, obj in pending:
                    self._chunk({"type": kind, "object": obj})
                    since = rv
            self._chunk_end()
        except (BrokenPipeError, ConnectionResetError):  # the client stopped watching
            pass

    def _chunk(self, doc: dict) -> None:
        data = (json.dumps(doc) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _chunk_end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def _status(self, code: int, reason: str, message: str) -> None:
        self._json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def _json(self, code: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: "KubeStub"


class KubeStub:
    """The API server of one test: ``with KubeStub() as api: api.put(node(...))``."""

    def __init__(self) -> None:
        import time
        self.clock = time.monotonic
        self.store = Store()
        self.requests: list[str] = []  # paths served, for tests that check what a client asked
        self.closed = False
        self._servers: list[_Server] = []
        self._netns_ports: dict[str, int] = {}
        self.port = self._serve(_Server(("127.0.0.1", 0), _Handler))

    # -- objects ---------------------------------------------------------------------------------
    def put(self, obj: dict) -> dict:
        return self.store.put(obj)

    def delete(self, plural: str, namespace: str, name: str) -> bool:
        return self.store.delete(plural, namespace, name)

    def get(self, plural: str, namespace: str, name: str) -> Optional[dict]:
        with self.store.changed:
            obj = self.store.objects.get((plural, namespace if KINDS[plural][2] else "", name))
        return copy.deepcopy(obj) if obj else None

    # -- where clients find it -------------------------------------------------------------------
    def url(self, netns: Optional[str] = None) -> str:
        return f"http://127.0.0.1:{self.listen_in(netns) if netns else self.port}"

    def listen_in(self, netns: str) -> int:
        """Serve on 127.0.0.1 inside the named network namespace too (lo is brought up)."""
        if netns not in self._netns_ports:
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            ours, theirs = socket.socketpair()
            with ours, theirs:
                subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _BIND_IN_NETNS,
                                str(theirs.fileno()), "0"], pass_fds=[theirs.fileno()], check=True, timeout=30)
                _, fds, _, _ = socket.recv_fds(ours, 16, 1)
            server = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = socket.socket(fileno=fds[0])
            server.server_address = server.socket.getsockname()
            self._netns_ports[netns] = self._serve(server)
        return self._netns_ports[netns]

    def kubeconfig(self, path: str, netns: Optional[str] = None) -> str:
        """A kubeconfig for the official client (plain HTTP, no credentials); returns path."""
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "stub",
               "clusters": [{"name": "stub", "cluster": {"server": self.url(netns)}}],
               "users": [{"name": "stub", "user": {}}],
               "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}]}
        with open(path, "w") as f:
            json.dump(doc, f)  # JSON is YAML
        return path

    def _serve(self, server: _Server) -> int:
        server.stub = self
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="kubestub", daemon=True).start()
        self._servers.append(server)
        return server.server_address[1]

    def close(self) -> None:
        self.closed = True
        with self.store.changed:
            self.store.changed.notify_all()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> "KubeStub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- objects as the API server would return them -----------------------------------------------------
def node(name: str, pod_cidrs: list[str] = (), addresses: list[str] = (), labels: Optional[dict] = None) -> dict:
    spec: dict = {}
    if pod_cidrs:
        spec = {"podCIDR": pod_cidrs[0], "podCIDRs": list(pod_cidrs)}
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {"kubernetes.io/hostname": name}},
            "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses] +
                       [{"type": "Hostname", "address": name}]}}


def namespace(name: str, labels: Optional[dict] = None) -> dict:
    return {"kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}}


def pod(ns: str, name: str, labels: Optional[dict] = None, ips: list[str] = (), node_name: str = "",
        ports: list[dict] = (), host_network: bool = False) -> dict:
    status: dict = {"phase": "Running"}
    if ips:
        status.update(podIP=ips[0], podIPs=[{"ip": ip} for ip in ips])
    return {"kind": "Pod", "metadata": {"namespace": ns, "name": name, "labels": dict(labels or {})},
            "spec": {"nodeName": node_name, "hostNetwork": host_network,
                     "containers": [{"name": "c", "image": "busybox", "ports": list(ports)}]},
            "status": status}


def service(ns: str, name: str, cluster_ips: list[str], ports: list[dict], selector: Optional[dict] = None,
            type_: str = "ClusterIP") -> dict:
    return {"kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"type": type_, "clusterIP": cluster_ips[0] if cluster_ips else "None",
                     "clusterIPs": list(cluster_ips), "ports": list(ports), "selector": dict(selector or {})}}


def endpoint_slice(ns: str, service_name: str, addresses: list[str], ports: list[dict],
                   address_type: str = "IPv4", name: str = "") -> dict:
    return {"kind": "EndpointSlice", "addressType": address_type,
            "metadata": {"namespace": ns, "name": name or f"{service_name}-slice",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            "ports": list(ports)}


def network_policy(ns: str, name: str, spec: dict) -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"namespace": ns, "name": name}, "spec": spec}
