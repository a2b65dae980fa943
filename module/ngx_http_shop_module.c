
/*
 * The shop's nginx module: directives, configuration and worker life.
 *
 * Every setting directive is a row of the core's settings table
 * (core/settings.h): the directive names the row, the core parses and
 * checks the value, and the message of a refused value names the setting.
 */


#include "ngx_http_shop_module.h"

#include <sys/stat.h>


#define NGX_HTTP_SHOP_SECRET_MAX  4096


static ngx_int_t ngx_http_shop_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_shop_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_shop_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_shop_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_shop_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_shop(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_shop_setting(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_shop_pool_queue(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_shop_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_shop_set_value(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_shop_loc_conf_t *lcf, const shop_setting *def, ngx_str_t *value);

static ngx_int_t ngx_http_shop_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_shop_log_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_shop_route_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_shop_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_shop_init_process(ngx_cycle_t *cycle);
static void ngx_http_shop_exit_process(ngx_cycle_t *cycle);


#define NGX_HTTP_SHOP_ANY_CONF                                               \
    (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF)


static ngx_command_t  ngx_http_shop_commands[] = {

    { ngx_string("shop"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_shop,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_database"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_read_database"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_pool_size"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_pool_queue"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE12,
      ngx_http_shop_pool_queue,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_statement_timeout"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_body_limit"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_admin_token_file"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_webhook_secret_file"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_stock_deadline"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_warehouse_pool_size"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* keyed by warehouse code, so not a row of the settings table */

    { ngx_string("shop_warehouse_database"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE2,
      ngx_http_shop_warehouse_database,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_event_retention"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_event_replay_limit"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_max_subscribers"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_subscriber_buffer"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("shop_metrics_public"),
      NGX_HTTP_SHOP_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_shop_setting,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* one zone for all workers: not a setting of a location */

    { ngx_string("shop_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_shop_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_shop_module_ctx = {
    ngx_http_shop_add_variables,           /* preconfiguration */
    ngx_http_shop_postconfiguration,       /* postconfiguration */

    ngx_http_shop_create_main_conf,        /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_shop_create_loc_conf,         /* create location configuration */
    ngx_http_shop_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_shop_module = {
    NGX_MODULE_V1,
    &ngx_http_shop_module_ctx,             /* module context */
    ngx_http_shop_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_shop_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_shop_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_shop_vars[] = {

    { ngx_string("shop_request_id"), NULL,
      ngx_http_shop_request_id_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("shop_log"), NULL,
      ngx_http_shop_log_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("shop_route"), NULL,
      ngx_http_shop_route_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("shop_db_time"), NULL,
      ngx_http_shop_time_variable,
      offsetof(ngx_http_shop_ctx_t, db_us), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("shop_pool_wait"), NULL,
      ngx_http_shop_time_variable,
      offsetof(ngx_http_shop_ctx_t, wait_us), NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_shop_request_id = ngx_string("request_id");


static ngx_int_t
ngx_http_shop_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_shop_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_shop_postconfiguration(ngx_conf_t *cf)
{
    size_t                      i;
    ngx_command_t              *cmd;
    const shop_setting         *def;
    ngx_http_shop_main_conf_t  *smcf;

    /* a row of the core's table this build has no directive for */

    for (i = 0; i < shop_setting_count; i++) {
        def = &shop_setting_table[i];

        if (def->directive == NULL || !(def->scope & SHOP_SET_MODULE)
            || ngx_strcmp(def->name, "pool_queue_timeout") == 0)
        {
            continue;
        }

        for (cmd = ngx_http_shop_commands; cmd->name.len; cmd++) {
            if (ngx_strcmp(cmd->name.data, def->directive) == 0) {
                break;
            }
        }

        if (cmd->name.len == 0) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "shop: the setting \"%s\" has no directive "
                          "\"%s\" in this build of the module",
                          def->name, def->directive);
        }
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shop_module);

    smcf->request_id_index = ngx_http_get_variable_index(cf,
                                                    &ngx_http_shop_request_id);
    if (smcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_http_shop_registry_init_conf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_shop_metrics_init_conf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_shop_body_init(cf);
}


static void *
ngx_http_shop_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_shop_main_conf_t  *smcf;

    if (shop_setting_count > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shop: the settings table has more than 64 rows");
        return NULL;
    }

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_shop_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&smcf->pools, cf->pool, 4,
                       sizeof(ngx_http_shop_pool_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&smcf->locations, cf->pool, 4,
                       sizeof(ngx_http_shop_loc_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&smcf->hubs, cf->pool, 1,
                       sizeof(ngx_http_shop_hub_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    smcf->request_id_index = NGX_ERROR;

    return smcf;
}


static void *
ngx_http_shop_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_shop_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_shop_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->set = 0;
     *     conf->enabled = 0;
     *     conf->base = { 0, NULL };
     *     conf->clcf = NULL;
     *     conf->pool = NULL;
     *     conf->warehouses = NULL;
     *     conf->warehouse_pools = NULL;
     *     conf->warehouse_pool = NULL;
     */

    shop_settings_defaults(&conf->settings);

    return conf;
}


static char *
ngx_http_shop_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_shop_loc_conf_t *prev = parent;
    ngx_http_shop_loc_conf_t *conf = child;

    char                *field, *from;
    size_t               i;
    uint64_t             bit;
    const shop_setting  *def;
    char                 err[256];

    for (i = 0; i < shop_setting_count; i++) {
        bit = (uint64_t) 1 << i;

        if ((conf->set & bit) || !(prev->set & bit)) {
            continue;
        }

        def = &shop_setting_table[i];
        field = (char *) &conf->settings + def->offset;
        from = (char *) &prev->settings + def->offset;

        switch (def->type) {

        case SHOP_SET_STRING:
        case SHOP_SET_PATH:
            *(const char **) field = *(const char **) from;
            break;

        case SHOP_SET_INT:
        case SHOP_SET_SIZE:
        case SHOP_SET_MSEC:
        case SHOP_SET_FLAG:
            *(int64_t *) field = *(int64_t *) from;
            break;
        }

        conf->set |= bit;
    }

    /* the secrets come with their files */

    if (conf->settings.admin_token == NULL) {
        conf->settings.admin_token = prev->settings.admin_token;
        conf->settings.admin_token_len = prev->settings.admin_token_len;
    }

    if (conf->settings.webhook_secret == NULL) {
        conf->settings.webhook_secret = prev->settings.webhook_secret;
        conf->settings.webhook_secret_len = prev->settings.webhook_secret_len;
    }

    /* shop_warehouse_database lines: this level's, or all inherited */

    if (conf->warehouses == NULL) {
        conf->warehouses = prev->warehouses;
    }

    if (!conf->enabled) {

        /* an "if" block in a shop location keeps the shop's handler */

        if (prev->enabled) {
            conf->base = prev->base;
            conf->pool = prev->pool;
            conf->warehouse_pools = prev->warehouse_pools;
            conf->warehouse_pool = prev->warehouse_pool;
            conf->hub = prev->hub;
        }

        return NGX_CONF_OK;
    }

    if (shop_settings_check(&conf->settings, SHOP_SET_MODULE, err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "shop: %s in location \"%V\"", err, &conf->clcf->name);
        return NGX_CONF_ERROR;
    }

    /*
     * shop_body_limit governs bodies here: the module answers 413 itself
     * (Content-Length over the limit: without reading the body; chunked:
     * counted as it arrives), so nginx's own check must not come first
     */

    conf->clcf->client_max_body_size = 0;

    if (ngx_http_shop_pool_conf(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_shop_events_conf(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_shop(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_shop_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->enabled) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_shop_handler;

    lcf->enabled = 1;
    lcf->clcf = clcf;

    /*
     * the mount point is the location's prefix without a trailing slash;
     * an exact, regex or named location mounts the shop at "/"
     */

    ngx_str_null(&lcf->base);

    if (clcf->exact_match || clcf->named || clcf->noname
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        return NGX_CONF_OK;
    }

    lcf->base = clcf->name;

    while (lcf->base.len && lcf->base.data[lcf->base.len - 1] == '/') {
        lcf->base.len--;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_shop_setting(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                *rv;
    ngx_str_t           *value;
    const shop_setting  *def;

    value = cf->args->elts;

    def = shop_setting_by_directive((const char *) cmd->name.data,
                                    cmd->name.len);
    if (def == NULL || !(def->scope & SHOP_SET_MODULE)) {
        return "is not a setting of this version of the shop core";
    }

    rv = ngx_http_shop_set_value(cf, cmd, conf, def, &value[1]);

    if (rv == NGX_CONF_OK
        && (def->offset == offsetof(shop_settings, database)
            || def->offset == offsetof(shop_settings, read_database)))
    {
        /* shop_read_database "": none here (one inherited is off) */

        if (value[1].len == 0) {
            return NGX_CONF_OK;
        }

        return ngx_http_shop_pool_check_dsn(cf, (const char *) value[1].data);
    }

    return rv;
}


static char *
ngx_http_shop_pool_queue(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                *rv;
    ngx_str_t           *value;
    const shop_setting  *def;

    value = cf->args->elts;

    def = shop_setting_by_directive((const char *) cmd->name.data,
                                    cmd->name.len);
    if (def == NULL) {
        return "is not a setting of this version of the shop core";
    }

    rv = ngx_http_shop_set_value(cf, cmd, conf, def, &value[1]);

    if (rv != NGX_CONF_OK || cf->args->nelts == 2) {
        return rv;
    }

    def = shop_setting_by_name("pool_queue_timeout");
    if (def == NULL) {
        return "takes no timeout in this version of the shop core";
    }

    return ngx_http_shop_set_value(cf, cmd, conf, def, &value[2]);
}


static char *
ngx_http_shop_set_value(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_shop_loc_conf_t *lcf, const shop_setting *def, ngx_str_t *value)
{
    uint64_t  bit;
    char      err[256];

    bit = (uint64_t) 1 << (def - shop_setting_table);

    if (lcf->set & bit) {
        return "is duplicate";
    }

    /* cf->args values are NUL-terminated and live as long as the cycle */

    if (shop_setting_set(&lcf->settings, def, (const char *) value->data,
                         value->len, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value in \"%V\" directive: %s",
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    lcf->set |= bit;

    return NGX_CONF_OK;
}


/*
 * shop_admin_token_file, shop_webhook_secret_file: the file is read now,
 * by the master, so a missing or careless file stops "nginx -t"
 */

static char *
ngx_http_shop_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_shop_loc_conf_t *lcf = conf;

    char                *rv;
    u_char              *buf, *secret;
    size_t               start, n;
    ssize_t              got;
    ngx_fd_t             fd;
    ngx_str_t           *value, name;
    ngx_file_info_t      fi;
    const shop_setting  *def;
    char                 err[128];

    value = cf->args->elts;
    name = value[1];

    def = shop_setting_by_directive((const char *) cmd->name.data,
                                    cmd->name.len);
    if (def == NULL || def->type != SHOP_SET_PATH) {
        return "is not a setting of this version of the shop core";
    }

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_shop_set_value(cf, cmd, lcf, def, &name);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" directive: cannot open \"%V\"",
                           &cmd->name, &name);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" directive: cannot stat \"%V\"",
                           &cmd->name, &name);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: \"%V\" is not a regular file",
                           &cmd->name, &name);
        goto done;
    }

    if (fi.st_mode & (S_IROTH|S_IWOTH)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: \"%V\" is accessible by others "
                           "(mode 0%d%d%d); make it 0600 or 0640",
                           &cmd->name, &name, (int) (fi.st_mode >> 6) & 7,
                           (int) (fi.st_mode >> 3) & 7, (int) fi.st_mode & 7);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_SHOP_SECRET_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: \"%V\" is larger than %d bytes",
                           &cmd->name, &name, NGX_HTTP_SHOP_SECRET_MAX);
        goto done;
    }

    buf = ngx_pnalloc(cf->temp_pool, NGX_HTTP_SHOP_SECRET_MAX + 1);
    if (buf == NULL) {
        goto done;
    }

    got = ngx_read_fd(fd, buf, NGX_HTTP_SHOP_SECRET_MAX + 1);

    if (got == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" directive: cannot read \"%V\"",
                           &cmd->name, &name);
        goto done;
    }

    if (shop_secret_parse((const char *) buf, (size_t) got, &start, &n,
                          err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: \"%V\" %s",
                           &cmd->name, &name, err);
        goto done;
    }

    secret = ngx_pnalloc(cf->pool, n + 1);
    if (secret == NULL) {
        goto done;
    }

    ngx_memcpy(secret, buf + start, n);
    secret[n] = '\0';

    if (def->offset == offsetof(shop_settings, admin_token_file)) {
        lcf->settings.admin_token = (const char *) secret;
        lcf->settings.admin_token_len = n;

    } else {
        lcf->settings.webhook_secret = (const char *) secret;
        lcf->settings.webhook_secret_len = n;
    }

    rv = NGX_CONF_OK;

done:

    if (buf) {
        ngx_explicit_memzero(buf, NGX_HTTP_SHOP_SECRET_MAX + 1);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &name);
    }

    return rv;
}


/* $shop_request_id: the X-Request-Id the response carries */

static ngx_int_t
ngx_http_shop_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_shop_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    if (ctx == NULL || !ctx->begun) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->core.request_id.n;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = (u_char *) ctx->core.request_id.p;

    return NGX_OK;
}


/* $shop_log: the core's JSON log line, the one shop-fcgi writes */

static ngx_int_t
ngx_http_shop_log_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    shop_str              line, method;
    ngx_http_shop_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    if (ctx == NULL || !ctx->begun) {
        v->not_found = 1;
        return NGX_OK;
    }

    method.p = (const char *) r->method_name.data;
    method.n = r->method_name.len;

    line = shop_log_line(&ctx->core, method,
                         ngx_http_shop_now_us() - ctx->start_us, ctx->db_us, ctx->wait_us);

    v->len = line.n;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = (u_char *) line.p;

    return NGX_OK;
}


/* $shop_route: the route template ("/products/{id}"), "-" when none */

static ngx_int_t
ngx_http_shop_route_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char           *name;
    ngx_http_shop_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    if (ctx == NULL || !ctx->begun) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = shop_route_name(&ctx->core);

    v->len = ngx_strlen(name);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = (u_char *) name;

    return NGX_OK;
}


/*
 * $shop_db_time, $shop_pool_wait: seconds with milliseconds, as
 * $request_time: time in the database, time waiting for a connection;
 * always a number (0.000 for a request the shop did not see), so a JSON
 * log_format may write it unquoted
 */

static ngx_int_t
ngx_http_shop_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    int64_t               us;
    ngx_msec_int_t        ms;
    ngx_http_shop_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    us = ctx ? *(int64_t *) ((char *) ctx + data) : 0;
    ms = (ngx_msec_int_t) ngx_max(us / 1000, 0);

    v->len = ngx_sprintf(p, "%T.%03M", (time_t) ms / 1000, ms % 1000) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_shop_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_pool_conf_t  **pcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shop_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    pcf = smcf->pools.elts;

    for (i = 0; i < smcf->pools.nelts; i++) {
        if (ngx_http_shop_pool_start(cycle, pcf[i], smcf->pools.nelts)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_shop_events_start(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_shop_metrics_start(cycle);
}


static void
ngx_http_shop_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_pool_conf_t  **pcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shop_module);
    if (smcf == NULL) {
        return;
    }

    /* the streams first: their replays run on the pools */

    ngx_http_shop_events_stop(cycle);

    pcf = smcf->pools.elts;

    for (i = 0; i < smcf->pools.nelts; i++) {
        ngx_http_shop_pool_stop(pcf[i]);
    }

    /* the last events delivered are counted; the gauge slot goes */

    ngx_http_shop_metrics_stop(cycle);
}
