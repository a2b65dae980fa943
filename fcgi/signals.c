/* Graceful stop. libfcgi only sets a flag on SIGTERM, which threads blocked
 * in accept() never see; so our handler also shuts the listening socket
 * down, which wakes every accept() with an error. Requests in flight use
 * their own sockets and finish normally. Installed before FCGX_Init(), since
 * libfcgi leaves alone signals that are no longer SIG_DFL. */
#include "shop_fcgi.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include <fcgiapp.h>

static volatile sig_atomic_t fcgi_stop;

static void
fcgi_signal_stop(int signo)
{
    (void) signo;
    fcgi_stop = 1;
    FCGX_ShutdownPending();
    shutdown(0, SHUT_RDWR);
}

void
fcgi_signals_install(void)
{
    struct sigaction sa;

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
