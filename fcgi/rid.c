/* Request ids: xoshiro256** per thread, seeded from getrandom(). Fast and
 * unique enough to correlate logs; not for secrets. */
#include "shop_fcgi.h"

#include <sys/random.h>
#include <time.h>

static uint64_t
fcgi_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void
fcgi_rid_seed(fcgi_rid *r)
{
    uint64_t seed;

    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t) sizeof(seed)) {
        /* No entropy source: distinct per thread and start is enough here. */
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec
               + (uint64_t) (uintptr_t) r;
    }
    /* splitmix64 spreads one seed over the state, never all zero. */
    for (int i = 0; i < 4; i++) {
        r->s[i] = fcgi_splitmix64(&seed);
    }
}

static uint64_t
fcgi_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
fcgi_rid_u64(fcgi_rid *r)
{
    uint64_t *s = r->s;
    uint64_t result = fcgi_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = fcgi_rotl(s[3], 45);
    return result;
}

void
fcgi_rid_next(fcgi_rid *r, char out[33])
{
    static const char hex[] = "0123456789abcdef";

    for (int half = 0; half < 2; half++) {
        uint64_t v = fcgi_rid_u64(r);

        for (int i = 0; i < 16; i++) {
            out[half * 16 + i] = hex[(v >> (60 - 4 * i)) & 15];
        }
    }
    out[32] = '\0';
}
