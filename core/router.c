#include "router.h"

#include <string.h>

/* Matches one template against a raw path, capturing {name} segments. */
static int
match(const char *tmpl, shop_str path, shop_match *m)
{
    const char *t = tmpl;
    size_t i = 0;
    int n = 0;

    while (*t != '\0') {
        if (i >= path.n || path.p[i] != '/' || *t != '/') {
            return 0;
        }
        t++;
        i++;
        size_t seg = i;
        while (i < path.n && path.p[i] != '/') {
            i++;
        }
        if (*t == '{') {
            t = strchr(t, '}') + 1;
            if (i == seg || n == (int) (sizeof(m->params) / sizeof(m->params[0]))) {
                return 0;
            }
            m->params[n++] = (shop_str) { path.p + seg, i - seg };
        } else {
            size_t tl = strcspn(t, "/");
            if (tl != i - seg || memcmp(t, path.p + seg, tl) != 0) {
                return 0;
            }
            t += tl;
        }
    }
    if (i != path.n) {
        return 0;
    }
    m->nparams = n;
    return 1;
}

void
shop_route_find(shop_str path, shop_method method, shop_match *m)
{
    shop_method want = method == SHOP_HEAD ? SHOP_GET : method;

    memset(m, 0, sizeof(*m));
    for (size_t r = 0; r < shop_route_count; r++) {
        shop_match cand;
        if (!match(shop_routes[r].tmpl, path, &cand)) {
            continue;
        }
        m->allowed |= shop_routes[r].method;
        if (shop_routes[r].method == SHOP_GET) {
            m->allowed |= SHOP_HEAD;
        }
        if (m->route == NULL && shop_routes[r].method == want) {
            m->route = &shop_routes[r];
            m->nparams = cand.nparams;
            memcpy(m->params, cand.params, sizeof(m->params));
        }
    }
}

shop_str
shop_allow_header(shop_arena *a, unsigned methods)
{
    static const struct { shop_method m; const char *name; } names[] = {
        { SHOP_GET, "GET" }, { SHOP_HEAD, "HEAD" }, { SHOP_POST, "POST" }, { SHOP_PUT, "PUT" },
        { SHOP_PATCH, "PATCH" }, { SHOP_DELETE, "DELETE" }, { SHOP_OPTIONS, "OPTIONS" },
    };
    shop_buf b;

    shop_buf_init(&b, a, 64);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (methods & names[i].m) {
            if (b.len) {
                shop_buf_add(&b, ", ", 2);
            }
            shop_buf_adds(&b, names[i].name);
        }
    }
    return shop_buf_str(&b);
}
