#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

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
shop_auth_admin(const shop_settings *s, shop_str h)
{
    h = shop_str_trim(h);
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
