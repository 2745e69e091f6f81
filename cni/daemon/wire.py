"""The daemon's wire format: one request and one answer per connection.

It imports nothing, not even ``struct``: the thin client loads it on every
CNI invocation, and each import there costs the runtime time per pod.

    request = b"PWC1" field(plugin) field(env) field(stdin) field(timeout_ms)
    answer  = b"PWA1" status code field(stdout) field(stderr)   (1 byte each)
    ack     = b"K"  the client wrote the answer out (the daemon undoes an ADD
            whose client never acknowledges: it died, the runtime sees failure)
    field   = length (4 bytes, big-endian) then that many bytes
    env     = b"NAME=value\\0" per variable, as the client's environ holds them

``status`` ANSWERED: ``code`` is the exit code, stdout/stderr the plugin's.
DECLINED: the daemon cannot serve this caller identically (e.g. another
network namespace); the client runs the request in process.
"""

DEFAULT_SOCKET = "/run/podwire/cni.sock"
SOCKET_ENV = b"PODWIRE_CNID_SOCKET"  # "" disables the daemon (set for plugins it execs)
TIMEOUT_ENV = b"PODWIRE_CNI_TIMEOUT"  # seconds; the daemon's default applies when unset

REQUEST = b"PWC1"
ANSWER = b"PWA1"
ACK = b"K"
ANSWERED = 0
DECLINED = 1
# What a request's fields may hold; bounds what a bad peer makes a worker buffer (at most
# ~5 MiB a connection).  A plugin name is a word, the environment a few KiB, a CNI config with
# its prevResult kilobytes (4 MiB leaves room for any real conflist), the timeout a number.
MAX_PLUGIN, MAX_ENV, MAX_STDIN, MAX_TIMEOUT = 4 << 10, 1 << 20, 4 << 20, 32
MAX_FIELD = 16 << 20  # an answer's fields (stdout/stderr of one plugin run)


def field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def encode_env(environ) -> bytes:
    """``environ``: bytes -> bytes (``os.environb`` / ``posix.environ``)."""
    return b"".join(k + b"=" + v + b"\0" for k, v in environ.items())


def decode_env(data: bytes) -> dict:
    out = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return out


def encode_request(plugin: bytes, env: bytes, stdin: bytes, timeout_ms: int) -> bytes:
    return REQUEST + field(plugin) + field(env) + field(stdin) + field(b"%d" % timeout_ms)


def encode_answer(status: int, code: int, stdout: bytes, stderr: bytes) -> bytes:
    return ANSWER + bytes((status, code & 0xFF)) + field(stdout) + field(stderr)


def recv_exact(sock, n: int) -> bytes:
    """Exactly ``n`` bytes; EOFError if the peer closes first."""
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_field(sock, limit: int = MAX_FIELD) -> bytes:
    size = int.from_bytes(recv_exact(sock, 4), "big")
    if size > limit:
        raise ValueError(f"field of {size} bytes is too large (at most {limit})")
    return recv_exact(sock, size)


def recv_request(sock) -> tuple:
    """(plugin, env dict, stdin, timeout_ms) from a client."""
    if recv_exact(sock, 4) != REQUEST:
        raise ValueError("not a podwire-cnid request")
    plugin, env, stdin, timeout = (recv_field(sock, limit)
                                   for limit in (MAX_PLUGIN, MAX_ENV, MAX_STDIN, MAX_TIMEOUT))
    return plugin.decode(), decode_env(env), stdin, int(timeout or b"0")


def recv_answer(sock) -> tuple:
    """(status, code, stdout, stderr) from the daemon."""
    head = recv_exact(sock, 6)
    if head[:4] != ANSWER:
        raise ValueError("not a podwire-cnid answer")
    return head[4], head[5], recv_field(sock), recv_field(sock)
