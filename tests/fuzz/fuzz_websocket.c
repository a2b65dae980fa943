/* The WebSocket frame parser (shop_ws_parse) and unmasking
 * (shop_ws_unmask) over arbitrary client byte streams, fed whole and fed
 * in small pieces as a socket would deliver them. Promises checked:
 * - fed in pieces, the parser sees the same frames (header, payload) and
 *   the same protocol error as fed all at once;
 * - any prefix of a complete header asks for more bytes (0), never a
 *   different answer; a parsed frame obeys the limits (masked, control
 *   frames final and <= 125 bytes, data frames <= max_payload);
 * - unmasking a payload in pieces (with their offsets) equals unmasking it
 *   in one go;
 * - a header made by shop_ws_header(), masked, parses back to its length.
 *
 * Input: byte 0 picks max_payload, byte 1 seeds the piece sizes, the rest
 * is the stream. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 64

typedef struct {
    int      n;
    int      err;          /* 1: ended in a protocol error */
    unsigned close_code;
    shop_ws_frame f[MAX_FRAMES];
    uint32_t sum[MAX_FRAMES];   /* a checksum of the unmasked payload */
} outcome;

static uint32_t
fold(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static void
check_frame(const shop_ws_frame *f, uint64_t max)
{
    FZ_ASSERT(f->header_len >= 6 && f->header_len <= 14, "header_len %zu", f->header_len);
    FZ_ASSERT(f->opcode <= 2 || (f->opcode >= 8 && f->opcode <= 10), "opcode %d", f->opcode);
    if (f->opcode >= 8) {
        FZ_ASSERT(f->fin && f->len <= 125, "control frame fin %d len %llu", f->fin,
                  (unsigned long long) f->len);
    }
    FZ_ASSERT(f->len <= max, "len %llu over %llu", (unsigned long long) f->len, (unsigned long long) max);
}

/* Parses the stream as it arrives in pieces of the given sizes (size 0:
 * all at once). The receive buffer is malloc'ed to exactly what has
 * arrived, so a read past it is caught. */
static void
run(const uint8_t *s, size_t n, uint64_t max, uint32_t seed, outcome *o)
{
    size_t arrived = 0, pos = 0;
    memset(o, 0, sizeof(*o));

    while (o->n < MAX_FRAMES) {
        /* Header: ask with what we have; on 0 take the next piece. */
        shop_ws_frame f;
        unsigned code = 0;
        const char *why = NULL;
        int rc;
        for (;;) {
            size_t have = arrived - pos;
            unsigned char *buf = malloc(have ? have : 1);
            if (have) {
                memcpy(buf, s + pos, have);
            }
            rc = shop_ws_parse(buf, have, max, &f, &code, &why);
            free(buf);
            if (rc != 0 || arrived == n) {
                break;
            }
            size_t piece = seed ? 1 + (seed = seed * 1103515245u + 12345u, (seed >> 16) % 13) : n;
            arrived = arrived + piece > n ? n : arrived + piece;
        }
        if (rc == 0) {
            return;           /* the stream ends inside a header */
        }
        if (rc < 0) {
            FZ_ASSERT(why != NULL && (code == SHOP_WS_CLOSE_PROTOCOL || code == SHOP_WS_CLOSE_TOO_BIG),
                      "error without a reason or with close code %u", code);
            o->err = 1;
            o->close_code = code;
            return;
        }
        check_frame(&f, max);
        /* Every shorter prefix of this header asks for more. */
        for (size_t k = 0; k < f.header_len; k++) {
            shop_ws_frame g;
            unsigned c2 = 0;
            const char *w2 = NULL;
            unsigned char *buf = malloc(k ? k : 1);
            memcpy(buf, s + pos, k);
            int r2 = shop_ws_parse(buf, k, max, &g, &c2, &w2);
            free(buf);
            FZ_ASSERT(r2 == 0, "a %zu-byte prefix of a %zu-byte header gave %d (%s)", k, f.header_len,
                      r2, w2 ? w2 : "");
        }
        pos += f.header_len;
        /* The payload, unmasked piece by piece as it arrives. */
        uint64_t left = f.len, off = 0;
        uint32_t h = 2166136261u;
        while (left > 0) {
            if (arrived == pos) {
                if (arrived == n) {
                    o->f[o->n] = f;
                    o->sum[o->n++] = h;
                    return;   /* the stream ends inside the payload */
                }
                size_t piece = seed ? 1 + (seed = seed * 1103515245u + 12345u, (seed >> 16) % 13) : n;
                arrived = arrived + piece > n ? n : arrived + piece;
            }
            size_t take = arrived - pos < left ? arrived - pos : (size_t) left;
            unsigned char *p = malloc(take);
            memcpy(p, s + pos, take);
            shop_ws_unmask(p, take, f.mask, off);
            h = fold(h, p, take);
            free(p);
            pos += take;
            off += take;
            left -= take;
        }
        o->f[o->n] = f;
        o->sum[o->n++] = h;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t maxes[] = { 125, 126, 65535, 65536, 1 << 20, UINT64_MAX };
    fz_in in = { data, size };
    uint64_t max = maxes[fz_byte(&in) % 6];
    uint32_t seed = fz_byte(&in) | 0x100u;
    shop_str st = fz_rest(&in);
    outcome *whole = malloc(sizeof(*whole)), *pieces = malloc(sizeof(*pieces));

    run((const uint8_t *) st.p, st.n, max, 0, whole);
    run((const uint8_t *) st.p, st.n, max, seed, pieces);
    FZ_ASSERT(whole->n == pieces->n && whole->err == pieces->err
              && whole->close_code == pieces->close_code,
              "whole: %d frames, error %d/%u; in pieces: %d frames, error %d/%u", whole->n, whole->err,
              whole->close_code, pieces->n, pieces->err, pieces->close_code);
    for (int i = 0; i < whole->n; i++) {
        const shop_ws_frame *a = &whole->f[i], *b = &pieces->f[i];
        FZ_ASSERT(a->fin == b->fin && a->opcode == b->opcode && a->len == b->len
                  && a->header_len == b->header_len && memcmp(a->mask, b->mask, 4) == 0
                  && whole->sum[i] == pieces->sum[i], "frame %d differs when fed in pieces", i);
    }
    free(whole);
    free(pieces);

    /* Our own header, masked as a client would, parses back. */
    if (st.n >= 9) {
        uint64_t len = 0;
        for (int i = 0; i < 8; i++) {
            len = len << 8 | (unsigned char) st.p[i];
        }
        len >>= (unsigned char) st.p[8] % 64;
        len &= (uint64_t) INT64_MAX;    /* RFC 6455 5.2: the top bit is 0 */
        int opcode = (unsigned char) st.p[0] & 1 ? SHOP_WS_TEXT : SHOP_WS_BINARY;
        unsigned char hdr[14];
        size_t hl = shop_ws_header(hdr, opcode, len);
        hdr[1] |= 0x80;
        memcpy(hdr + hl, "\x01\x02\x03\x04", 4);
        shop_ws_frame f;
        unsigned code = 0;
        const char *why = NULL;
        int rc = shop_ws_parse(hdr, hl + 4, UINT64_MAX, &f, &code, &why);
        FZ_ASSERT(rc == 1 && f.len == len && f.opcode == opcode && f.fin && f.header_len == hl + 4,
                  "own header for %llu bytes: rc %d len %llu", (unsigned long long) len, rc,
                  (unsigned long long) f.len);
    }
    unsigned char close[4];
    FZ_ASSERT(shop_ws_close_frame(close, SHOP_WS_CLOSE_NORMAL) == 4 && close[0] == 0x88 && close[1] == 2
              && close[2] == 0x03 && close[3] == 0xe8, "close frame");
    return 0;
}
