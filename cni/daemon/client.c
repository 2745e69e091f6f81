/* The podwire and podwire-ipam executables, native: cni/daemon/client.py in C.
 *
 * A CNI call through podwire-cnid is a process start, one request and one answer.  A Python
 * interpreter's start (`python -I -S`, nothing imported) costs ~7 ms of CPU on a small node;
 * this costs well under 1 ms, which is what a burst of pods on two cores is bound by.
 *
 * Behaviour is client.py's, exactly (cni.install compiles this file and falls back to the
 * Python script when no C compiler is there):
 *   - stdin and the whole environment go to the daemon at PODWIRE_CNID_SOCKET (default
 *     /run/podwire/cni.sock; empty: no daemon), framed as cni/daemon/wire.py says;
 *   - its answer's stdout, stderr and exit code become ours, then the ack is sent;
 *   - when no daemon takes the request (none listening, the whole request not sent, a relative
 *     CNI_NETNS, it declines), the verbs run in process: this execs podwire's interpreter on
 *     client.py's in-process path, stdin replayed from memory;
 *   - when the daemon took the request and went away without answering, the same, as "lost"
 *     (an ADD then fails with TRY_AGAIN_LATER, as client.py does).
 *
 * Built by cni.install with -DPODWIRE_PLUGIN="podwire" -DPODWIRE_PYTHON="/.../python"
 * -DPODWIRE_CODE_DIR="/.../site-packages"; libc only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PODWIRE_PLUGIN
#error "PODWIRE_PLUGIN must be defined"
#endif
#ifndef PODWIRE_PYTHON
#error "PODWIRE_PYTHON must be defined"
#endif
#ifndef PODWIRE_CODE_DIR
#error "PODWIRE_CODE_DIR must be defined"
#endif

#define DEFAULT_SOCKET "/run/podwire/cni.sock"
#define MAX_FIELD (16u << 20) /* wire.MAX_FIELD: an answer's stdout or stderr */

extern char **environ;

struct buf {
    char *data;
    size_t len, cap;
};

static void die_oom(void) {
    static const char msg[] = "podwire: out of memory\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

static void put(struct buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data) die_oom();
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void put_field(struct buf *b, const void *data, size_t n) {
    unsigned char head[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                             (unsigned char)n};
    put(b, head, 4);
    put(b, data, n);
}

static void read_stdin(struct buf *b) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(0, chunk, sizeof chunk);
        if (n > 0) put(b, chunk, (size_t)n);
        else if (n < 0 && errno == EINTR) continue;
        else return; /* EOF, or no stdin at all (client.py: sys.stdin is None -> b"") */
    }
}

/* posix.environ's view: entries with a '=', the first of each name. */
static void encode_env(struct buf *b) {
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        size_t klen = (size_t)(eq - *e);
        int seen = 0;
        for (char **p = environ; p != e && !seen; p++)
            seen = strncmp(*p, *e, klen + 1) == 0;
        if (seen) continue;
        put(b, *e, strlen(*e));
        put(b, "", 1);
    }
}

/* int(float(value) * 1000) as client.py computes it; 0 when unset; -1 when not a decimal number
 * (client.py: ValueError, in process; it does not take strtod's hex or inf either). */
static int timeout_ms(long long *out) {
    const char *text = getenv("PODWIRE_CNI_TIMEOUT");
    *out = 0;
    if (!text) return 0;
    if (strpbrk(text, "xXpP")) return -1;
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r' || *end == '\f' || *end == '\v') end++;
    if (end == text || *end || errno == ERANGE || value != value || value > 9e15 || value < -9e15) return -1;
    *out = (long long)(value * 1000);
    return 0;
}

