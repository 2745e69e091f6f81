"""Servers and clients for the Service tests, run in a pod's namespace (standard library only).

Servers (print one line when ready, then serve until killed):
  whoami KEY    TCP 82: answer every connection with KEY
  dns KEY       UDP and TCP 53: answer a DNS-like query (the same id, QR set, KEY as payload;
                TCP framed with the 2-byte length as DNS over TCP is)
Clients (print one JSON answer):
  connect DST PORT N TIMEOUT     N TCP connections in parallel -> {"answers": [KEY or null, ...]}
  query DST PORT PROTO TIMEOUT   one DNS-like query -> {"answer": KEY or null}
"""
from __future__ import annotations

import json
import socket
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor


def whoami(key: str) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 82))
    srv.listen(256)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(key.encode())


def _answer(query: bytes, key: str) -> bytes:
    ident = query[:2] if len(query) >= 2 else b"\0\0"
    return ident + struct.pack("!H", 0x8180) + key.encode()


def dns(key: str) -> None:
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)  # both families
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.bind(("::", 53))
    tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("::", 53))
    tcp.listen(64)

    def serve_tcp():
        while True:
            conn, _ = tcp.accept()
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                reply = _answer(conn.recv(length), key)
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    threading.Thread(target=serve_tcp, daemon=True).start()
    print("ready", flush=True)
    while True:
        data, peer = udp.recvfrom(512)
        udp.sendto(_answer(data, key), peer)


def connect_once(dst: str, port: int, timeout: float):
    try:
        with socket.create_connection((dst, port), timeout=timeout) as s:
            return s.recv(64).decode() or None
    except OSError:
        return None


def query(dst: str, port: int, proto: str, timeout: float):
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01"
    try:
        if proto == "UDP":
            with socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(q, (dst, port))
                data = s.recv(512)
        else:
            with socket.create_connection((dst, port), timeout=timeout) as s:
                s.sendall(struct.pack("!H", len(q)) + q)
                length = struct.unpack("!H", s.recv(2))[0]
                data = s.recv(length)
    except OSError:
        return None
    return data[4:].decode() if data[:2] == q[:2] else None


def main(argv: list[str]) -> None:
    op = argv[0]
    if op == "whoami":
        whoami(argv[1])
    elif op == "dns":
        dns(argv[1])
    elif op == "connect":
        dst, port, n, timeout = argv[1], int(argv[2]), int(argv[3]), float(argv[4])
        with ThreadPoolExecutor(max_workers=n) as pool:
            answers = list(pool.map(lambda _: connect_once(dst, port, timeout), range(n)))
        print(json.dumps({"answers": answers}))
    elif op == "query":
        print(json.dumps({"answer": query(argv[1], int(argv[2]), argv[3], float(argv[4]))}))


if __name__ == "__main__":
    main(sys.argv[1:])
