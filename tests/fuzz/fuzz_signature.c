/* Authentication headers: the webhook's Shop-Signature parser
 * (shop_auth_signature) and the admin bearer check (shop_auth_admin,
 * shop_secret_equal).
 * - a header this harness signs correctly is accepted exactly when its
 *   timestamp is within the tolerance of now;
 * - an accepted arbitrary header holds, for one of its t= values, the
 *   correct HMAC of t "." body as a v1= value;
 * - the bearer check agrees with a reference reading of
 *   "Bearer <token>" (scheme in any case, blanks trimmed).
 *
 * Input: byte 0 mode, bytes 1-2 a clock skew in seconds, first line the
 * header (Shop-Signature or Authorization), the rest the body. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
hmac_hex(shop_str t, shop_str body, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    unsigned char *text = malloc(t.n + 1 + body.n + 1);

    FZ_ASSERT(text != NULL, "out of memory");
    memcpy(text, t.p, t.n);
    text[t.n] = '.';
    if (body.n) {
        memcpy(text + t.n + 1, body.p, body.n);
    }
    FZ_ASSERT(HMAC(EVP_sha256(), FZ_SECRET, (int) strlen(FZ_SECRET), text, t.n + 1 + body.n, mac, &maclen)
              != NULL, "HMAC failed");
    free(text);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

static shop_str
trim(shop_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++, s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) {
        s.n--;
    }
    return s;
}

/* Some item "t=<digits>" of h whose correct v1 is also an item of h. */
static int
holds_valid_pair(shop_str h, shop_str body)
{
    for (size_t i = 0; i < h.n;) {
        size_t e = i;
        while (e < h.n && h.p[e] != ',') {
            e++;
        }
        shop_str it = trim((shop_str) { h.p + i, e - i });
        if (it.n > 2 && it.p[0] == 't' && it.p[1] == '=') {
            char want[65];
            hmac_hex((shop_str) { it.p + 2, it.n - 2 }, body, want);
            for (size_t j = 0; j < h.n;) {
                size_t f = j;
                while (f < h.n && h.p[f] != ',') {
                    f++;
                }
                shop_str v = trim((shop_str) { h.p + j, f - j });
                if (v.n == 67 && memcmp(v.p, "v1=", 3) == 0 && strncasecmp(v.p + 3, want, 64) == 0) {
                    return 1;
                }
                j = f + 1;
            }
        }
        i = e + 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    unsigned mode = fz_byte(&in);
    int skew_s = (int) (int16_t) (fz_byte(&in) << 8 | fz_byte(&in));
    fz_mem m;
    shop_settings s;
    const char *why = NULL;

    fz_mem_init(&m);
    fz_settings(&s);
    shop_str header = fz_copy(&m, fz_line(&in));
    shop_str body = fz_copy(&m, fz_rest(&in));
    int64_t now = FZ_NOW_MS;

    switch (mode % 3) {
    case 0: {
        /* Correctly signed at now + skew. */
        int64_t signed_at = now + (int64_t) skew_s * 1000;
        shop_str sig = fz_sign(&m, body.p, body.n, signed_at);
        int ok = shop_auth_signature(&s, &m.arena, sig, body.p, body.n, now, &why);
        int64_t d = now - signed_at / 1000 * 1000;
        int want = d <= SHOP_SIGNATURE_TOLERANCE_MS && d >= -SHOP_SIGNATURE_TOLERANCE_MS;
        FZ_ASSERT(ok == want, "a good signature %d s off: %d (%s)", skew_s, ok, why ? why : "");
        /* One flipped body byte must fail. */
        if (ok && body.n) {
            ((char *) body.p)[0] ^= 1;
            FZ_ASSERT(!shop_auth_signature(&s, &m.arena, sig, body.p, body.n, now, &why),
                      "a changed body passed");
        }
        break;
    }
    case 1: {
        int ok = shop_auth_signature(&s, &m.arena, header, body.p, body.n, now, &why);
        FZ_ASSERT(ok == 0 || ok == 1, "returned %d", ok);
        FZ_ASSERT(ok || (why != NULL && why[0] != '\0'), "refused without a reason");
        if (ok) {
            FZ_ASSERT(holds_valid_pair(header, body), "accepted without a valid t/v1 pair: %.*s",
                      (int) header.n, header.p);
        }
        shop_settings none = s;
        none.webhook_secret = NULL;
        none.webhook_secret_len = 0;
        FZ_ASSERT(!shop_auth_signature(&none, &m.arena, header, body.p, body.n, now, &why),
                  "accepted without a secret");
        break;
    }
    case 2: {
        shop_err e = shop_auth_admin(&s, header);
        shop_str h = trim(header);
        shop_err want;
        if (h.n < 7 || strncasecmp(h.p, "Bearer ", 7) != 0 || trim((shop_str) { h.p + 7, h.n - 7 }).n == 0) {
            want = SHOP_E_UNAUTHORIZED;
        } else {
            shop_str t = trim((shop_str) { h.p + 7, h.n - 7 });
            want = t.n == strlen(FZ_TOKEN) && memcmp(t.p, FZ_TOKEN, t.n) == 0 ? SHOP_OK : SHOP_E_FORBIDDEN;
        }
        FZ_ASSERT(e == want, "shop_auth_admin %d, reference %d", (int) e, (int) want);
        int eq = shop_secret_equal(header.p, header.n, body.p, body.n);
        FZ_ASSERT(eq == (header.n == body.n && (header.n == 0 || memcmp(header.p, body.p, body.n) == 0)),
                  "shop_secret_equal %d", eq);
        break;
    }
    }
    fz_mem_free(&m);
    return 0;
}
