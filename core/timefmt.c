#include "timefmt.h"

#include <string.h>
#include <time.h>

void
shop_buf_add_ts(shop_buf *b, const char *pg)
{
    char out[26];
    size_t n = strlen(pg);

    /* "YYYY-MM-DD HH:MM:SS" then an optional fraction, then the zone. */
    if (n < 19 || pg[10] != ' ') {
        shop_buf_add_json(b, pg, n);
        return;
    }
    memcpy(out, pg, 19);
    out[10] = 'T';
    out[19] = '.';
    size_t d = 0;
    if (pg[19] == '.') {
        for (size_t i = 20; d < 3 && pg[i] >= '0' && pg[i] <= '9'; i++, d++) {
            out[20 + d] = pg[i];
        }
    }
    for (; d < 3; d++) {
        out[20 + d] = '0';
    }
    out[23] = 'Z';
    shop_buf_addc(b, '"');
    shop_buf_add(b, out, 24);
    shop_buf_addc(b, '"');
}

void
shop_buf_add_ms(shop_buf *b, int64_t ms)
{
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    char out[32];

    gmtime_r(&secs, &tm);
    size_t n = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
    shop_buf_add(b, out, n);
    shop_buf_addc(b, '.');
    shop_buf_addc(b, (char) ('0' + ms / 100 % 10));
    shop_buf_addc(b, (char) ('0' + ms / 10 % 10));
    shop_buf_addc(b, (char) ('0' + ms % 10));
    shop_buf_addc(b, 'Z');
}
