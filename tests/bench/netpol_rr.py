"""Request/response latency between two pods (run inside their namespaces; stdlib only).

    netpol_rr.py serve PORT
    netpol_rr.py measure HOST PORT ROUNDS CONNECTS   -> JSON {"rr": [...us], "crr": [...us]}

rr: 1-byte round trips on one connection (netperf TCP_RR); crr: a new connection
per round trip (TCP_CRR), which is where per-connection rule walks show.
"""
import json
import socket
import sys
import threading
import time


def serve(port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)

    def echo(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)

    while True:
        threading.Thread(target=echo, args=(srv.accept()[0],), daemon=True).start()


def measure(host: str, port: int, rounds: int, connects: int) -> dict:
    rr = []
    with socket.create_connection((host, port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            t = time.perf_counter_ns()
            conn.sendall(b"x")
            conn.recv(1)
            rr.append((time.perf_counter_ns() - t) / 1000)
    crr = []
    for _ in range(connects):
        t = time.perf_counter_ns()
        with socket.create_connection((host, port)) as conn:
            conn.sendall(b"x")
            conn.recv(1)
        crr.append((time.perf_counter_ns() - t) / 1000)
    return {"rr": rr, "crr": crr}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
