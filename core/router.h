/* Matching a request path against the route table. */
#ifndef SHOP_ROUTER_H
#define SHOP_ROUTER_H

#include "handler.h"

typedef struct {
    const shop_route *route;      /* the match for path and method, or NULL */
    unsigned          allowed;    /* methods some route serves on this path */
    int               nparams;
    shop_str          params[3];  /* raw segments captured by {name} */
} shop_match;

void shop_route_find(shop_str path, shop_method method, shop_match *m);

/* "GET, HEAD, POST" for an Allow header. */
shop_str shop_allow_header(shop_arena *a, unsigned methods);

#endif
