/* POST /webhooks/payments: a payment provider's callback, authenticated by
 * its signature (checked in dispatch before the body is parsed). Three event
 * shapes, told apart by "type", each parsed once into its own struct. */
#include <string.h>

#include "fields.h"
#include "handlers.h"
#include "order_state.h"
#include "params.h"

typedef enum {
    SHOP_PAYMENT_SUCCEEDED,
    SHOP_PAYMENT_FAILED,
    SHOP_REFUND_CREATED
} shop_payment_kind;

typedef struct {
    const char *id;
    const char *order_id;
    int64_t     amount_cents;
    const char *currency;
} shop_payment_succeeded;

typedef struct {
    const char *id;
    const char *order_id;
    const char *reason;
} shop_payment_failed;

typedef struct {
    const char *id;
    const char *order_id;
    int64_t     amount_cents;
    const char *currency;
} shop_refund_created;

typedef struct {
    shop_payment_kind kind;
    union {
        shop_payment_succeeded succeeded;
        shop_payment_failed    failed;
        shop_refund_created    refund;
    } u;
} shop_payment_event;

static const char currency_shape[] = "must be an ISO 4217 code of three upper-case letters";

static int
is_event_id_char(int ch)
{
    return ch > 0x20 && ch < 0x7f;
}

/* id and order_id, common to every shape. */
static void
read_ids(shop_fields *f, const char **id, const char **order_id)
{
    const char *raw = NULL;

    shop_field_token(f, "id", 1, 1, 200, is_event_id_char, "must be 1-200 printable ASCII characters", id);
    if (shop_field_text(f, "order_id", 1, 1, 36, 0, &raw) == 1
        && !shop_uuid_parse(f->c->arena, shop_cstr(raw), order_id)) {
        shop_fields_fail(f, "order_id", "must be a UUID");
    }
}

/* Returns 0 and the event, -1 when the answer is already set. */
static int
parse_event(shop_ctx *c, shop_payment_event *ev)
{
    static const char *const succeeded_known[] = { "id", "type", "order_id", "amount_cents", "currency", NULL };
    static const char *const failed_known[] = { "id", "type", "order_id", "reason", NULL };
    struct json_object *type = NULL;
    shop_field_errors errs = { 0 };
    shop_fields f;

    if (!json_object_object_get_ex(c->json, "type", &type) || !json_object_is_type(type, json_type_string)) {
        shop_fail(c, SHOP_E_BAD_REQUEST, "type must be payment.succeeded, payment.failed or refund.created");
        return -1;
    }
    /* By length too: a type holding \u0000 is no known type. */
    shop_str t = { json_object_get_string(type), (size_t) json_object_get_string_len(type) };
    if (shop_str_eq(t, "payment.succeeded")) {
        ev->kind = SHOP_PAYMENT_SUCCEEDED;
    } else if (shop_str_eq(t, "payment.failed")) {
        ev->kind = SHOP_PAYMENT_FAILED;
    } else if (shop_str_eq(t, "refund.created")) {
        ev->kind = SHOP_REFUND_CREATED;
    } else {
        shop_fail(c, SHOP_E_BAD_REQUEST, "type must be payment.succeeded, payment.failed or refund.created");
        return -1;
    }

    switch (ev->kind) {
    case SHOP_PAYMENT_SUCCEEDED: {
        shop_payment_succeeded *e = &ev->u.succeeded;
        shop_fields_begin(&f, c, c->json, NULL, &errs, succeeded_known);
        read_ids(&f, &e->id, &e->order_id);
        shop_field_int(&f, "amount_cents", 1, 0, 1000000000000LL, &e->amount_cents);
        shop_field_token(&f, "currency", 1, 3, 3, shop_is_upper, currency_shape, &e->currency);
        break;
    }
    case SHOP_PAYMENT_FAILED: {
        shop_payment_failed *e = &ev->u.failed;
        shop_fields_begin(&f, c, c->json, NULL, &errs, failed_known);
        read_ids(&f, &e->id, &e->order_id);
        shop_field_text(&f, "reason", 1, 1, 200, 0, &e->reason);
        break;
    }
    case SHOP_REFUND_CREATED: {
        shop_refund_created *e = &ev->u.refund;
        shop_fields_begin(&f, c, c->json, NULL, &errs, succeeded_known);
        read_ids(&f, &e->id, &e->order_id);
        shop_field_int(&f, "amount_cents", 1, 0, 1000000000000LL, &e->amount_cents);
        shop_field_token(&f, "currency", 1, 3, 3, shop_is_upper, currency_shape, &e->currency);
        break;
    }
    }
    return shop_fields_end(c, &errs);
}

typedef struct {
    shop_order_state to;
} webhook_state;

void
shop_webhook_plan(shop_ctx *c)
{
    shop_payment_event ev;
    webhook_state *ws;
    shop_query *q;
    shop_buf fp;
    const char *id = NULL, *order_id = NULL, *amount = NULL, *currency = NULL;

    memset(&ev, 0, sizeof(ev));
    if (parse_event(c, &ev) != 0 || (ws = shop_alloc(c->arena, sizeof(*ws))) == NULL) {
        return;
    }
    shop_buf_init(&fp, c->arena, 128);
    switch (ev.kind) {
    case SHOP_PAYMENT_SUCCEEDED:
        ws->to = SHOP_ORDER_PAID;
        id = ev.u.succeeded.id;
        order_id = ev.u.succeeded.order_id;
        amount = shop_fmt_int(c->arena, ev.u.succeeded.amount_cents);
        currency = ev.u.succeeded.currency;
        shop_buf_adds(&fp, "payment.succeeded");
        break;
    case SHOP_PAYMENT_FAILED:
        ws->to = SHOP_ORDER_CANCELLED;
        id = ev.u.failed.id;
        order_id = ev.u.failed.order_id;
        shop_buf_adds(&fp, "payment.failed\n");
        shop_buf_adds(&fp, ev.u.failed.reason);
        break;
    case SHOP_REFUND_CREATED:
        ws->to = SHOP_ORDER_REFUNDED;
        id = ev.u.refund.id;
        order_id = ev.u.refund.order_id;
        amount = shop_fmt_int(c->arena, ev.u.refund.amount_cents);
        currency = ev.u.refund.currency;
        shop_buf_adds(&fp, "refund.created");
        break;
    }
    /* A retry is the same event when all its content is the same. */
    shop_buf_addc(&fp, '\n');
    shop_buf_adds(&fp, order_id);
    if (amount != NULL) {
        shop_buf_addc(&fp, '\n');
        shop_buf_adds(&fp, amount);
        shop_buf_addc(&fp, ' ');
        shop_buf_adds(&fp, currency);
    }
    shop_str fps = shop_buf_str(&fp);
    if ((q = shop_plan_query(c, SHOP_STMT_PAYMENT_EVENT)) == NULL) {
        return;
    }
    c->state = ws;
    q->values[0] = id;
    q->values[1] = shop_sha256_hex(c->arena, fps.p, fps.n);
    q->values[2] = order_id;
    shop_order_move_params(c, &q->values[3], ws->to);
    q->values[6] = amount;
    q->values[7] = currency;
}

void
shop_webhook_render(shop_ctx *c, const shop_result *r)
{
    const webhook_state *ws = c->state;

    if (shop_order_refuse_move(c, &r[0], ws->to) || !shop_db_ok(c, &r[0])) {
        return;
    }
    shop_order_reply(c, r[0].res);
}
