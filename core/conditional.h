/* ETags are "<version>". If-Match uses the strong comparison, If-None-Match
 * the weak one (RFC 9110 13.1). */
#ifndef SHOP_CONDITIONAL_H
#define SHOP_CONDITIONAL_H

#include "arena.h"
#include "buf.h"

/* If-Match as the SQL parameter the write functions take: NULL when absent
 * or "*", else an integer[] literal of the versions it names ("{}" when it
 * names none that could match). */
const char *shop_if_match_versions(shop_arena *a, shop_str if_match);

/* 1 when If-None-Match names `version` (or is "*"). */
int shop_if_none_match(shop_str if_none_match, const char *version);

#endif
