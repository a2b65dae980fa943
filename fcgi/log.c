/* Operational log lines on stderr, JSON like the request lines, so one
 * collector reads both. */
#include "shop_fcgi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void
fcgi_log_write(const char *line, size_t len)
{
    ssize_t n;

    /* One write(2) per line: O_APPEND files and pipes keep it whole (pipes up
     * to PIPE_BUF), so threads never interleave inside a line. */
    do {
        n = write(STDERR_FILENO, line, len);
    } while (n < 0 && errno == EINTR);
}

static const char *
fcgi_log_level_name(fcgi_log_level level)
{
    switch (level) {
    case FCGI_LOG_INFO:  return "info";
    case FCGI_LOG_WARN:  return "warn";
    case FCGI_LOG_ERROR: return "error";
    }
    return "error";
}

void
fcgi_log(fcgi_log_level level, const char *fmt, ...)
{
    static const char hex[] = "0123456789abcdef";
    char msg[1024], line[2400];
    struct tm tm;
    int64_t ms = fcgi_wall_ms();
    time_t secs = (time_t) (ms / 1000);
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    gmtime_r(&secs, &tm);
    n = (size_t) snprintf(line, sizeof(line),
                          "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\","
                          "\"msg\":\"",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, (int) (ms % 1000), fcgi_log_level_name(level));

    /* Escaped control characters take 6 bytes: stop short of the end. */
    for (const char *p = msg; *p != '\0'; p++) {
        unsigned char ch = (unsigned char) *p;

        if (ch == '"' || ch == '\\') {
            line[n++] = '\\';
            line[n++] = (char) ch;
        } else if (ch < 0x20) {
            memcpy(line + n, "\\u00", 4);
            line[n + 4] = hex[ch >> 4];
            line[n + 5] = hex[ch & 15];
            n += 6;
        } else {
            line[n++] = (char) ch;
        }
        if (n > sizeof(line) - 16) {
            break;
        }
    }
    memcpy(line + n, "\"}\n", 3);
    fcgi_log_write(line, n + 3);
}
