/* tests/bench/sse_load.c: N SSE subscribers on one epoll loop, for the
 * event benchmark (tests/bench/events).
 *
 *   sse_load HOST PORT PATH N SECONDS [REPORT_FILE]
 *
 * Opens N connections to GET PATH (HTTP/1.1), counts for each the events
 * whose data carries "t":<microseconds since the epoch> (the generator
 * stamps the time of the change with clock_timestamp()), and records the
 * delay from that stamp to the arrival in a histogram of 0.1 ms buckets.
 * The chunked framing is taken apart on the way. After all N answered 200
 * it writes "ready" to stdout, then runs SECONDS more (SIGUSR1: measure from
 * now on: the histogram and counters start again; SIGTERM/SIGINT: stop) and
 * prints one line:
 *
 *   conns=N ok=N200 closed=C events=E per_conn_min=... per_conn_max=...
 *   p50_ms=... p99_ms=... max_ms=...
 *
 * Built with `cc -O2 -o sse_load sse_load.c`; needs ulimit -n above N (it
 * raises its own soft limit to the hard one). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS   100000              /* 0.1 ms each: up to 10 s */
#define OVERFLOW  BUCKETS

enum { HEAD, SIZE, SIZE_LF, DATA, DATA_CR, DATA_LF, RAW };

typedef struct {
    int      fd;
    uint8_t  state;
    uint8_t  head_match;              /* of "\r\n\r\n" */
    uint8_t  pat;                     /* of "\"t\":" */
    uint8_t  in_num;
    uint8_t  status_ok;
    uint8_t  status_bad;
    uint8_t  closed;
    uint16_t status_pos;
    int64_t  chunk;
    int64_t  num;
    uint32_t events;
} conn;

static volatile sig_atomic_t stop, reset;
static uint64_t hist[BUCKETS + 1];
static uint64_t nlat;
static double   maxlat;

static void on_signal(int s) { if (s == SIGUSR1) reset = 1; else stop = 1; }

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
record(int64_t t)
{
    double ms = (double) (now_us() - t) / 1000.0;
    long b = (long) (ms * 10);

    if (b < 0) b = 0;
    if (b > OVERFLOW) b = OVERFLOW;
    hist[b]++;
    nlat++;
    if (ms > maxlat) maxlat = ms;
}

/* SSE payload bytes: finds "t":<digits> (memchr from quote to quote: the
 * client must not be what the benchmark measures) */
static void
payload(conn *c, const char *p, size_t n)
{
    static const char pat[] = "\"t\":";
    const char *end = p + n;

    while (p < end) {
        if (c->in_num) {
            if (*p >= '0' && *p <= '9') {
                c->num = c->num * 10 + (*p++ - '0');
                continue;
            }
            c->in_num = 0;
            record(c->num);
            c->events++;
            continue;
        }
        if (c->pat == 0) {
            const char *q = memchr(p, '"', (size_t) (end - p));
            if (q == NULL) {
                return;
            }
            p = q + 1;
            c->pat = 1;
            continue;
        }
        if (*p == pat[c->pat]) {
            p++;
            if (++c->pat == 4) {
                c->pat = 0;
                c->in_num = 1;
                c->num = 0;
            }
        } else {
            c->pat = 0;             /* *p may start the pattern again */
        }
    }
}


static int
hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* the response bytes: head, then chunks (or raw, without chunked) */
static void
input(conn *c, const char *p, size_t n)
{
    static const char end[] = "\r\n\r\n";
    size_t i = 0;

    while (i < n) {
        char ch = p[i];

        switch (c->state) {
        case HEAD:
            /* "HTTP/1.1 200" */
            if (c->status_pos < 12) {
                if (c->status_pos >= 9 && ch != "HTTP/1.1 200"[c->status_pos]) {
                    c->status_bad = 1;
                }
                if (c->status_pos == 11) {
                    c->status_ok = !c->status_bad;
                }
                c->status_pos++;
            }
            c->head_match = (ch == end[c->head_match]) ? c->head_match + 1 : (ch == '\r');
            i++;
            if (c->head_match == 4) {
                c->state = SIZE;       /* the servers here answer chunked */
                c->chunk = 0;
            }
            break;
        case SIZE:
            if (ch == '\r') {
                c->state = SIZE_LF;
            } else if (hexval(ch) >= 0) {
                c->chunk = c->chunk * 16 + hexval(ch);
            }
            i++;
            break;
        case SIZE_LF:
            i++;
            c->state = c->chunk ? DATA : DATA_CR;   /* 0: the last chunk */
            break;
        case DATA: {
            size_t take = n - i < (size_t) c->chunk ? n - i : (size_t) c->chunk;
            payload(c, p + i, take);
            c->chunk -= (int64_t) take;
            i += take;
            if (c->chunk == 0) c->state = DATA_CR;
            break;
        }
        case DATA_CR:
            i++;
            c->state = DATA_LF;
            break;
        case DATA_LF:
            i++;
            c->state = SIZE;
            c->chunk = 0;
            break;
        default:
            payload(c, p + i, n - i);
            i = n;
        }
    }
}

