/* The listening socket: where it is, whose it is, and how to stop taking
 * connections from it without losing one.
 *
 * Ours alone (fd 0: spawn-fcgi -n, or -F 1): it dies with this process, so
 * a connection still queued for accept() at exit would be reset (nginx
 * then answers a POST with 502: it never resends one). On a stop signal it
 * is shut down for reading: a unix socket then refuses new connects
 * (ECONNREFUSED: nginx tries the next server of the upstream) while
 * accept() still returns every queued connection, then EINVAL; the request
 * threads answer them all and end. A TCP listener's shutdown resets the
 * connections queued at that moment, so first we wait until accept()
 * emptied the queue; under steady load it may not be empty whenever we
 * look: after FCGI_TCP_DRAIN_US it is shut anyway, and what is queued then
 * is lost (measured: 6 of 4563 requests in 1 run of 3, wrk -c32, a TCP
 * pair). Unix sockets have no such risk.
 *
 * systemd's (socket activation with LISTEN_FDS=1 and LISTEN_PID, the
 * socket as fd 3): it outlives this process, and a restart's new process
 * accepts what queued meanwhile. Shutting it down would be permanent (a
 * socket cannot be reopened for reading), so on a stop signal it is left
 * alone: the threads stop accepting, finish what they have and end; new
 * connections wait in the queue for the next process. A thread blocked in
 * accept() notices the stop within FCGI_SHARED_TICK_S (SO_RCVTIMEO on the
 * listener makes accept() return EAGAIN). With StandardInput=socket
 * systemd passes the socket as fd 0 without saying so: it would be taken
 * for ours and shut down on the first stop; let systemd pass it as fd 3. */
#include "shop_fcgi.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* TCP: how long the queue may take to empty before the listener is shut anyway. */
#define FCGI_TCP_DRAIN_US   2000000
/* systemd's socket: how often a thread blocked in accept() looks for a stop. */
#define FCGI_SHARED_TICK_S  1

static int fcgi_listen_sock = 0;
static int fcgi_listen_is_shared = 0;
static int fcgi_listen_is_unix = 0;

/* 1 when fd is a listening stream socket. */
static int
fcgi_listen_check(int fd)
{
    int on = 0, type = 0;
    socklen_t len = sizeof(on), tlen = sizeof(type);

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on
           && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM;
}

/* 1 when fd is a unix socket */
static int
fcgi_listen_domain_unix(int fd)
{
    socklen_t len = sizeof(int);
    int domain = AF_UNIX;

    return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

int
fcgi_listen_open(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    struct timeval tick = { FCGI_SHARED_TICK_S, 0 };
    char *end = NULL;
    long n;

    /* sd_listen_fds(3): the variables are for us only if LISTEN_PID is our pid. */
    if (pid == NULL || fds == NULL || strtol(pid, &end, 10) != (long) getpid() || *end != '\0') {
        fcgi_listen_is_unix = fcgi_listen_domain_unix(0);
        return 0;                   /* fd 0, checked by libfcgi's FCGX_IsCGI() */
    }
    n = strtol(fds, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (*end != '\0' || n != 1) {
        fprintf(stderr, FCGI_PROG ": LISTEN_FDS=%s: shop-fcgi takes exactly one socket "
                "(one ListenStream=, Accept=no)\n", fds);
        return -1;
    }
    if (!fcgi_listen_check(3)) {
        fprintf(stderr, FCGI_PROG ": LISTEN_FDS=1, but fd 3 is not a listening stream socket "
                "(ListenStream=, Accept=no)\n");
        return -1;
    }
    fcgi_listen_sock = 3;
    fcgi_listen_is_shared = 1;
    fcgi_listen_is_unix = fcgi_listen_domain_unix(3);
    if (setsockopt(3, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick)) != 0) {
        fprintf(stderr, FCGI_PROG ": SO_RCVTIMEO on the listening socket: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int
fcgi_listen_fd(void)
{
    return fcgi_listen_sock;
}

int
fcgi_listen_shared(void)
{
    return fcgi_listen_is_shared;
}

int
fcgi_listen_unix(void)
{
    return fcgi_listen_is_unix;
}

void
fcgi_listen_accepted(int fd)
{
    struct timeval none = { 0, 0 };

    /* A TCP connection inherits the listener's SO_RCVTIMEO: its body may
     * take its time. */
    if (fcgi_listen_is_shared && fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    }
}

void
fcgi_listen_stop(void)
{
    struct pollfd pfd = { fcgi_listen_sock, POLLIN, 0 };
    int64_t until = fcgi_now_us() + FCGI_TCP_DRAIN_US;

    if (fcgi_listen_is_shared) {
        return;                     /* systemd keeps it for the next process */
    }
    if (!fcgi_listen_unix()) {
        while (poll(&pfd, 1, 0) > 0 && fcgi_now_us() < until) {
            nanosleep(&(struct timespec) { 0, 1000000 }, NULL);
        }
    }
    /* Wakes every thread blocked in accept() once the queue is empty. */
    shutdown(fcgi_listen_sock, SHUT_RD);
}
