/* Stop signals. The handler only sets a flag and wakes the threads that
 * poll() the stop pipe; the main thread then stops taking connections
 * without losing one (listen.c), and in-flight requests finish on their
 * own sockets.
 *
 * libfcgi's own handler would set its shutdownPending flag, and libfcgi
 * 2.4.2's accept loop then stops accepting at once: whatever waits in the
 * accept backlog is reset when the process exits (measured: 6 of 6 queued
 * requests, and 502s through nginx for POSTs, which it never retries on
 * another server). So ours is installed before FCGX_Init() (libfcgi leaves
 * alone signals that are no longer SIG_DFL) and never calls
 * FCGX_ShutdownPending(). */
#include "shop_fcgi.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t fcgi_stop;

/* A pipe nobody reads: one byte makes it readable for every poll() at once. */
static int fcgi_stop_pipe[2] = { -1, -1 };

static void
fcgi_signal_stop(int signo)
{
    int saved = errno;
    ssize_t rc;

    (void) signo;
    fcgi_stop = 1;
    if (fcgi_stop_pipe[1] >= 0) {
        rc = write(fcgi_stop_pipe[1], "x", 1);
        (void) rc;
    }
    errno = saved;
}

void
fcgi_signals_install(void)
{
    struct sigaction sa;

    if (fcgi_stop_pipe[0] < 0 && pipe2(fcgi_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fcgi_stop_pipe[0] = fcgi_stop_pipe[1] = -1;
    }

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = fcgi_signal_stop;
    /* Should it land in a request thread after all, its read() goes on. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* A client gone mid-response is a failed write, not a dead process. */
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

int
fcgi_stopping(void)
{
    return fcgi_stop;
}

int
fcgi_stop_fd(void)
{
    return fcgi_stop_pipe[0];
}

int
fcgi_stop_wait(int64_t ms)
{
    struct pollfd pfd = { fcgi_stop_pipe[0], POLLIN, 0 };
    int64_t until = fcgi_now_us() + ms * 1000, left;

    while (!fcgi_stop && (left = until - fcgi_now_us()) > 0) {
        if (pfd.fd < 0) {
            poll(NULL, 0, (int) (left > 100000 ? 100 : (left + 999) / 1000));
        } else {
            poll(&pfd, 1, (int) ((left + 999) / 1000));
        }
    }
    return fcgi_stop;
}
