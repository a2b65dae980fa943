/* Admin bearer tokens and webhook signatures, compared in constant time. */
#ifndef SHOP_AUTH_H
#define SHOP_AUTH_H

#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "problem.h"
#include "settings.h"

/* SHOP_OK, SHOP_E_UNAUTHORIZED (no bearer credentials) or SHOP_E_FORBIDDEN. */
shop_err shop_auth_admin(const shop_settings *s, shop_str authorization);

/* 1 when a and b are equal; the time taken does not depend on where they
 * differ, nor on b's length. */
int shop_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

#define SHOP_SIGNATURE_TOLERANCE_MS (300LL * 1000)

/* Checks `Shop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>`
 * (several v1 allowed, for secret rotation). Returns 1, or 0 with the
 * reason in *why. */
int shop_auth_signature(const shop_settings *s, shop_arena *a, shop_str header,
                        const char *body, size_t len, int64_t now_ms, const char **why);

#endif
