/* doc/settings-dump: the core's settings table (core/settings.c) as
 * tab-separated lines, for the build's documentation generator
 * (doc/gen.awk): the man pages' ENVIRONMENT and DIRECTIVES sections and the
 * sample shop.conf are made from this, so they say what the code does.
 *
 * One line per setting:
 *   name  env  directive  type  scope  default  min  max  help
 * env and directive are "-" when the setting has none; type is one of
 * string, file, integer, size, duration, flag; scope is fcgi, module or
 * both; min and max are "-" for types without limits, else written in the
 * units the setting accepts (1k, 64m, 250ms, 5s, 24h). Not installed. */
#include "settings.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct { const char *unit; int64_t scale; } dump_unit;

/* v in the largest of units (largest first, the last of scale 1) that
 * writes it exactly, as the parser reads it. */
static void
dump_scaled(char *out, size_t len, int64_t v, const dump_unit *units, size_t n)
{
    size_t i = 0;

    while (i + 1 < n && (v == 0 || v % units[i].scale != 0)) {
        i++;
    }
    snprintf(out, len, "%" PRId64 "%s", v / units[i].scale, units[i].unit);
}

static void
dump_limit(char *out, size_t len, shop_setting_type type, int64_t v)
{
    static const dump_unit sizes[] = { { "m", 1024LL * 1024 }, { "k", 1024 }, { "", 1 } };
    static const dump_unit times[] = {
        { "h", 3600LL * 1000 }, { "m", 60LL * 1000 }, { "s", 1000 }, { "ms", 1 },
    };

    switch (type) {
    case SHOP_SET_INT:
        snprintf(out, len, "%" PRId64, v);
        return;
    case SHOP_SET_SIZE:
        dump_scaled(out, len, v, sizes, sizeof(sizes) / sizeof(sizes[0]));
        return;
    case SHOP_SET_MSEC:
        dump_scaled(out, len, v, times, sizeof(times) / sizeof(times[0]));
        return;
    case SHOP_SET_STRING:
    case SHOP_SET_PATH:
    case SHOP_SET_FLAG:
        break;
    }
    snprintf(out, len, "-");
}

/* Fields must not carry the separators. */
static int
dump_clean(const char *what, const char *name, const char *s)
{
    if (s != NULL && strpbrk(s, "\t\n") != NULL) {
        fprintf(stderr, "settings-dump: %s of setting %s holds a tab or newline\n", what, name);
        return -1;
    }
    return 0;
}

int
main(void)
{
    char min[32], max[32];

    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];

        if (dump_clean("help", d->name, d->help) != 0
            || dump_clean("default", d->name, d->def) != 0)
        {
            return 1;
        }
        dump_limit(min, sizeof(min), d->type, d->min);
        dump_limit(max, sizeof(max), d->type, d->max);
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
               d->name, d->env != NULL ? d->env : "-",
               d->directive != NULL ? d->directive : "-",
               shop_setting_type_name(d->type),
               d->scope == SHOP_SET_BOTH ? "both" : d->scope == SHOP_SET_FCGI ? "fcgi" : "module",
               d->def, min, max, d->help);
    }
    return 0;
}
