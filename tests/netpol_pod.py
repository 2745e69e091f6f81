"""A test pod's workload, run inside its network namespace (standard library only).

Serves TCP and UDP echo on ports 80 and 81 (IPv4 and IPv6), and SCTP on the same
ports.  Where the kernel has SCTP sockets (the VM of `make vm-test`), SCTP is a real
association: listening sockets, and a probe is a connect().  Where it has none (the
development host: no modules), SCTP travels as real SCTP packets through raw
IPPROTO_SCTP sockets: INIT answered with INIT-ACK, what an SCTP stack sends first.

Reads JSON commands on stdin, one per line, answers one JSON line each:
  {"op": "probe", "timeout": 1.0, "probes": [[id, dst, "TCP"|"UDP"|"SCTP", port], ...]}
      -> {"results": {id: true|false}}   (true: the connection/exchange completed)
  {"op": "open", "id": k, "dst": ip, "port": 80}  -> {"ok": bool}    (keep a TCP connection)
  {"op": "echo", "id": k, "timeout": 1.0}         -> {"ok": bool}    (round trip on it)
  {"op": "send_udp", "dst": ip, "port": 80, "sport": 0} -> {"ok": true}  (one datagram, no wait)
  {"op": "quit"}
"""
from __future__ import annotations

import json
import os
import random
import socket
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

PORTS = (80, 81)
IPPROTO_SCTP = 132
_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sctp_packet(sport: int, dport: int, vtag: int, chunk_type: int, init_tag: int) -> bytes:
    chunk = struct.pack("!BBHIIHHI", chunk_type, 0, 20, init_tag, 65535, 1, 1, 1)
    body = struct.pack("!HHII", sport, dport, vtag, 0) + chunk
    return body[:8] + struct.pack("<I", crc32c(body)) + body[12:]


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def sctp_payload(family: int, data: bytes) -> bytes:
    """Raw IPv4 sockets deliver the IP header too; IPv6 ones do not."""
    return data[(data[0] & 0xF) * 4:] if family == socket.AF_INET else data


# -- servers ----------------------------------------------------------------------------------------
def serve_tcp(port: int) -> None:
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    srv.listen(512)

    def echo(conn):
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def serve_udp(port: int) -> None:
    srv = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    while True:
        data, peer = srv.recvfrom(2048)
        srv.sendto(data, peer)


def sctp_sockets() -> bool:
    """Whether this kernel has SCTP sockets (a module it can load, or built in)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


HAVE_SCTP = sctp_sockets()


def serve_sctp_association(port: int) -> None:
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, IPPROTO_SCTP)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", port))
    srv.listen(512)
    while True:
        conn, _ = srv.accept()
        conn.close()  # the association was made: that is the probe's answer


def serve_sctp(family: int) -> None:
    raw = socket.socket(family, socket.SOCK_RAW, IPPROTO_SCTP)
    while True:
        data, peer = raw.recvfrom(2048)
        pkt = sctp_payload(family, data)
        if len(pkt) < 20 or pkt[12] != 1:  # not an INIT
            continue
        sport, dport = struct.unpack("!HH", pkt[:4])
        if dport in PORTS:
            init_tag = struct.unpack("!I", pkt[16:20])[0]
            raw.sendto(sctp_packet(dport, sport, init_tag, 2, random.getrandbits(32)), (peer[0], 0))


# -- probes -----------------------------------------------------------------------------------------
def probe_tcp(dst: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((dst, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe_udp(dst: str, port: int, timeout: float) -> bool:
    with socket.socket(family_of(dst), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(b"probe", (dst, port))
            data, _ = s.recvfrom(64)
            return data == b"probe"
        except OSError:
            return False


def probe_sctp_association(dst: str, port: int, timeout: float) -> bool:
    with socket.socket(family_of(dst), socket.SOCK_STREAM, IPPROTO_SCTP) as s:
        s.settimeout(timeout)
        try:
            s.connect((dst, port))  # returns once INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK passed
            return True
        except OSError:
            return False


def probe_sctp(dst: str, port: int, timeout: float) -> bool:
    family = family_of(dst)
    sport, tag = random.randint(20000, 60000), random.getrandbits(32)
    with socket.socket(family, socket.SOCK_RAW, IPPROTO_SCTP) as s:
        s.settimeout(timeout)
        s.sendto(sctp_packet(sport, port, 0, 1, tag), (dst, 0))
        try:
            while True:
                data, peer = s.recvfrom(2048)
                pkt = sctp_payload(family, data)
                if len(pkt) >= 16 and pkt[12] == 2 and struct.unpack("!HHI", pkt[:8]) == (port, sport, tag):
                    return True
        except OSError:
            return False


PROBES = {"TCP": probe_tcp, "UDP": probe_udp, "SCTP": probe_sctp_association if HAVE_SCTP else probe_sctp}


def main() -> None:
    for port in PORTS:
        threading.Thread(target=serve_tcp, args=(port,), daemon=True).start()
        threading.Thread(target=serve_udp, args=(port,), daemon=True).start()
        if HAVE_SCTP:
            threading.Thread(target=serve_sctp_association, args=(port,), daemon=True).start()
    if not HAVE_SCTP:
        for family in (socket.AF_INET, socket.AF_INET6):
            threading.Thread(target=serve_sctp, args=(family,), daemon=True).start()
    pool = ThreadPoolExecutor(max_workers=96)
    conns: dict[str, socket.socket] = {}
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid(), "sctp": "sockets" if HAVE_SCTP else "raw"}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        if op == "probe":
            futures = {pid: pool.submit(PROBES[proto], dst, port, cmd.get("timeout", 1.0))
                       for pid, dst, proto, port in cmd["probes"]}
            reply = {"results": {pid: f.result() for pid, f in futures.items()}}
        elif op == "open":
            try:
                conns[cmd["id"]] = socket.create_connection((cmd["dst"], cmd["port"]), timeout=2)
                reply = {"ok": True}
            except OSError:
                reply = {"ok": False}
        elif op == "echo":
            conn = conns[cmd["id"]]
            conn.settimeout(cmd.get("timeout", 1.0))
            try:
                conn.sendall(b"x")
                reply = {"ok": conn.recv(1) == b"x"}
            except OSError:
                reply = {"ok": False}
        elif op == "send_udp":
            with socket.socket(family_of(cmd["dst"]), socket.SOCK_DGRAM) as s:
                if cmd.get("sport"):
                    s.bind(("", cmd["sport"]))
                s.sendto(b"first", (cmd["dst"], cmd["port"]))
            reply = {"ok": True}
        else:
            reply = {"error": f"unknown op {op}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
