/* Admin bearer tokens and webhook signatures, compared in constant time. */
#ifndef SHOP_AUTH_H
#define SHOP_AUTH_H

#include "buf.h"
#include "problem.h"
#include "settings.h"

/* SHOP_OK, SHOP_E_UNAUTHORIZED (no bearer credentials) or SHOP_E_FORBIDDEN. */
shop_err shop_auth_admin(const shop_settings *s, shop_str authorization);

/* 1 when a and b are equal; the time taken does not depend on where they
 * differ, nor on b's length. */
int shop_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
