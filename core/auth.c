#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <string.h>

int
shop_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];

    /* Comparing digests makes the work independent of both lengths. */
    SHA256((const unsigned char *) a, alen, da);
    SHA256((const unsigned char *) b, blen, db);
    return CRYPTO_memcmp(da, db, sizeof(da)) == 0 && alen == blen;
}

shop_err
shop_auth_admin(const shop_settings *s, shop_str authorization)
{
    shop_str h = shop_str_trim(authorization);
    if (h.n < 7 || !shop_str_eq_nocase((shop_str) { h.p, 7 }, "Bearer ")) {
        return SHOP_E_UNAUTHORIZED;
    }
    shop_str token = shop_str_trim((shop_str) { h.p + 7, h.n - 7 });
    if (token.n == 0) {
        return SHOP_E_UNAUTHORIZED;
    }
    if (s->admin_token == NULL || s->admin_token_len == 0) {
        return SHOP_E_FORBIDDEN;
    }
    return shop_secret_equal(token.p, token.n, s->admin_token, s->admin_token_len)
           ? SHOP_OK : SHOP_E_FORBIDDEN;
}

static int
unhex(shop_str s, unsigned char *out, size_t n)
{
    if (s.n != 2 * n) {
        return -1;
    }
    for (size_t i = 0; i < 2 * n; i++) {
        char ch = s.p[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (v < 0) {
            return -1;
        }
        out[i / 2] = (unsigned char) (i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

int
shop_auth_signature(const shop_settings *s, shop_arena *a, shop_str h, const char *body,
                    size_t len, int64_t now_ms, const char **why)
{
    unsigned char mac[EVP_MAX_MD_SIZE], given[SHA256_DIGEST_LENGTH];
    unsigned int maclen = 0;
    shop_str t = SHOP_NULL_STR, v1[4];
    int nv1 = 0;

    if (s->webhook_secret == NULL || s->webhook_secret_len == 0) {
        *why = "webhooks are not configured";
        return 0;
    }
    shop_str item;
    while (shop_str_split(&h, ',', &item)) {
        if (item.n > 2 && item.p[0] == 't' && item.p[1] == '=') {
            t = (shop_str) { item.p + 2, item.n - 2 };
        } else if (item.n > 3 && memcmp(item.p, "v1=", 3) == 0 && nv1 < 4) {
            v1[nv1++] = (shop_str) { item.p + 3, item.n - 3 };
        }
    }
    int64_t ts = 0;
    if (t.n == 0 || t.n > 12 || nv1 == 0) {
        *why = "the Shop-Signature header is missing or malformed";
        return 0;
    }
    for (size_t i = 0; i < t.n; i++) {
        if (t.p[i] < '0' || t.p[i] > '9') {
            *why = "the Shop-Signature header is missing or malformed";
            return 0;
        }
        ts = ts * 10 + (t.p[i] - '0');
    }
    int64_t skew = now_ms - ts * 1000;
    if (skew > SHOP_SIGNATURE_TOLERANCE_MS || skew < -SHOP_SIGNATURE_TOLERANCE_MS) {
        *why = "the signature's timestamp is too far from now";
        return 0;
    }

    size_t n = t.n + 1 + len;
    unsigned char *signed_text = shop_alloc(a, n + 1);
    if (signed_text == NULL) {
        *why = "the signature could not be checked";
        return 0;
    }
    memcpy(signed_text, t.p, t.n);
    signed_text[t.n] = '.';
    if (len) {
        memcpy(signed_text + t.n + 1, body, len);
    }
    if (HMAC(EVP_sha256(), s->webhook_secret, (int) s->webhook_secret_len, signed_text, n,
             mac, &maclen) == NULL || maclen != SHA256_DIGEST_LENGTH) {
        *why = "the signature could not be checked";
        return 0;
    }
    int ok = 0;
    for (int i = 0; i < nv1; i++) {
        if (unhex(v1[i], given, sizeof(given)) == 0) {
            ok |= CRYPTO_memcmp(given, mac, sizeof(given)) == 0;
        }
    }
    if (!ok) {
        *why = "the signature does not match";
    }
    return ok;
}