static int send_all(int fd, const char *data, size_t n) {
    while (n) {
        ssize_t sent = send(fd, data, n, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += sent;
        n -= (size_t)sent;
    }
    return 0;
}

static int recv_exact(int fd, char *data, size_t n) {
    while (n) {
        ssize_t got = recv(fd, data, n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        data += got;
        n -= (size_t)got;
    }
    return 0;
}

static int recv_field(int fd, struct buf *b) {
    unsigned char head[4];
    if (recv_exact(fd, (char *)head, 4)) return -1;
    size_t n = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
    if (n > MAX_FIELD) return -1;
    b->data = malloc(n ? n : 1);
    if (!b->data) die_oom();
    b->len = b->cap = n;
    return recv_exact(fd, b->data, n);
}

static int write_all(int fd, const char *data, size_t n) {
    while (n) {
        ssize_t done = write(fd, data, n);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += done;
        n -= (size_t)done;
    }
    return 0;
}

enum { IN_PROCESS = -1, LOST = -2 };

static char *program;                    /* argv[0], the in-process path's sys.argv[0] */
static void (*sigpipe_before)(int);      /* restored for the interpreter: exec keeps SIG_IGN */

/* client.py's _ask: the exit code, IN_PROCESS, or LOST. */
static int ask(const char *path, const struct buf *stdin_data) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t path_len = strlen(path);
    /* As Python's socket.connect: a path may fill sun_path without a terminator; longer is an
     * OSError (in process). */
    if (path_len > sizeof addr.sun_path) return IN_PROCESS;
    memcpy(addr.sun_path, path, path_len);
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
    long long timeout;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return IN_PROCESS;
    if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0 || timeout_ms(&timeout) < 0) {
        close(fd);
        return IN_PROCESS;
    }
    struct buf env = {0}, request = {0};
    char number[32];
    encode_env(&env);
    put(&request, "PWC1", 4);
    put_field(&request, PODWIRE_PLUGIN, sizeof PODWIRE_PLUGIN - 1);
    put_field(&request, env.data, env.len);
    put_field(&request, stdin_data->data, stdin_data->len);
    put_field(&request, number, (size_t)snprintf(number, sizeof number, "%lld", timeout));
    if (send_all(fd, request.data, request.len)) {
        close(fd);
        return IN_PROCESS; /* it never got the whole request: nothing was done */
    }
    char head[6];
    struct buf out = {0}, err = {0};
    if (recv_exact(fd, head, 6) || memcmp(head, "PWA1", 4) || recv_field(fd, &out) || recv_field(fd, &err)) {
        close(fd);
        return LOST;
    }
    if (head[4] != 0) { /* not ANSWERED: declined */
        close(fd);
        return IN_PROCESS;
    }
    if (write_all(1, out.data, out.len) || write_all(2, err.data, err.len)) {
        close(fd);
        return 1; /* no ack: the daemon undoes an ADD nobody will hear about */
    }
    (void)send_all(fd, "K", 1); /* only now: the runtime has our answer */
    close(fd);
    return (unsigned char)head[5];
}

/* The verbs in process: podwire's interpreter on client.py's run_in_process, with stdin
 * replayed from memory when it was read already (NULL: untouched, the interpreter reads it). */
static int run_in_process(const struct buf *stdin_data, int lost) {
    if (stdin_data) {
        int fd = memfd_create("podwire-stdin", MFD_CLOEXEC);
        if (fd < 0 || write_all(fd, stdin_data->data, stdin_data->len) || lseek(fd, 0, SEEK_SET) < 0 ||
            dup2(fd, 0) < 0) {
            perror("podwire: replaying stdin");
            return 1;
        }
        close(fd);
    }
    static const char code[] =
        "import sys\n"
        "sys.argv[0] = sys.argv.pop(1)\n"
        "sys.path.insert(0, sys.argv.pop(1))\n"
        "from cni.daemon.client import in_process_main\n"
        "sys.exit(in_process_main(sys.argv.pop(1), sys.argv.pop(1) == 'lost'))\n";
    char *argv[] = {PODWIRE_PYTHON, "-IS", "-c", (char *)code, program, PODWIRE_CODE_DIR,
                    PODWIRE_PLUGIN, lost ? "lost" : "-", NULL};
    signal(SIGPIPE, sigpipe_before == SIG_ERR ? SIG_DFL : sigpipe_before);
    execv(PODWIRE_PYTHON, argv);
    perror("podwire: exec " PODWIRE_PYTHON);
    return 1;
}

int main(int argc, char **argv) {
    (void)argc;
    program = argv[0] ? argv[0] : PODWIRE_PLUGIN;
    /* Python ignores SIGPIPE: a closed stdout is a write error (exit 1, no ack), not a kill. */
    sigpipe_before = signal(SIGPIPE, SIG_IGN);
    const char *path = getenv("PODWIRE_CNID_SOCKET");
    if (!path) path = DEFAULT_SOCKET;
    /* A relative CNI_NETNS means "relative to the caller's cwd", which the daemon does not share. */
    const char *netns = getenv("CNI_NETNS");
    if (!*path || (netns && *netns && *netns != '/')) return run_in_process(NULL, 0);
    struct buf stdin_data = {0};
    read_stdin(&stdin_data);
    int answer = ask(path, &stdin_data);
    if (answer >= 0) _exit(answer);
    const char *command = getenv("CNI_COMMAND");
    return run_in_process(&stdin_data, answer == LOST && command && strcmp(command, "ADD") == 0);
}