static double
pct(double q)
{
    uint64_t want = (uint64_t) (q * (double) nlat), seen = 0;

    if (nlat == 0) return 0;
    for (long b = 0; b <= OVERFLOW; b++) {
        seen += hist[b];
        if (seen > want) return (double) b / 10.0;
    }
    return (double) OVERFLOW / 10.0;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct rlimit rl;
    struct epoll_event ev, evs[1024];
    char req[512], buf[65536];
    int ep, n, secs, reqlen, ready_said = 0;
    conn *cs;
    int64_t t_end;
    FILE *out = stdout;

    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH N SECONDS [REPORT_FILE]\n", argv[0]);
        return 2;
    }
    n = atoi(argv[4]);
    secs = atoi(argv[5]);
    if (argc > 6 && (out = fopen(argv[6], "w")) == NULL) {
        perror(argv[6]);
        return 1;
    }

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGUSR1, on_signal);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
                      argv[3], argv[1]);

    cs = calloc((size_t) n, sizeof(conn));
    ep = epoll_create1(0);

    /* connect in steps, so the server's accept queue keeps up */
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

        if (fd < 0) {
            perror("socket");
            return 1;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
            perror("connect");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (write(fd, req, (size_t) reqlen) != reqlen) {
            perror("write");
            return 1;
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        cs[i].fd = fd;
        ev.events = EPOLLIN;
        ev.data.ptr = &cs[i];
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);

        if (i % 500 == 499) {
            /* drain what came so far */
            int k = epoll_wait(ep, evs, 1024, 0);
            for (int j = 0; j < k; j++) {
                conn *c = evs[j].data.ptr;
                ssize_t r = read(c->fd, buf, sizeof(buf));
                if (r > 0) input(c, buf, (size_t) r);
            }
        }
    }

    t_end = 0;
    while (!stop) {
        int k = epoll_wait(ep, evs, 1024, 200);

        for (int j = 0; j < k; j++) {
            conn *c = evs[j].data.ptr;

            for (;;) {
                ssize_t r = read(c->fd, buf, sizeof(buf));
                if (r > 0) {
                    input(c, buf, (size_t) r);
                    if ((size_t) r < sizeof(buf)) break;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    c->closed = 1;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                }
                break;
            }
        }

        if (!ready_said) {
            int done = 0;
            for (int i = 0; i < n; i++) done += cs[i].state != HEAD || cs[i].closed;
            if (done == n) {
                int good = 0;
                for (int i = 0; i < n; i++) good += cs[i].status_ok && !cs[i].closed;
                printf("ready %d of %d\n", good, n);
                fflush(stdout);
                ready_said = 1;
                t_end = now_us() + (int64_t) secs * 1000000;
            }
        }
        if (reset) {
            reset = 0;
            memset(hist, 0, sizeof(hist));
            nlat = 0;
            maxlat = 0;
            for (int i = 0; i < n; i++) cs[i].events = 0;
            t_end = now_us() + (int64_t) secs * 1000000;
        }
        if (t_end && now_us() > t_end) break;
    }

    {
        uint32_t mn = UINT32_MAX, mx = 0;
        int ok = 0, closed = 0;
        uint64_t total = 0;

        for (int i = 0; i < n; i++) {
            ok += cs[i].status_ok;
            closed += cs[i].closed;
            total += cs[i].events;
            if (cs[i].events < mn) mn = cs[i].events;
            if (cs[i].events > mx) mx = cs[i].events;
        }
        fprintf(out, "conns=%d ok=%d closed=%d events=%llu per_conn_min=%u per_conn_max=%u "
                "p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", n, ok, closed, (unsigned long long) total,
                mn, mx, pct(0.50), pct(0.99), maxlat);
    }
    if (out != stdout) fclose(out);
    return 0;
}
