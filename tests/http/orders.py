#!/usr/bin/env python3
"""The HTTP cases of warehouses, stock levels, orders and the payment webhook
(API.md "Warehouses and stock", "Orders", "Payment webhook"), run against
every front-end given with --target, as TAP. suite.py runs them (run(ctx)
after its own sections, run_parity(tap, ctxs) after its parity table); run
alone for a quick try:

    orders.py --target fcgi=http://127.0.0.1:8081 [--target module=URL ...]
              --token-file var/admin.token --webhook-secret-file var/webhook.secret

Python 3 standard library only; the helpers are shoptest.py's. The database
checks use psql with the PG* environment (skipped without PGHOST): stock
rows per warehouse, the rows of shop.events each request wrote, orders in
the table. Each target gets its own products and warehouses (named after
the run prefix P), so the targets never share a stock row.

Sections, each against every target in turn:
  SETUP        products, three warehouses {{wa}} {{wb}} {{wc}}, stock levels
  WAREHOUSES   list, create (201 + Location) and update (200), latency_ms
  STOCK        PUT a level: body, events, the no-op PUT writes no event
  ORDERS       placing (lines per warehouse: most stock first, ties by code;
               the unit price of the moment), reading (ETag, 304, upper-case
               UUID, HEAD), the 409 insufficient-stock body, lists
  idempotency  replays (same bytes, other spelling), a key a 409 left
               unused, 20 concurrent requests with one key
  states       every state x every target state: legal moves 200 (+1
               version, one order.status_changed), illegal ones 409 with
               from/to/allowed as API.md's table; If-Match; restocking
               exactly per warehouse; concurrent moves of one order
  race         never oversell: stock K over 3 warehouses, 60 concurrent
               one-unit orders, K in (1, 5, 17); the CHECK constraint
  walks        GET /orders walked page by page, with and without status
  webhook      each type, replays, restocking, races with admin
               transitions, bursts of a provider's events for one order
               (mismatches and signatures are in BAD)
  BAD          every refusal of the above (400/401/403/404/409/412/415/422):
               the right problem, no event written and the database (orders,
               lines, keys, payment events, warehouses, stock, products,
               events) unchanged

Every case also checks, through shoptest.convention_errors, that an order is
exactly API.md's fields with total = sum of the lines and an ETag of its
version, and that every refusal is a problem+json without internals.

Where API.md is silent, these cases expect what a careful user expects:
  - PUT /warehouses/{code} replaces the warehouse (RFC 9110 PUT): a PUT
    without latency_ms sets it to its default, 0.
  - A code that breaks the code rule ^[a-z0-9][a-z0-9_-]{0,31}$ is 422
    (field "code") on PUT /warehouses/{code}; a stock PUT naming a warehouse
    or sku that cannot exist, whatever its shape, is 404.
  - A stock PUT of the level it already has changes nothing: no event.
  - GET /orders: a status filter walks to the end like the unfiltered list
    (every order once, non-final pages full); an unknown status is 400 (like
    a bad limit or cursor); a product list's cursor is no order list's.
  - Idempotency-Key: the same body means the same JSON value (key order,
    whitespace, escapes do not matter); an empty key is not 1-200
    characters: 400; a request refused with 409 reserves nothing and leaves
    the key unused, so a retry after restocking places the order (201).
  - A transition to the state the order is in is an illegal move (409). A
    stale If-Match is 412 even when the move is illegal too.
  - Restocking adds each line's units back to the warehouse's level as it
    is at that moment (not a restore of an older snapshot).
  - Webhook: a malformed order_id (not a UUID) is 422; a missing `type` is
    400 or 422; a replay of an applied event returns the order as it is
    now; an event refused (409/422) is not recorded, so it has no id yet.
"""

import argparse
import json
import random
import string
import sys
import time
import urllib.parse

from shoptest import (DROP, NO_CT, ORDER_STATES, Ctx, Db, Missing, Resp, Tap, Target, convention_errors, get,
                      parallel, problem, run_case, run_parity as shop_run_parity, send, status, subset_errors,
                      subst, tally, webhook_signature)

# API.md: the only legal moves.
LEGAL = {
    'pending': ['paid', 'cancelled'],
    'paid': ['packed', 'refunded'],
    'packed': ['shipped', 'refunded'],
    'shipped': ['delivered'],
    'delivered': ['refunded'],
    'cancelled': [],
    'refunded': [],
}
# Moves that put the reserved units back (cancel, refund before shipment).
RESTOCKS = {('pending', 'cancelled'), ('paid', 'refunded'), ('packed', 'refunded')}
# A legal path from pending to each state.
PATH = {
    'pending': [],
    'paid': ['paid'],
    'packed': ['paid', 'packed'],
    'shipped': ['paid', 'packed', 'shipped'],
    'delivered': ['paid', 'packed', 'shipped', 'delivered'],
    'cancelled': ['cancelled'],
    'refunded': ['paid', 'refunded'],
}

# Everything an order, a warehouse or a payment touches, for "changes nothing".
SNAPSHOT = (
    "SELECT concat_ws(' ',"
    " (SELECT count(*) FROM shop.orders),"
    " (SELECT md5(coalesce(string_agg(o::text, ',' ORDER BY seq), '')) FROM shop.orders o),"
    " (SELECT md5(coalesce(string_agg(l::text, ',' ORDER BY order_id, line), '')) FROM shop.order_lines l),"
    " (SELECT md5(coalesce(string_agg(k::text, ',' ORDER BY key), '')) FROM shop.idempotency_keys k),"
    " (SELECT md5(coalesce(string_agg(p::text, ',' ORDER BY id), '')) FROM shop.payment_events p),"
    " (SELECT md5(coalesce(string_agg(w::text, ',' ORDER BY code), '')) FROM shop.warehouses w),"
    " (SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY product_id, warehouse), '')) FROM shop.stock s),"
    " (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM shop.products t),"
    " (SELECT count(*) FROM shop.events),"
    " (SELECT coalesce(max(id), 0) FROM shop.events))")


def read_secret(path):
    """The webhook secret as shop-fcgi reads it (surrounding whitespace off)."""
    if not path:
        return None
    with open(path, encoding='ascii') as f:
        return f.read().strip()


# ------------------------------------------------------------------ database

def q1(ctx, sql):
    """The first line psql prints for sql ('' when none)."""
    rows = ctx.db.query(sql)
    return rows[0] if rows else ''


def lit(s):
    return "'" + str(s).replace("'", "''") + "'"


def last_event(ctx):
    return int(q1(ctx, 'SELECT coalesce(max(id), 0) FROM shop.events'))


def events_since(ctx, eid):
    """[(type, data)] of the events after id eid, in id order."""
    rows = json.loads(q1(ctx, "SELECT coalesce(json_agg(json_build_object('type', type, 'data', data)"
                              " ORDER BY id), '[]') FROM shop.events WHERE id > %d" % eid))
    return [(e['type'], e['data']) for e in rows]


def stock_of(ctx, sku):
    """{warehouse: quantity} of every stock row of sku."""
    return json.loads(q1(ctx, "SELECT coalesce(json_object_agg(s.warehouse, s.quantity), '{}') FROM shop.stock s"
                              " JOIN shop.products p ON p.id = s.product_id WHERE p.sku = %s" % lit(sku)))


def order_row(ctx, oid):
    """(status, version) of an order in the table, or None."""
    row = q1(ctx, 'SELECT status, version FROM shop.orders WHERE id = %s' % lit(oid))
    if not row:
        return None
    s, v = row.split('|')
    return s, int(v)


def event_errors(want, got):
    """want: [(type, data subset)] matched to got as a multiset."""
    errs, left = [], list(got)
    for wt, wd in want:
        for i, (gt, gd) in enumerate(left):
            if gt == wt and not subset_errors(wd, gd, 'data'):
                del left[i]
                break
        else:
            errs.append('no %s event with %s' % (wt, json.dumps(wd)))
    for gt, gd in left:
        errs.append('unexpected %s event %s' % (gt, json.dumps(gd)))
    if errs:
        errs.append('events written: %s' % json.dumps([[t, d] for t, d in got])[:1500])
    return errs


# --------------------------------------------------------------- the runner

def run_ocase(ctx, case, extra_check=None):
    """run_case, plus what the database must show afterwards when there is
    one: 'events' (list of (type, data subset), or a function (r, ctx) giving
    it) are exactly the events the request wrote, and a refusal (>= 400)
    wrote none; 'stock' {sku: {warehouse: quantity}} are the stock rows."""
    if case.get('skip'):
        ctx.tap.skip('[%s] %s %s: %s' % (ctx.tg.name, case['method'], case['path'], case['name']), case['skip'])
        return None
    if ctx.db is None:
        return run_case(ctx, case, extra_check)
    try:
        c = subst(case, ctx.vars)
    except Missing:
        return run_case(ctx, case)     # reports the missing variable
    eid = last_event(ctx)

    def check(r):
        errs = extra_check(r) if extra_check else []
        got = events_since(ctx, eid)
        want = c.get('events')
        if callable(want):
            want = subst(want(r, ctx), ctx.vars)
        if want is None and r.status >= 400:
            want = []
        if want is not None:
            errs += event_errors(want, got)
        for sku, rows in (c.get('stock') or {}).items():
            have = stock_of(ctx, sku)
            if have != rows:
                errs.append('stock of %s: %s, expected %s' % (sku, have, rows))
        return errs
    return run_case(ctx, case, check)


def run_otable(ctx, table):
    for case in table:
        run_ocase(ctx, case)


def result(ctx, name, errs, diag=()):
    ctx.tap.result('[%s] %s' % (ctx.tg.name, name), errs, diag)


# ---------------------------------------------------------------- requests

JSON = ('Content-Type', 'application/json')


def admin(ctx):
    return [('Authorization', 'Bearer ' + ctx.token), JSON]


def dumps(obj):
    return json.dumps(obj).encode()


def place(ctx, items, email='buyer@example.com', key=None):
    """POST /orders of [(sku, quantity)]."""
    h = [JSON] + ([('Idempotency-Key', key)] if key is not None else [])
    return send(ctx.tg, 'POST', '/orders', h,
                dumps({'items': [{'sku': s, 'quantity': n} for s, n in items], 'customer_email': email}))


def move(ctx, oid, to, if_match=None):
    h = admin(ctx) + ([('If-Match', if_match)] if if_match else [])
    return send(ctx.tg, 'POST', '/orders/%s/transitions' % oid, h, dumps({'to': to}))


def hook_send(ctx, event, t=None):
    body = dumps(event)
    return send(ctx.tg, 'POST', '/webhooks/payments',
                [JSON, ('Shop-Signature', webhook_signature(ctx.webhook_secret, body, t))], body)


def put_stock(ctx, wh, sku, n):
    return send(ctx.tg, 'PUT', '/warehouses/%s/stock/%s' % (wh, sku), admin(ctx), dumps({'quantity': n}))


def new_order(ctx, sku, state, qty=1):
    """An order of qty x sku moved along PATH to state: (id, version), or
    raises with what went wrong."""
    r = place(ctx, [(sku, qty)])
    if r.status != 201:
        raise AssertionError('placing an order: ' + r.summary())
    oid, v = r.json['id'], 1
    for to in PATH[state]:
        r = move(ctx, oid, to)
        if r.status != 200 or r.json.get('status') != to:
            raise AssertionError('moving %s to %s: %s' % (oid, to, r.summary()))
        v += 1
    return oid, v


def stock_seen(r, ctx):
    """POST /stock/check of 8 x U after STOCK put U at 10 in wa and 0 in wc."""
    wa, wc = ctx.vars['wa'], ctx.vars['wc']
    j = r.json if isinstance(r.json, dict) else {}
    whs, items = j.get('warehouses', {}), j.get('items') or [{}]
    it = items[0]
    errs = ['warehouse %s: %r' % (w, whs.get(w)) for w in (wa, wc) if whs.get(w) != 'ok']
    if (it.get('available'), it.get('ok'), it.get('by_warehouse', {}).get(wa),
            it.get('by_warehouse', {}).get(wc, 0)) != (10, True, 10, 0):
        errs.append('item %r: expected 10 available (10 in %s, none in %s), ok' % (it, wa, wc))
    return errs


# ------------------------------------------------------------ case helpers

def opost(name, body, **kw):
    return dict(name=name, method='POST', path='/orders', body=body, **kw)


def obody(items=(('{{B}}', 1),), email='buyer@example.com', **over):
    """An order body of [(sku, quantity)], with fields replaced (or left out with DROP)."""
    b = {'items': [{'sku': s, 'quantity': n} for s, n in items], 'customer_email': email}
    b.update(over)
    return {k: v for k, v in b.items() if v is not DROP}


def item(**over):
    """One line {"sku":B,"quantity":1} with fields replaced or DROPped, as a body."""
    it = {'sku': '{{B}}', 'quantity': 1}
    it.update(over)
    return {'items': [{k: v for k, v in it.items() if v is not DROP}], 'customer_email': 'buyer@example.com'}


def wput(name, code, body, **kw):
    kw.setdefault('auth', True)
    return dict(name=name, method='PUT', path='/warehouses/' + code, body=body, **kw)


def sput(name, code, sku, body, **kw):
    kw.setdefault('auth', True)
    return dict(name=name, method='PUT', path='/warehouses/%s/stock/%s' % (code, sku), body=body, **kw)


def trans(name, oid, to, **kw):
    kw.setdefault('auth', True)
    body = kw.pop('body', {'to': to})
    return dict(name=name, method='POST', path='/orders/%s/transitions' % oid, body=body, **kw)


def hook(name, body, **kw):
    kw.setdefault('sign', True)
    return dict(name=name, method='POST', path='/webhooks/payments', body=body, **kw)


def ev(kind, oid='{{h_pending}}', **over):
    """A webhook event of kind for order oid (the amount and currency of
    h_pending), fields replaced or DROPped. Refused events are not recorded,
    so the refusals share one event id."""
    b = {'id': 'evt-{{P}}-bad', 'type': kind, 'order_id': oid}
    if kind == 'payment.failed':
        b['reason'] = 'card_declined'
    else:
        b.update(amount_cents='{{#h_total}}', currency='EUR')
    b.update(over)
    return {k: v for k, v in b.items() if v is not DROP}


def v422(name, case, fields):
    case = dict(case, name=name)
    case['expect'] = problem(422, 'validation', fields=fields)
    return case


def product(name, var, price, currency='EUR'):
    return dict(name='setup: product %s (%s %d)' % (name, currency, price), method='POST', path='/products',
                auth=True, body={'sku': '{{%s}}' % var, 'name': 'Order test %s {{P}}' % name,
                                 'price_cents': price, 'currency': currency},
                expect=status(201), save={var + '_id': 'json:id'})


def stock_ev(wh, sku, qty):
    return ('stock.changed', {'warehouse': wh, 'sku': sku, 'quantity': qty})


def lines_are(*want):
    """The order's lines, as a multiset of (sku, quantity, unit price, warehouse)."""
    def check(r, ctx):
        w = sorted(tuple(x) for x in subst([list(x) for x in want], ctx.vars))
        got = sorted((ln.get('sku'), ln.get('quantity'), ln.get('unit_price_cents'), ln.get('warehouse'))
                     for ln in r.json.get('items', []))
        return [] if got == w else ['lines %s, expected %s' % (got, w)]
    return check


def created_events(*stock):
    """A new order's events: stock.changed per (warehouse, sku, new level) and
    order.created carrying the order as the response shows it."""
    def want(r, ctx):
        return [stock_ev(*s) for s in stock] + [('order.created', r.json)]
    return want


def moved_events(frm, to, *stock):
    def want(r, ctx):
        return [('order.status_changed', {'id': r.json['id'], 'from': frm, 'to': to,
                                          'version': r.json['version']})] + [stock_ev(*s) for s in stock]
    return want


def same_body_as(var):
    def check(r, ctx):
        want = json.loads(ctx.vars[var])
        return [] if r.json == want else ['body differs from the earlier one: %s' % json.dumps(want)[:600]]
    return check


def insufficient(*want):
    """409 insufficient-stock naming exactly these (sku, requested, available)."""
    def check(r, ctx):
        items = r.json.get('items') if isinstance(r.json, dict) else None
        if not isinstance(items, list):
            return ['no "items" list naming the short skus']
        w = sorted(tuple(x) for x in subst([list(x) for x in want], ctx.vars))
        got = sorted((i.get('sku'), i.get('requested'), i.get('available')) if isinstance(i, dict) else (i,)
                     for i in items)
        return [] if got == w else ['short items %s, expected %s' % (got, w)]
    return check


def refused_move(frm, to):
    """409 invalid-transition naming from, to and exactly API.md's allowed moves."""
    def check(r, ctx):
        j = r.json if isinstance(r.json, dict) else {}
        errs = []
        if j.get('from') != frm or j.get('to') != to:
            errs.append('from/to %r/%r, expected %r/%r' % (j.get('from'), j.get('to'), frm, to))
        allowed = j.get('allowed')
        if not isinstance(allowed, list) or sorted(allowed) != sorted(LEGAL[frm]) \
                or len(set(allowed)) != len(allowed):
            errs.append('allowed %r, expected %r' % (allowed, LEGAL[frm]))
        return errs
    return check


def fields_exactly(*names):
    def check(r, ctx):
        got = sorted(e.get('field') for e in r.json.get('errors', []))
        return [] if got == sorted(subst(list(names), ctx.vars)) else \
            ['errors name %s, expected exactly %s' % (got, sorted(names))]
    return check


def save_json(r):
    return json.dumps(r.json)


# ---------------------------------------------------------------- the cases

SETUP = [
    product('A', 'A', 500), product('B', 'B', 250), product('U (dollars)', 'U', 100, 'USD'),
    product('Z (never stocked)', 'Z', 50), product('R (restocking)', 'R', 300),
    product('M (state machine)', 'M', 100), product('I (idempotency)', 'I', 200),
    product('H (webhook)', 'H', 700),
] + [
    wput('setup: warehouse %s' % w, '{{%s}}' % w, {'name': 'Order test %s {{P}}' % w, 'latency_ms': 0},
         expect=status(201, location='/warehouses/'))
    for w in ('wa', 'wb', 'wc')
] + [
    sput('setup: stock %s in %s = %d' % (p, w, n), '{{%s}}' % w, '{{%s}}' % p, {'quantity': n},
         expect=status(200, json={'warehouse': '{{%s}}' % w, 'sku': '{{%s}}' % p, 'quantity': n}),
         events=[stock_ev('{{%s}}' % w, '{{%s}}' % p, n)])
    for p, w, n in [('A', 'wa', 3), ('A', 'wb', 5), ('A', 'wc', 5), ('B', 'wa', 20), ('B', 'wc', 1),
                    ('U', 'wa', 10), ('R', 'wa', 2), ('R', 'wb', 2), ('R', 'wc', 1), ('M', 'wa', 200),
                    ('I', 'wa', 50), ('I', 'wb', 50), ('H', 'wa', 50), ('H', 'wb', 50)]
]


def check_warehouse_list(r, ctx):
    items = r.json.get('items')
    errs = []
    for i, w in enumerate(items):
        if not isinstance(w, dict) or set(w) != {'code', 'name', 'latency_ms'} or type(w['latency_ms']) is not int:
            errs.append('items[%d] %r: expected exactly code, name, latency_ms (an integer)' % (i, w))
    codes = [w.get('code') for w in items if isinstance(w, dict)]
    for c in ['north', 'south', 'east', ctx.vars['wa'], ctx.vars['wb'], ctx.vars['wc']]:
        if c not in codes:
            errs.append('warehouse %s is not listed' % c)
    if len(set(codes)) != len(codes):
        errs.append('codes repeat: %s' % codes)
    if ctx.db is not None:
        want = sorted(ctx.db.query('SELECT code FROM shop.warehouses'))
        if sorted(codes) != want:
            errs.append('listed %s, the table has %s' % (sorted(codes), want))
    return errs


def listed_warehouse(code, **want):
    def check(r, ctx):
        c = subst(code, ctx.vars)
        got = [w for w in r.json.get('items', []) if w.get('code') == c]
        if len(got) != 1:
            return ['warehouse %s listed %d times' % (c, len(got))]
        return subset_errors(subst(want, ctx.vars), got[0], 'warehouse %s' % c)
    return check


W32 = '{{P}}_-' + 'x' * 22          # 32 characters, every kind the rule allows

WAREHOUSES = [
    get('GET /warehouses is public: every warehouse, exactly its fields', '/warehouses',
        expect=status(200), check=check_warehouse_list),
    get('HEAD /warehouses', '/warehouses', expect=status(200, empty=True)) | {'method': 'HEAD'},
    wput('create: 201 + Location, latency_ms defaults to 0', '{{P}}-w', {'name': 'Test DC {{P}}'},
         expect=status(201, location='/warehouses/',
                       json={'code': '{{P}}-w', 'name': 'Test DC {{P}}', 'latency_ms': 0}),
         check=lambda r, ctx: [] if set(r.json) == {'code', 'name', 'latency_ms'} else
         ['fields %s' % sorted(r.json)]),
    get('the new warehouse is listed', '/warehouses', expect=status(200),
        check=listed_warehouse('{{P}}-w', name='Test DC {{P}}', latency_ms=0)),
    wput('update: 200, no Location', '{{P}}-w', {'name': 'Renamed {{P}}', 'latency_ms': 10000},
         expect=status(200, absent=['Location'],
                       json={'code': '{{P}}-w', 'name': 'Renamed {{P}}', 'latency_ms': 10000})),
    get('the update is listed', '/warehouses', expect=status(200),
        check=listed_warehouse('{{P}}-w', name='Renamed {{P}}', latency_ms=10000)),
    wput('PUT replaces: without latency_ms it is the default 0 again', '{{P}}-w', {'name': 'Renamed {{P}}'},
         expect=status(200, json={'latency_ms': 0})),
    wput('latency_ms 0 (the minimum), name of 200 characters', '{{P}}-w',
         {'name': 'é' * 200, 'latency_ms': 0}, expect=status(200, json={'name': 'é' * 200, 'latency_ms': 0})),
    wput('a code of 32 characters, every allowed kind', W32, {'name': 'W32 {{P}}'},
         expect=status(201, json={'code': W32, 'latency_ms': 0})),
    wput('a code starting with a digit', '0{{P}}', {'name': 'Digit {{P}}', 'latency_ms': 1},
         expect=status(201, json={'code': '0{{P}}', 'latency_ms': 1})),
    wput('latency back to 0 (the stock check asks every warehouse)', '0{{P}}', {'name': 'Digit {{P}}'},
         expect=status((200,))),
]

STOCK = [
    sput('200 with exactly warehouse, sku, quantity; one stock.changed', '{{wc}}', '{{U}}', {'quantity': 7},
         expect=status(200), check=lambda r, ctx: [] if r.json == {
             'warehouse': ctx.vars['wc'], 'sku': ctx.vars['U'], 'quantity': 7} else ['body %r' % r.json],
         events=[stock_ev('{{wc}}', '{{U}}', 7)], stock={'{{U}}': {'{{wa}}': 10, '{{wc}}': 7}}),
    sput('the same level again: 200, no event', '{{wc}}', '{{U}}', {'quantity': 7},
         expect=status(200, json={'quantity': 7}), events=[]),
    sput('quantity 0', '{{wc}}', '{{U}}', {'quantity': 0}, expect=status(200, json={'quantity': 0}),
         events=[stock_ev('{{wc}}', '{{U}}', 0)], stock={'{{U}}': {'{{wa}}': 10, '{{wc}}': 0}}),
    sput('a seeded product in a seeded warehouse, by its sku', 'north', 'SKU-000200', {'quantity': 1000},
         expect=status(200, json={'warehouse': 'north', 'sku': 'SKU-000200', 'quantity': 1000})),
    sput('a large level (10^9)', '{{wb}}', '{{Z}}', {'quantity': 10 ** 9},
         expect=status(200, json={'quantity': 10 ** 9})),
    sput('and back to 0', '{{wb}}', '{{Z}}', {'quantity': 0}, expect=status(200, json={'quantity': 0}),
         stock={'{{Z}}': {'{{wb}}': 0}}),
    dict(name='the levels just put are what the stock check sees', method='POST', path='/stock/check',
         body={'items': [{'sku': '{{U}}', 'quantity': 8}]}, expect=status(200), check=stock_seen),
]

EMAIL_254 = 'a' * 64 + '@' + '.'.join(['b' * 63, 'c' * 63, 'd' * 57]) + '.org'     # 254 characters
assert len(EMAIL_254) == 254

ORDERS = [
    opost('201 + Location + ETag: lines per warehouse, most stock first, ties by code',
          obody([('{{A}}', 7), ('{{B}}', 2)], email='Jane.Doe+shop@example.com'),
          expect=status(201, location='/orders/', headers={'ETag': '"1"'},
                        json={'status': 'pending', 'total_cents': 4000, 'currency': 'EUR',
                              'customer_email': 'Jane.Doe+shop@example.com', 'version': 1}),
          check=lambda r, ctx: lines_are(('{{A}}', 5, 500, '{{wb}}'), ('{{A}}', 2, 500, '{{wc}}'),
                                         ('{{B}}', 2, 250, '{{wa}}'))(r, ctx)
          + ([] if r.json['created_at'] == r.json['updated_at'] else ['created_at != updated_at']),
          events=created_events(('{{wb}}', '{{A}}', 0), ('{{wc}}', '{{A}}', 3), ('{{wa}}', '{{B}}', 18)),
          stock={'{{A}}': {'{{wa}}': 3, '{{wb}}': 0, '{{wc}}': 3}, '{{B}}': {'{{wa}}': 18, '{{wc}}': 1}},
          save={'o1': 'json:id', 'o1_body': save_json, 'O1': lambda r: r.json['id'].upper()}),
    opost('409 insufficient-stock names each short sku with requested and available',
          obody([('{{A}}', 7), ('{{B}}', 20), ('{{Z}}', 2)]),
          expect=problem(409, 'insufficient-stock'),
          check=insufficient(('{{A}}', 7, 6), ('{{B}}', 20, 19), ('{{Z}}', 2, 0)),
          stock={'{{A}}': {'{{wa}}': 3, '{{wb}}': 0, '{{wc}}': 3}, '{{B}}': {'{{wa}}': 18, '{{wc}}': 1}}),
    opost('409 names only the short skus', obody([('{{B}}', 1), ('{{Z}}', 1)]),
          expect=problem(409, 'insufficient-stock'), check=insufficient(('{{Z}}', 1, 0))),
    opost('quantity 10000 (the maximum) is valid: 409, not 422', obody([('{{B}}', 10000)]),
          expect=problem(409, 'insufficient-stock'), check=insufficient(('{{B}}', 10000, 19))),
    get('GET /orders/{id}: 200 + ETag, the body POST gave', '/orders/{{o1}}',
        expect=status(200, headers={'ETag': '"1"'}), check=same_body_as('o1_body')),
    get('an upper-case UUID is the same order', '/orders/{{O1}}', expect=status(200, json={'id': '{{o1}}'})),
    get('HEAD: status and ETag, no body', '/orders/{{o1}}', expect=status(200, empty=True,
                                                                        headers={'ETag': '"1"'})) | {'method': 'HEAD'},
    get('If-None-Match current: 304 + ETag', '/orders/{{o1}}', headers={'If-None-Match': '"1"'},
        expect=status(304, empty=True, headers={'ETag': '"1"'})),
    get('If-None-Match weak: 304', '/orders/{{o1}}', headers={'If-None-Match': 'W/"1"'},
        expect=status(304, empty=True)),
    get('If-None-Match *: 304', '/orders/{{o1}}', headers={'If-None-Match': '*'}, expect=status(304, empty=True)),
    get('If-None-Match other: 200', '/orders/{{o1}}', headers={'If-None-Match': '"2"'},
        expect=status(200, json={'id': '{{o1}}'})),
    # the price at order time stays on the order
    dict(name='the price of A moves to 999', method='PATCH', path='/products/{{A_id}}', auth=True,
         body={'price_cents': 999}, expect=status(200, json={'price_cents': 999})),
    get('the order keeps the price of the moment it was placed', '/orders/{{o1}}',
        expect=status(200, json={'total_cents': 4000}), check=same_body_as('o1_body')),
    opost('a new order takes the new price; a tie (3 and 3) goes to the first code',
          obody([('{{A}}', 1)]), expect=status(201, json={'total_cents': 999}),
          check=lines_are(('{{A}}', 1, 999, '{{wa}}')),
          events=created_events(('{{wa}}', '{{A}}', 2)), stock={'{{A}}': {'{{wa}}': 2, '{{wb}}': 0, '{{wc}}': 3}}),
    sput('A: one unit into {{wb}}', '{{wb}}', '{{A}}', {'quantity': 1}, expect=status(200)),
    opost('one sku over three warehouses: three lines, most first (3, 2, 1)', obody([('{{A}}', 6)]),
          expect=status(201, json={'total_cents': 6 * 999}),
          check=lines_are(('{{A}}', 3, 999, '{{wc}}'), ('{{A}}', 2, 999, '{{wa}}'), ('{{A}}', 1, 999, '{{wb}}')),
          events=created_events(('{{wc}}', '{{A}}', 0), ('{{wa}}', '{{A}}', 0), ('{{wb}}', '{{A}}', 0)),
          stock={'{{A}}': {'{{wa}}': 0, '{{wb}}': 0, '{{wc}}': 0}}),
    opost('A is sold out: 409, available 0', obody([('{{A}}', 1)]),
          expect=problem(409, 'insufficient-stock'), check=insufficient(('{{A}}', 1, 0))),
    # e-mail shapes that are fine
    opost('an e-mail of 254 characters', obody([('{{B}}', 1)], email=EMAIL_254),
          expect=status(201, json={'customer_email': EMAIL_254})),
    opost('an e-mail with a sub-domain, digits, dash', obody([('{{B}}', 1)], email='x_9@mail-1.sub.example.co.uk'),
          expect=status(201, json={'customer_email': 'x_9@mail-1.sub.example.co.uk'})),
    opost('Content-Type with charset=UTF-8', obody([('{{B}}', 1)]), ctype='application/json; charset=UTF-8',
          expect=status(201)),
    opost('a chunked body', obody([('{{B}}', 1)]), chunked=True, expect=status(201),
          stock={'{{B}}': {'{{wa}}': 14, '{{wc}}': 1}}),
    opost('no Idempotency-Key: the same body twice is two orders (this is the second)', obody([('{{B}}', 1)]),
          expect=status(201), check=lambda r, ctx: [] if r.json['id'] != ctx.vars['o1'] else ['same id']),
    # listing (admin)
    get('GET /orders needs the token: 401', '/orders', expect=problem(401, 'unauthorized')),
    get('GET /orders with a wrong token: 403', '/orders', headers={'Authorization': 'Bearer not-the-token-000'},
        expect=problem(403, 'forbidden')),
    get('GET /orders: 200, a list of orders', '/orders?limit=2', auth=True, expect=status(200, items=2),
        check=lambda r, ctx: [] if r.json['next'] else ['next is null on a full first page']),
    get('GET /orders?status=pending lists only pending orders', '/orders?status=pending&limit=500', auth=True,
        expect=status(200), check=lambda r, ctx: [
            'status %s listed' % o['status'] for o in r.json['items'] if o['status'] != 'pending']),
    get('a products cursor for the orders walks', '/products?limit=1', expect=status(200),
        save={'pcursor': 'json:next'}),
]


# ------------------------------------------------------------------- walks

def run_walk(ctx, query, limit):
    """GET /orders?query&limit walked to the end: every order once, full
    pages until the last, the same orders as the table."""
    name = 'GET /orders?%slimit=%d: walk every page' % (query + '&' if query else '', limit)
    seen, errs, after, pages = [], [], None, 0
    auth = [('Authorization', 'Bearer ' + ctx.token)]
    while pages < 2000:
        path = '/orders?' + '&'.join(x for x in [query, 'limit=%d' % limit,
                                                 'after=' + urllib.parse.quote(after, safe='') if after else '']
                                     if x)
        try:
            r = send(ctx.tg, 'GET', path, auth)
        except Exception as e:     # noqa: BLE001
            errs.append('request failed: %r' % e)
            break
        pages += 1
        if r.status != 200:
            errs += ['page %d (%s): status %d' % (pages, path, r.status), r.summary()]
            break
        errs += convention_errors({'method': 'GET', 'path': '/orders'}, r)
        items, nxt = r.json.get('items', []), r.json.get('next')
        if nxt is not None and len(items) != limit:
            errs.append('page %d is not full (%d of %d) yet has a next cursor' % (pages, len(items), limit))
        if len(items) > limit:
            errs.append('page %d has %d items, limit %d' % (pages, len(items), limit))
        seen += [o.get('id') for o in items]
        if nxt is None:
            break
        after = nxt
    else:
        errs.append('more than 2000 pages: next never becomes null')
    dups = sorted({i for i in seen if seen.count(i) > 1})
    if dups:
        errs.append('duplicates across pages: %s' % dups[:10])
    if ctx.db is not None and not errs:
        where = 'WHERE status = %s' % lit(query.split('=', 1)[1]) if query else ''
        want = sorted(ctx.db.query('SELECT id FROM shop.orders %s' % where))
        if sorted(seen) != want:
            errs.append('walked %d orders, the table has %d; missing %s, unexpected %s' % (
                len(seen), len(want), sorted(set(want) - set(seen))[:5], sorted(set(seen) - set(want))[:5]))
        if not want:
            errs.append('the walk compares nothing: no such orders')
    result(ctx, name, errs)


# ------------------------------------------------------------- idempotency

def run_idempotency(ctx):
    P, I = ctx.vars['P'], ctx.vars['I']
    key = 'key-%s-1' % P
    body = dumps({'items': [{'sku': I, 'quantity': 2}], 'customer_email': 'idem@example.com'})
    ctx.vars.update(ikey=key, ibody=body.decode())
    run_ocase(ctx, opost('Idempotency-Key: the first request creates (201)', '{{ibody}}',
                         headers={'Idempotency-Key': '{{ikey}}'},
                         expect=status(201, location='/orders/', headers={'ETag': '"1"'}),
                         events=created_events(('{{wa}}', '{{I}}', 48)),
                         stock={'{{I}}': {'{{wa}}': 48, '{{wb}}': 50}},
                         save={'i1': 'json:id', 'i1_body': save_json}))
    same = dict(expect=status(200, json={'id': '{{i1}}'}, headers={'ETag': '"1"'}), events=[],
                stock={'{{I}}': {'{{wa}}': 48, '{{wb}}': 50}}, check=same_body_as('i1_body'))
    spelled = [
        ('the same bytes', body.decode()),
        ('keys in another order, other whitespace',
         '\n{ "customer_email" : "idem@example.com",\t"items":[ {"quantity":2, "sku":"%s"} ] }\n' % I),
        ('escapes for the same characters', '{"items":[{"sku":"%s","quantity":2}],'
                                            '"customer_email":"idem\\u0040example.com"}' % I.replace('-', '\\u002d')),
    ]
    for what, b in spelled:
        run_ocase(ctx, opost('Idempotency-Key: a retry with %s: 200, the same order, nothing reserved twice' % what,
                             b, headers={'Idempotency-Key': '{{ikey}}'}, **same))
    run_ocase(ctx, opost('the same body with another key: a new order (201)', '{{ibody}}',
                         headers={'Idempotency-Key': '{{ikey}}-other'}, expect=status(201),
                         check=lambda r, ctx: [] if r.json['id'] != ctx.vars['i1'] else ['the same id'],
                         stock={'{{I}}': {'{{wa}}': 48, '{{wb}}': 48}}))
    run_ocase(ctx, opost('a key of 200 characters', '{{ibody}}', headers={'Idempotency-Key': 'k' * 192 + P},
                         expect=status(201), save={'i200': 'json:id'}))
    run_ocase(ctx, opost('a key of 200 characters, again: 200, the same order', '{{ibody}}',
                         headers={'Idempotency-Key': 'k' * 192 + P}, expect=status(200, json={'id': '{{i200}}'}),
                         events=[]))
    run_ocase(ctx, opost('a key with spaces and punctuation (printable ASCII)', '{{ibody}}',
                         headers={'Idempotency-Key': 'a b/c:d=e"f\'g{{P}}~'}, expect=status(201)))

    # A refused request uses no key: the retry after restocking places the order.
    ctx.vars['ikey3'] = key + '-after-409'
    run_ocase(ctx, opost('a key whose request got 409 insufficient-stock', obody([('{{I}}', 500)]),
                         headers={'Idempotency-Key': '{{ikey3}}'}, expect=problem(409, 'insufficient-stock')))
    run_ocase(ctx, sput('I: restocked to 500 in {{wb}}', '{{wb}}', '{{I}}', {'quantity': 500}, expect=status(200)))
    run_ocase(ctx, opost('the same key and body after restocking: placed (201)', obody([('{{I}}', 500)]),
                         headers={'Idempotency-Key': '{{ikey3}}'}, expect=status(201),
                         stock={'{{I}}': {'{{wa}}': 46, '{{wb}}': 0}}))
    run_ocase(ctx, sput('I: back to 50 in {{wb}}', '{{wb}}', '{{I}}', {'quantity': 50}, expect=status(200)))

    # 20 at once with one key: one order.
    n = 20
    ckey = '%s-concurrent' % key
    cbody = dumps({'items': [{'sku': I, 'quantity': 1}], 'customer_email': 'idem@example.com'})
    before = stock_of(ctx, I) if ctx.db else None
    eid = last_event(ctx) if ctx.db else 0
    res = parallel(n, lambda i: send(ctx.tg, 'POST', '/orders', [JSON, ('Idempotency-Key', ckey)], cbody),
                   together=True)
    c = tally(res)
    ids = {r.json.get('id') for r in res if isinstance(r, Resp) and r.status in (200, 201)}
    errs = [] if c.get(201) == 1 and c.get(200) == n - 1 and len(ids) == 1 else \
        ['got %s, ids %s' % (c, sorted(map(str, ids)))]
    for r in res:
        if isinstance(r, Resp):
            errs += convention_errors({'method': 'POST'}, r)
    if ctx.db is not None and not errs:
        oid = ids.pop()
        n_orders = q1(ctx, 'SELECT count(*) FROM shop.orders o JOIN shop.idempotency_keys k ON k.order_id = o.id'
                           ' WHERE k.key = %s' % lit(ckey))
        created = [d.get('id') for t, d in events_since(ctx, eid) if t == 'order.created']
        after = stock_of(ctx, I)
        if n_orders != '1' or created != [oid]:
            errs.append('orders for the key: %s; order.created events for %s' % (n_orders, created))
        if sum(before.values()) - sum(after.values()) != 1:
            errs.append('stock %s -> %s: expected exactly one unit taken' % (before, after))
    result(ctx, 'Idempotency-Key: %d concurrent requests with one key: one 201, %d x 200, one order, '
                'one unit reserved' % (n, n - 1), errs)


# ------------------------------------------------------------ state machine

def run_states(ctx):
    """Every state x every target state, each built through legal moves."""
    M = ctx.vars['M']
    for frm in ORDER_STATES:
        try:
            oid, v = new_order(ctx, M, frm)
        except AssertionError as e:
            result(ctx, 'states: an order in %s' % frm, [str(e)])
            continue
        ctx.vars.update(so=oid)
        for to in ORDER_STATES:
            if to in LEGAL[frm]:
                continue
            run_ocase(ctx, trans('%s -> %s is illegal: 409 invalid-transition, from, to, allowed %s'
                                 % (frm, to, LEGAL[frm]), '{{so}}', to,
                                 expect=problem(409, 'invalid-transition'), check=refused_move(frm, to)),
                      extra_check=lambda r, oid=oid, frm=frm, v=v: [] if ctx.db is None or
                      order_row(ctx, oid) == (frm, v) else
                      ['the order changed: %s, expected (%s, %d)' % (order_row(ctx, oid), frm, v)])
        for to in LEGAL[frm]:
            try:
                oid, v = new_order(ctx, M, frm)
            except AssertionError as e:
                result(ctx, 'states: an order in %s' % frm, [str(e)])
                continue
            ctx.vars.update(so=oid)
            restock = (frm, to) in RESTOCKS
            before = stock_of(ctx, M) if ctx.db else {}
            want_stock = dict(before, **{ctx.vars['wa']: before.get(ctx.vars['wa'], 0) + 1}) if restock else before
            run_ocase(ctx, trans('%s -> %s is legal: 200, version %d, one order.status_changed%s'
                                 % (frm, to, v + 1, ', one unit back to {{wa}}' if restock else ', stock kept'),
                                 '{{so}}', to,
                                 expect=status(200, json={'id': oid, 'status': to, 'version': v + 1},
                                               headers={'ETag': '"%d"' % (v + 1)}),
                                 events=moved_events(frm, to, *([(ctx.vars['wa'], M, want_stock.get(
                                     ctx.vars['wa']))] if restock else [])),
                                 stock={M: want_stock} if ctx.db else None))

    # If-Match on transitions
    try:
        oid, v = new_order(ctx, M, 'pending')
    except AssertionError as e:
        result(ctx, 'If-Match: an order', [str(e)])
        return
    ctx.vars.update(im=oid)
    for c in [
        trans('If-Match stale ("2" on version 1): 412, nothing moves', '{{im}}', 'paid',
              headers={'If-Match': '"2"'}, expect=problem(412, 'precondition-failed')),
        trans('If-Match weak W/"1" (strong comparison): 412', '{{im}}', 'paid',
              headers={'If-Match': 'W/"1"'}, expect=problem(412, 'precondition-failed')),
        trans('If-Match current: 200, ETag "2"', '{{im}}', 'paid', headers={'If-Match': '"1"'},
              expect=status(200, json={'status': 'paid', 'version': 2}, headers={'ETag': '"2"'}),
              events=moved_events('pending', 'paid')),
        trans('If-Match of the old version again: 412', '{{im}}', 'packed', headers={'If-Match': '"1"'},
              expect=problem(412, 'precondition-failed')),
        trans('If-Match stale on an illegal move: 412 first', '{{im}}', 'delivered', headers={'If-Match': '"1"'},
              expect=problem(412, 'precondition-failed')),
        trans('If-Match current on an illegal move: 409', '{{im}}', 'delivered', headers={'If-Match': '"2"'},
              expect=problem(409, 'invalid-transition'), check=refused_move('paid', 'delivered')),
        trans('If-Match *: 200', '{{im}}', 'packed', headers={'If-Match': '*'},
              expect=status(200, json={'status': 'packed', 'version': 3})),
        trans('If-Match list holding the current one: 200', '{{im}}', 'shipped', headers={'If-Match': '"1", "3"'},
              expect=status(200, json={'status': 'shipped', 'version': 4})),
        get('GET shows the moves: version 4, ETag "4"', '/orders/{{im}}',
            expect=status(200, json={'status': 'shipped', 'version': 4}, headers={'ETag': '"4"'})),
        get('If-None-Match of the old version: 200', '/orders/{{im}}', headers={'If-None-Match': '"1"'},
            expect=status(200)),
        get('If-None-Match of the new version: 304', '/orders/{{im}}', headers={'If-None-Match': '"4"'},
            expect=status(304, empty=True, headers={'ETag': '"4"'})),
    ]:
        run_ocase(ctx, c)


def run_restock(ctx):
    """Cancel and refunds before shipment put each line's units back where
    they came from, exactly; a refund after delivery does not."""
    R, wa, wb, wc = ctx.vars['R'], ctx.vars['wa'], ctx.vars['wb'], ctx.vars['wc']
    full = {wa: 2, wb: 2, wc: 1}
    placed = {wa: 0, wb: 1, wc: 1}       # 3 units: 2 from wa (a tie with wb, wa first), 1 from wb
    for frm, path in [('pending', []), ('paid', ['paid']), ('packed', ['paid', 'packed'])]:
        to = 'cancelled' if frm == 'pending' else 'refunded'
        ctx.vars['ro'] = ''
        run_ocase(ctx, opost('restock (%s -> %s): an order of 3 x R over {{wa}} and {{wb}}' % (frm, to),
                                 obody([('{{R}}', 3)]), expect=status(201),
                                 check=lines_are(('{{R}}', 2, 300, '{{wa}}'), ('{{R}}', 1, 300, '{{wb}}')),
                                 stock={R: placed} if ctx.db else None, save={'ro': 'json:id'}))
        if not ctx.vars['ro']:
            continue
        errs = []
        for step in path:
            m = move(ctx, ctx.vars['ro'], step)
            if m.status != 200:
                errs.append('%s: %s' % (step, m.summary()))
            elif ctx.db and stock_of(ctx, R) != placed:
                errs.append('stock moved on %s: %s' % (step, stock_of(ctx, R)))
        if errs:
            result(ctx, 'restock: moving the order to %s' % frm, errs)
            continue
        v = len(path) + 1
        run_ocase(ctx, trans('%s -> %s puts 2 back in {{wa}} and 1 in {{wb}}, exactly' % (frm, to), '{{ro}}', to,
                             expect=status(200, json={'status': to, 'version': v + 1}),
                             events=moved_events(frm, to, (wa, R, 2), (wb, R, 2)),
                             stock={R: full} if ctx.db else None))
    # units come back on top of the level of the moment
    ro = run_ocase(ctx, opost('restock on top: an order of 3 x R', obody([('{{R}}', 3)]), expect=status(201),
                              stock={R: placed} if ctx.db else None, save={'ro': 'json:id'}))
    if ro is not None and ro.status == 201:
        run_ocase(ctx, sput('restock on top: {{wa}} receives 10 meanwhile', '{{wa}}', '{{R}}', {'quantity': 10},
                            expect=status(200)))
        run_ocase(ctx, trans('restock on top: cancel adds 2 to the 10 in {{wa}} and 1 in {{wb}}', '{{ro}}',
                             'cancelled', expect=status(200, json={'status': 'cancelled'}),
                             events=moved_events('pending', 'cancelled', (wa, R, 12), (wb, R, 2)),
                             stock={R: {wa: 12, wb: 2, wc: 1}} if ctx.db else None))
        run_ocase(ctx, sput('R: {{wa}} back to 2', '{{wa}}', '{{R}}', {'quantity': 2}, expect=status(200)))
    # after delivery: money back, not stock
    ctx.vars['ro'] = ''
    run_ocase(ctx, opost('no restock after delivery: an order of 3 x R', obody([('{{R}}', 3)]), expect=status(201),
                         stock={R: placed} if ctx.db else None, save={'ro': 'json:id'}))
    if ctx.vars['ro']:
        for i, (frm, to) in enumerate([('pending', 'paid'), ('paid', 'packed'), ('packed', 'shipped'),
                                       ('shipped', 'delivered'), ('delivered', 'refunded')]):
            run_ocase(ctx, trans('%s -> %s keeps the stock as it is' % (frm, to), '{{ro}}', to,
                                 expect=status(200, json={'status': to, 'version': i + 2}),
                                 events=moved_events(frm, to), stock={R: placed} if ctx.db else None))


def run_concurrent_moves(ctx):
    """Parallel moves of one order: one wins, the rest lose cleanly."""
    M = ctx.vars['M']
    for rnd in range(3):
        try:
            oid, v = new_order(ctx, M, 'pending')
        except AssertionError as e:
            result(ctx, 'concurrent moves: an order', [str(e)])
            return
        before = stock_of(ctx, M) if ctx.db else None
        eid = last_event(ctx) if ctx.db else 0
        n = 20
        res = parallel(n, lambda i: move(ctx, oid, 'paid' if i % 2 else 'cancelled'), together=True)
        c = tally(res)
        won = [r.json.get('status') for r in res if isinstance(r, Resp) and r.status == 200]
        losers_ok = all(r.json.get('type', '').endswith('/invalid-transition')
                        for r in res if isinstance(r, Resp) and r.status == 409)
        errs = [] if c.get(200) == 1 and c.get(409) == n - 1 and losers_ok else ['got %s' % c]
        if ctx.db is not None and not errs:
            row = order_row(ctx, oid)
            moves = [d for t, d in events_since(ctx, eid) if t == 'order.status_changed' and d.get('id') == oid]
            if row != (won[0], 2) or len(moves) != 1:
                errs.append('the order is %s with %d status events; the winner said %s' % (row, len(moves), won))
            after = stock_of(ctx, M)
            wa = ctx.vars['wa']
            want = dict(before, **{wa: before[wa] + 1}) if won[0] == 'cancelled' else before
            if after != want:
                errs.append('stock %s -> %s, expected %s (winner %s)' % (before, after, want, won[0]))
        result(ctx, 'concurrent moves (round %d): 10 x pending->paid and 10 x pending->cancelled at once: '
                    'one 200, 19 x 409 invalid-transition, one event' % (rnd + 1), errs)
    try:
        oid, v = new_order(ctx, M, 'pending')
    except AssertionError as e:
        result(ctx, 'concurrent moves: an order', [str(e)])
        return
    n = 10
    res = parallel(n, lambda i: move(ctx, oid, 'paid', if_match='"1"'), together=True)
    c = tally(res)
    lost = sum(c.get(k, 0) for k in (409, 412))
    errs = [] if c.get(200) == 1 and lost == n - 1 else ['got %s' % c]
    if ctx.db is not None and order_row(ctx, oid) != ('paid', 2):
        errs.append('the order is %s, expected (paid, 2)' % (order_row(ctx, oid),))
    result(ctx, 'concurrent moves: %d x pending->paid with If-Match "1": one 200, %d x 412 (or 409)' % (n, n - 1),
           errs)


# -------------------------------------------------------------------- race

def run_race(ctx, clients=60, rounds=((1, (1, 0, 0)), (5, (2, 2, 1)), (17, (6, 6, 5)))):
    """Never oversell: K units over three warehouses, many one-unit orders
    at once: exactly K succeed, the rest 409, no stock below 0."""
    P, whs = ctx.vars['P'], [ctx.vars['wa'], ctx.vars['wb'], ctx.vars['wc']]
    for k, spread in rounds:
        sku = '%s-orace%d' % (P, k)
        setup = [send(ctx.tg, 'POST', '/products', admin(ctx),
                      dumps({'sku': sku, 'name': 'Race %d %s' % (k, P), 'price_cents': 100, 'currency': 'EUR'}))]
        setup += [put_stock(ctx, w, sku, n) for w, n in zip(whs, spread)]
        bad = [r.summary() for r in setup if r.status not in (200, 201)]
        name = 'never oversell: stock %d (%s), %d concurrent one-unit orders: %d x 201, %d x 409 ' \
               'insufficient-stock, stock 0 everywhere' % (k, '+'.join(map(str, spread)), clients, k, clients - k)
        if bad:
            result(ctx, name, ['setup: ' + b for b in bad])
            continue
        eid = last_event(ctx) if ctx.db else 0
        body = dumps({'items': [{'sku': sku, 'quantity': 1}], 'customer_email': 'race@example.com'})
        res = parallel(clients, lambda i: send(ctx.tg, 'POST', '/orders', [JSON], body, timeout=60), together=True)
        c = tally(res)
        errs = [] if c.get(201) == k and c.get(409) == clients - k else ['got %s' % c]
        took = {}
        for r in res:
            if not isinstance(r, Resp):
                continue
            errs += convention_errors({'method': 'POST'}, r)
            if r.status == 201:
                lines = r.json.get('items', [])
                if len(lines) != 1 or lines[0].get('quantity') != 1 or lines[0].get('warehouse') not in whs:
                    errs.append('a 201 with lines %s' % lines)
                else:
                    took[lines[0]['warehouse']] = took.get(lines[0]['warehouse'], 0) + 1
            elif r.status == 409:
                items = r.json.get('items')
                if not r.json.get('type', '').endswith('/insufficient-stock') or \
                        items != [{'sku': sku, 'requested': 1, 'available': 0}]:
                    errs.append('a 409 that is not insufficient-stock with available 0: %s' % r.body[:300])
        want_took = {w: n for w, n in zip(whs, spread) if n}
        if not errs and took != want_took:
            errs.append('units taken per warehouse %s, expected %s' % (took, want_took))
        if ctx.db is not None:
            st = stock_of(ctx, sku)
            if any(q != 0 for q in st.values()):
                errs.append('final stock %s, expected 0 everywhere' % st)
            lines = q1(ctx, 'SELECT count(*) || \' \' || coalesce(sum(quantity), 0) FROM shop.order_lines'
                            ' WHERE sku = %s' % lit(sku))
            if lines != '%d %d' % (k, k):
                errs.append('order lines (count, units) %s, expected %d %d' % (lines, k, k))
            evs = events_since(ctx, eid)
            n_stock = sum(1 for t, d in evs if t == 'stock.changed' and d.get('sku') == sku)
            n_created = sum(1 for t, d in evs if t == 'order.created' and d['items'][0]['sku'] == sku)
            negative = [d for t, d in evs if t == 'stock.changed' and d.get('quantity', 0) < 0]
            if n_stock != k or n_created != k or negative:
                errs.append('%d stock.changed and %d order.created events (expected %d each); negative: %s'
                            % (n_stock, n_created, k, negative[:3]))
        result(ctx, name, errs)
    if ctx.db is None:
        ctx.tap.skip('[%s] never oversell: the CHECK constraint refuses a negative level' % ctx.tg.name, 'no database')
        return
    sku = '%s-orace1' % P
    errs = []
    try:
        ctx.db.query('UPDATE shop.stock SET quantity = -1 WHERE warehouse = %s AND product_id = '
                     '(SELECT id FROM shop.products WHERE sku = %s) RETURNING quantity' % (lit(whs[0]), lit(sku)))
        errs.append('UPDATE ... SET quantity = -1 succeeded')
    except RuntimeError as e:
        if 'check constraint' not in str(e):
            errs.append('failed, but not on a check constraint: %s' % e)
    if stock_of(ctx, sku).get(whs[0]) != 0:
        errs.append('the row is now %s' % stock_of(ctx, sku))
    result(ctx, 'never oversell: the CHECK constraint refuses a negative level (UPDATE ... SET quantity = -1 fails)',
           errs)


# ----------------------------------------------------------------- webhook

def run_webhook(ctx):
    if ctx.webhook_secret is None:
        ctx.tap.skip('[%s] payment webhook' % ctx.tg.name, 'no --webhook-secret-file')
        return False
    H, P = ctx.vars['H'], ctx.vars['P']

    def order(var, qty, state='pending'):
        try:
            oid, v = new_order(ctx, H, state, qty)
        except AssertionError as e:
            result(ctx, 'webhook: an order in %s' % state, [str(e)])
            return False
        ctx.vars[var] = oid
        return True

    # payment.succeeded -> paid, then its replays
    if order('h1', 2):
        ctx.vars.update(h1_total=2 * 700)
        succeeded = {'id': 'evt-%s-ok1' % P, 'type': 'payment.succeeded', 'order_id': ctx.vars['h1'],
                     'amount_cents': 1400, 'currency': 'EUR'}
        ctx.vars['h1_event'] = json.dumps(succeeded)
        run_ocase(ctx, hook('payment.succeeded: pending -> paid', '{{h1_event}}',
                            expect=status(200, json={'id': '{{h1}}', 'status': 'paid', 'version': 2},
                                          headers={'ETag': '"2"'}),
                            events=moved_events('pending', 'paid'), save={'h1_body': save_json}))
        run_ocase(ctx, hook('a replay of the event (same bytes, new signature): 200, the same result, nothing changes',
                            '{{h1_event}}', expect=status(200), check=same_body_as('h1_body'), events=[]))
        run_ocase(ctx, hook('a replay spelled differently (key order, spaces): 200, nothing changes',
                            json.dumps(dict(reversed(list(succeeded.items()))), indent=1),
                            expect=status(200, json={'status': 'paid', 'version': 2}), events=[]))
        run_ocase(ctx, hook('a replay signed 250 s ago: 200, nothing changes', '{{h1_event}}', sign={'skew': -250},
                            expect=status(200, json={'status': 'paid', 'version': 2}), events=[]))
        run_ocase(ctx, trans('the admin packs the paid order', '{{h1}}', 'packed', expect=status(200)))
        run_ocase(ctx, hook('a replay after the order moved on: 200, changes nothing', '{{h1_event}}',
                            expect=status(200, json={'id': '{{h1}}', 'status': 'packed', 'version': 3}), events=[]))
        if ctx.db is not None:
            n = q1(ctx, 'SELECT count(*) FROM shop.payment_events WHERE id = %s' % lit(succeeded['id']))
            result(ctx, 'webhook: the event is recorded once', [] if n == '1' else ['%s rows' % n])

    # payment.failed -> cancelled, refund.created before shipment: the units go back exactly
    def restocked(frm, to, s0):
        def want(r, c):
            return moved_events(frm, to)(r, c) + [stock_ev(ln['warehouse'], H, s0[ln['warehouse']])
                                                  for ln in r.json.get('items', [])]
        return want
    s0 = stock_of(ctx, H) if ctx.db else None
    if order('h2', 3):
        run_ocase(ctx, hook('payment.failed: pending -> cancelled, the units back where they came from', {
            'id': 'evt-{{P}}-failed', 'type': 'payment.failed', 'order_id': '{{h2}}', 'reason': 'card_declined'},
            expect=status(200, json={'id': '{{h2}}', 'status': 'cancelled', 'version': 2}),
            events=restocked('pending', 'cancelled', s0), stock={H: s0} if s0 else None))
    s0 = stock_of(ctx, H) if ctx.db else None
    if order('h3', 1, 'paid'):
        run_ocase(ctx, hook('refund.created on a paid order: -> refunded, the unit back where it came from', {
            'id': 'evt-{{P}}-refund1', 'type': 'refund.created', 'order_id': '{{h3}}', 'amount_cents': 700,
            'currency': 'EUR'},
            expect=status(200, json={'status': 'refunded', 'version': 3}),
            events=restocked('paid', 'refunded', s0), stock={H: s0} if s0 else None))
    if order('h4', 1, 'delivered'):
        run_ocase(ctx, hook('refund.created on a delivered order: -> refunded, no stock back', {
            'id': 'evt-{{P}}-refund2', 'type': 'refund.created', 'order_id': '{{h4}}', 'amount_cents': 700,
            'currency': 'EUR'},
            expect=status(200, json={'status': 'refunded', 'version': 6}),
            events=moved_events('delivered', 'refunded')))
    if order('h5', 1):
        run_ocase(ctx, hook('an upper-case order_id is the same order', {
            'id': 'evt-{{P}}-upper', 'type': 'payment.succeeded', 'order_id': ctx.vars['h5'].upper(),
            'amount_cents': 700, 'currency': 'EUR'},
            expect=status(200, json={'id': '{{h5}}', 'status': 'paid'})))
    # orders the bad-input table refers to
    ok = order('h_pending', 2) and order('h_cancelled', 1, 'cancelled') and order('h_usd_check', 1)
    ctx.vars.update(h_total=1400)

    # webhook moves racing admin transitions: exactly one wins
    for rnd, (state, kind, admin_to) in enumerate([('pending', 'payment.succeeded', 'cancelled'),
                                                   ('pending', 'payment.failed', 'paid'),
                                                   ('delivered', 'refund.created', 'refunded'),
                                                   ('pending', 'payment.succeeded', 'cancelled')]):
        if not order('hr', 1, state):
            continue
        oid = ctx.vars['hr']
        eid = last_event(ctx) if ctx.db else 0
        events = []
        for i in range(4):
            e = {'id': 'evt-%s-race%d-%d' % (P, rnd, i), 'type': kind, 'order_id': oid}
            if kind == 'payment.failed':
                e['reason'] = 'card_declined'
            else:
                e.update(amount_cents=700, currency='EUR')
            events.append(e)

        def one(i):
            if i % 2:
                return hook_send(ctx, events[i // 2])
            return move(ctx, oid, admin_to)
        res = parallel(8, one, together=True)
        c = tally(res)
        ok409 = all(r.json.get('type', '').endswith('/invalid-transition')
                    for r in res if isinstance(r, Resp) and r.status == 409)
        errs = [] if c.get(200) == 1 and c.get(409) == 7 and ok409 else ['got %s' % c]
        if ctx.db is not None and not errs:
            row = order_row(ctx, oid)
            moves = [d for t, d in events_since(ctx, eid) if t == 'order.status_changed' and d.get('id') == oid]
            i_won = [i for i, r in enumerate(res) if isinstance(r, Resp) and r.status == 200][0]
            winner, by_hook = res[i_won].json['status'], i_won % 2 == 1
            v0 = len(PATH[state]) + 1
            if row != (winner, v0 + 1) or len(moves) != 1:
                errs.append('the order is %s with %d status events; the winner said %s' % (row, len(moves), winner))
            n = q1(ctx, "SELECT count(*) FROM shop.payment_events WHERE id LIKE %s" % lit('evt-%s-race%d-%%' % (P, rnd)))
            if n != ('1' if by_hook else '0'):
                errs.append('%s payment events recorded (won by %s)' % (n, 'the webhook' if by_hook else 'the admin'))
        result(ctx, 'webhook race (round %d): 4 x %s and 4 x admin ->%s on one %s order at once: one 200, '
                    '7 x 409' % (rnd + 1, kind, admin_to, state), errs)

    # a provider's events for one order arriving at once (different ids): one
    # applies. The window for a wrong lock order is small: many rounds.
    rounds, n, errs = 20, 8, []
    for rnd in range(rounds):
        if not order('hr', 1):
            break
        oid = ctx.vars['hr']
        evs = [{'id': 'evt-%s-burst%d-%d' % (P, rnd, i), 'type': 'payment.succeeded', 'order_id': oid,
                'amount_cents': 700, 'currency': 'EUR'} if i % 2 else
               {'id': 'evt-%s-burst%d-%d' % (P, rnd, i), 'type': 'payment.failed', 'order_id': oid,
                'reason': 'card_declined'} for i in range(n)]
        res = parallel(n, lambda i: hook_send(ctx, evs[i]), together=True)
        c = tally(res)
        if c.get(200) != 1 or c.get(409) != n - 1:
            errs.append('round %d: got %s' % (rnd + 1, c))
            errs += ['  %d after %.2f s: %s' % (r.status, r.elapsed, r.body[:160].decode('utf-8', 'replace'))
                     for r in res if isinstance(r, Resp) and r.status >= 500][:2]
            break           # shown; more rounds would only cost more time
        elif ctx.db is not None:
            winner = [r for r in res if isinstance(r, Resp) and r.status == 200][0].json['status']
            n_ev = q1(ctx, 'SELECT count(*) FROM shop.payment_events WHERE order_id = %s' % lit(oid))
            if order_row(ctx, oid) != (winner, 2) or n_ev != '1':
                errs.append('round %d: the order is %s, %s payment events recorded; the winner said %s'
                            % (rnd + 1, order_row(ctx, oid), n_ev, winner))
    result(ctx, 'webhook burst: %d rounds of %d events with different ids (succeeded and failed) for one '
                'pending order at once: each round one 200, %d x 409' % (rounds, n, n - 1), errs)
    return ok



# ------------------------------------------------------------- bad inputs

def field_like(prefix):
    def check(r, ctx):
        got = [e.get('field', '') for e in r.json.get('errors', [])]
        return [] if any(f.startswith(prefix) for f in got) else ['no field starting with %r in %s' % (prefix, got)]
    return check


def e422(name, case, *fields):
    """case with a 422 validation naming fields (all of them, and only those)."""
    c = dict(case, name=name, expect=problem(422, 'validation', fields=list(fields)))
    c['check'] = fields_exactly(*fields)
    return c


def hook422(name, body, *fields):
    return e422(name, hook('', body), *fields)


def o422(name, body, *fields):
    return e422(name, opost('', body), *fields)


def t422(name, body, *fields):
    return e422(name, trans('', '{{o1}}', None, body=body), *fields)


def w422(name, code, body, *fields):
    return e422(name, wput('', code, body), *fields)


def s422(name, body, *fields):
    return e422(name, sput('', '{{wa}}', '{{B}}', body), *fields)


BAD_UUIDS = [
    ('abc', 'abc'), ('0', '0'), ('32 hex digits, no dashes', '0123456789abcdef0123456789abcdef'),
    ('braces', '%7B{{o1}}%7D'), ('35 characters', '0123456-89ab-cdef-0123-456789abcdef'),
    ('37 characters', '01234567-89ab-cdef-0123-456789abcdef0'), ('a g in it', '01234567-89ab-cdef-0123-456789abcdeg'),
    ('dashes misplaced', '0123456789-ab-cdef-0123-456789abcdef'), ('urn:uuid: prefix', 'urn:uuid:{{o1}}'),
    ('3000 characters', 'a' * 3000), ('invalid UTF-8', '%FF%FE'), ('a space', '{{o1}}%20'),
    ('unknown (valid shape)', '6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11'),
    ('the nil UUID', '00000000-0000-0000-0000-000000000000'), ('an order id with a trailing slash', '{{o1}}/'),
]

BAD = [
    # ---- warehouses: authentication, code rules, fields
    wput('no Authorization: 401', '{{P}}-nope', {'name': 'x'}, auth=None, expect=problem(401, 'unauthorized')),
    wput('wrong token: 403', '{{P}}-nope', {'name': 'x'}, auth=None,
         headers={'Authorization': 'Bearer not-the-token-0123456789abcdef'}, expect=problem(403, 'forbidden')),
    wput('a token differing in the last character: 403', '{{P}}-nope', {'name': 'x'}, auth=None,
         headers={'Authorization': 'Bearer {{token_off}}'}, expect=problem(403, 'forbidden')),
    wput('Basic scheme: 401', '{{P}}-nope', {'name': 'x'}, auth=None,
         headers={'Authorization': 'Basic YWRtaW46YWRtaW4='}, expect=problem(401, 'unauthorized')),
    wput('no Authorization and a broken body: 401 first', '{{P}}-nope', '{"name":', auth=None,
         expect=problem(401, 'unauthorized')),
    wput('updating without the token: 401', '{{wa}}', {'name': 'Hijacked'}, auth=None,
         expect=problem(401, 'unauthorized')),
] + [
    w422('code %s: 422' % what, code, {'name': 'x'}, 'code') for what, code in [
        ('with upper case', 'Bad{{P}}'), ('starting with -', '-{{P}}'), ('starting with _', '_{{P}}'),
        ('with a dot', '{{P}}.x'), ('of 33 characters', '{{P}}' + 'x' * 25), ('with a space', '{{P}}%20x'),
        ('with a non-ASCII letter', '%C3%A9{{P}}'), ('with a colon', '{{P}}:x')]
] + [
    wput('code with an encoded slash: 404 or 422', '{{P}}%2Fx', {'name': 'x'}, expect=status((404, 422))),
    w422('name missing', '{{P}}-nope', {'latency_ms': 1}, 'name'),
    w422('name empty', '{{P}}-nope', {'name': ''}, 'name'),
    w422('name of 201 characters', '{{P}}-nope', {'name': 'é' * 201}, 'name'),
    w422('name null', '{{P}}-nope', {'name': None}, 'name'),
    w422('name not a string', '{{P}}-nope', {'name': 5}, 'name'),
    w422('name empty on update', '{{wa}}', {'name': ''}, 'name'),
] + [
    w422('latency_ms %s' % what, '{{P}}-nope', '{"name":"x","latency_ms":%s}' % v, 'latency_ms')
    for what, v in [('-1', '-1'), ('10001', '10001'), ('"5"', '"5"'), ('1.5', '1.5'), ('true', 'true'),
                    ('1e3', '1e3'), ('2^63', '9223372036854775808'), ('a list', '[1]')]
] + [
    w422('an unknown field', '{{P}}-nope', {'name': 'x', 'colour': 'red'}, 'colour'),
    w422('code is no body field', '{{P}}-nope', {'name': 'x', 'code': '{{P}}-nope'}, 'code'),
    w422('two bad fields, both named', '{{P}}-nope', {'name': '', 'latency_ms': -1}, 'name', 'latency_ms'),
    wput('body is an array: 422', '{{P}}-nope', [], expect=problem(422, 'validation')),
    wput('invalid JSON: 400', '{{P}}-nope', '{"name":', expect=problem(400, 'bad-request')),
    wput('duplicate keys: 400', '{{P}}-nope', '{"name":"a","name":"b"}', expect=problem(400, 'bad-request')),
    wput('text/plain: 415', '{{P}}-nope', {'name': 'x'}, ctype='text/plain',
         expect=problem(415, 'unsupported-media-type')),
    wput('no Content-Type: 415', '{{P}}-nope', {'name': 'x'}, ctype=NO_CT,
         expect=problem(415, 'unsupported-media-type')),
    dict(name='405 + Allow', method='DELETE', path='/warehouses/{{wa}}', auth=True,
         expect=problem(405, 'method-not-allowed', allow=['PUT'])),
    dict(name='405 + Allow', method='POST', path='/warehouses', auth=True, body={'name': 'x'},
         expect=problem(405, 'method-not-allowed', allow=['GET'])),
    dict(name='405 + Allow', method='GET', path='/warehouses/{{wa}}',
         expect=problem(405, 'method-not-allowed', allow=['PUT'])),

    # ---- stock levels
    sput('no Authorization: 401', '{{wa}}', '{{B}}', {'quantity': 1}, auth=None, expect=problem(401, 'unauthorized')),
    sput('wrong token: 403', '{{wa}}', '{{B}}', {'quantity': 1}, auth=None,
         headers={'Authorization': 'Bearer not-the-token-0123456789abcdef'}, expect=problem(403, 'forbidden')),
] + [
    sput('%s: 404' % what, wh, sku, {'quantity': 1}, expect=problem(404, 'not-found')) for what, wh, sku in [
        ('an unknown warehouse', 'zz{{P}}', '{{B}}'), ('a warehouse with upper case', 'Upper{{P}}', '{{B}}'),
        ('a warehouse starting with -', '-{{P}}', '{{B}}'), ('a warehouse of 33 characters', '{{P}}' + 'x' * 25, '{{B}}'),
        ('a warehouse with a dot', '{{P}}.x', '{{B}}'), ('a non-ASCII warehouse', '%C3%A9', '{{B}}'),
        ('an unknown sku', '{{wa}}', '{{P}}-nosuch'), ('a sku with a space', '{{wa}}', 'a%20b'),
        ('a sku of 65 characters', '{{wa}}', '{{P}}' + 'x' * 57), ('a non-ASCII sku', '{{wa}}', '%C3%A4{{P}}'),
        ('a sku with an encoded slash', '{{wa}}', 'a%2Fb'), ('both unknown', 'zz{{P}}', '{{P}}-nosuch'),
        ('a sku with invalid UTF-8', '{{wa}}', '%FF')]
] + [
    s422('quantity %s' % what, '{"quantity":%s}' % v, 'quantity')
    for what, v in [('-1', '-1'), ('"5"', '"5"'), ('1.5', '1.5'), ('null', 'null'), ('true', 'true'),
                    ('1.0', '1.0'), ('1e3', '1e3'), ('2^31', '2147483648'), ('2^63', '9223372036854775808'),
                    ('-2^63', '-9223372036854775808'), ('[]', '[]')]
] + [
    s422('quantity missing', {}, 'quantity'),
    s422('an unknown field', {'quantity': 1, 'sku': 'x'}, 'sku'),
    sput('invalid JSON: 400', '{{wa}}', '{{B}}', '{"quantity":', expect=problem(400, 'bad-request')),
    sput('text/plain: 415', '{{wa}}', '{{B}}', {'quantity': 1}, ctype='text/plain',
         expect=problem(415, 'unsupported-media-type')),
    dict(name='405 + Allow', method='PATCH', path='/warehouses/{{wa}}/stock/{{B}}', auth=True, body={'quantity': 1},
         expect=problem(405, 'method-not-allowed', allow=['PUT'])),

    # ---- placing orders
    opost('409 insufficient-stock changes nothing', obody([('{{B}}', 1), ('{{Z}}', 1)]),
          expect=problem(409, 'insufficient-stock'), check=insufficient(('{{Z}}', 1, 0))),
    o422('an unknown sku names its line', obody([('{{B}}', 1), ('{{P}}-nosuch', 1)]), 'items[1].sku'),
    o422('two unknown skus, both named', obody([('{{P}}-no1', 1), ('{{B}}', 1), ('{{P}}-no2', 1)]),
         'items[0].sku', 'items[2].sku'),
    dict(opost('two currencies in one order: 422', obody([('{{B}}', 1), ('{{U}}', 1)])),
         expect=problem(422, 'validation'), check=field_like('items')),
    o422('a sku twice', obody([('{{B}}', 1), ('{{B}}', 2)]), 'items[1].sku'),
    o422('a sku twice, apart', obody([('{{B}}', 1), ('{{M}}', 1), ('{{B}}', 1)]), 'items[2].sku'),
] + [
    o422('quantity %s' % what, '{"items":[{"sku":"{{B}}","quantity":%s}],"customer_email":"a@example.com"}' % v,
         'items[0].quantity')
    for what, v in [('0', '0'), ('-1', '-1'), ('10001', '10001'), ('1.5', '1.5'), ('1.0', '1.0'), ('"1"', '"1"'),
                    ('null', 'null'), ('true', 'true'), ('2^31', '2147483648'), ('2^63', '9223372036854775808'),
                    ('-2^63', '-9223372036854775808'), ('1e2', '1e2')]
] + [
    o422('quantity missing', item(quantity=DROP), 'items[0].quantity'),
    o422('sku missing', item(sku=DROP), 'items[0].sku'),
    o422('sku empty', item(sku=''), 'items[0].sku'),
    o422('sku of 65 characters', item(sku='{{P}}' + 'x' * 57), 'items[0].sku'),
    o422('sku with a space', item(sku='a b'), 'items[0].sku'),
    o422('sku not a string', item(sku=5), 'items[0].sku'),
    o422('sku null', item(sku=None), 'items[0].sku'),
    o422('an unknown field in a line', item(price_cents=1), 'items[0].price_cents'),
    o422('a line that is not an object', dict(obody(), items=[5]), 'items[0]'),
    o422('the second line is not an object', dict(obody(), items=[{'sku': '{{B}}', 'quantity': 1}, 'x']),
         'items[1]'),
    o422('no lines (0 items)', obody(items=()), 'items'),
    o422('101 lines', obody([('{{P}}-unknown%d' % i, 1) for i in range(101)]), 'items'),
    o422('100 lines (the maximum) of unknown skus: each named', obody([('{{P}}-unknown%d' % i, 1) for i in range(100)]),
         *['items[%d].sku' % i for i in range(100)]),
    o422('items not a list', dict(obody(), items='x'), 'items'),
    o422('items an object', dict(obody(), items={'sku': '{{B}}', 'quantity': 1}), 'items'),
    o422('items null', dict(obody(), items=None), 'items'),
    o422('items missing', {'customer_email': 'buyer@example.com'}, 'items'),
    o422('nothing at all', {}, 'items', 'customer_email'),
    o422('an unknown field', obody(note='leave at the door'), 'note'),
    o422('status is not writable', obody(status='paid'), 'status'),
    o422('total_cents is not writable', obody(total_cents=1), 'total_cents'),
    o422('two bad fields, both named', obody([('{{B}}', 0)], email='x'), 'items[0].quantity', 'customer_email'),
] + [
    o422('customer_email %s' % what, obody(email=email), 'customer_email') for what, email in [
        ('missing', DROP), ('empty', ''), ('without @', 'buyer.example.com'), ('without a dot in the domain', 'a@b'),
        ('without a local part', '@example.com'), ('without a domain', 'a@'), ('with two @', 'a@@example.com'),
        ('with @ twice', 'a@b@example.com'), ('with a space', 'a b@example.com'),
        ('with a trailing space', 'a@example.com '), ('with a newline', 'a@example.com\n'),
        ('in angle brackets', '<a@example.com>'), ('with a display name', 'Jane <a@example.com>'),
        ('domain starting with a dot', 'a@.example.com'), ('with .. in the domain', 'a@example..com'),
        ('ending with a dot', 'a@example.com.'), ('of 255 characters', 'a' + EMAIL_254),
        ('with a local part of 65', 'a' * 65 + '@example.com'), ('a number', 5), ('null', None),
        ('a list', ['a@example.com']), ('with a NUL', 'a\u0000b@example.com'), ('with a DEL', 'a\u007fb@example.com')]
] + [
    opost('body is an array: 422', [], expect=problem(422, 'validation')),
    opost('body is a string: 422', '"order"', expect=problem(422, 'validation')),
    opost('body is null: 422', 'null', expect=problem(422, 'validation')),
    opost('invalid JSON: 400', '{"items":[', expect=problem(400, 'bad-request')),
    opost('duplicate keys: 400', '{"items":[],"items":[],"customer_email":"a@example.com"}',
          expect=problem(400, 'bad-request')),
    opost('duplicate keys in a line: 400',
          '{"items":[{"sku":"{{B}}","sku":"{{B}}","quantity":1}],"customer_email":"a@example.com"}',
          expect=problem(400, 'bad-request')),
    opost('an empty body: 400', '', expect=problem(400, 'bad-request')),
    opost('text/plain: 415', obody(), ctype='text/plain', expect=problem(415, 'unsupported-media-type')),
    opost('no Content-Type: 415', obody(), ctype=NO_CT, expect=problem(415, 'unsupported-media-type')),
    dict(name='405 + Allow', method='DELETE', path='/orders', auth=True,
         expect=problem(405, 'method-not-allowed', allow=['GET', 'POST'])),
    # ---- Idempotency-Key
    opost('Idempotency-Key of 201 characters: 400', obody(), headers={'Idempotency-Key': 'k' * 201},
          expect=problem(400, 'bad-request')),
    opost('Idempotency-Key with a control character (\\x01): 400', obody(),
          headers={'Idempotency-Key': 'key\x01{{P}}'}, expect=problem(400, 'bad-request')),
    opost('Idempotency-Key with a tab inside: 400', obody(), headers={'Idempotency-Key': 'key\t{{P}}'},
          expect=problem(400, 'bad-request')),
    opost('Idempotency-Key with DEL: 400', obody(), headers={'Idempotency-Key': 'key\x7f{{P}}'},
          expect=problem(400, 'bad-request')),
    opost('Idempotency-Key with non-ASCII bytes: 400', obody(), headers={'Idempotency-Key': b'key-\xc3\xa9-{{P}}'},
          expect=problem(400, 'bad-request')),
    opost('an empty Idempotency-Key: 400', obody(), headers={'Idempotency-Key': ''},
          expect=problem(400, 'bad-request')),
    opost('the same key, another quantity: 422', obody([('{{I}}', 3)], email='idem@example.com'),
          headers={'Idempotency-Key': '{{ikey}}'}, expect=problem(422, 'validation')),
    opost('the same key, another e-mail: 422', obody([('{{I}}', 2)], email='other@example.com'),
          headers={'Idempotency-Key': '{{ikey}}'}, expect=problem(422, 'validation')),
    opost('the same key, one more line: 422', obody([('{{I}}', 2), ('{{B}}', 1)], email='idem@example.com'),
          headers={'Idempotency-Key': '{{ikey}}'}, expect=problem(422, 'validation')),

    # ---- reading and listing
] + [
    get('GET /orders/{%s}: 404' % what, '/orders/' + key, expect=problem(404, 'not-found'))
    for what, key in BAD_UUIDS
] + [
    get('GET /orders/{a NUL}: 404, or 400 from nginx, never 500', '/orders/{{o1}}%00', expect=status((400, 404))),
] + [
    get('GET /orders?%s: 400' % q, '/orders?' + q, auth=True, expect=problem(400, 'bad-request')) for q in [
        'status=PAID', 'status=nope', 'status=', 'status=paid%00', 'limit=0', 'limit=501', 'limit=abc',
        'after=zzz', 'after={{pcursor}}', 'after=' + 'A' * 400]
] + [
    get('GET /orders?status=nope without the token: 401 first', '/orders?status=nope',
        expect=problem(401, 'unauthorized')),

    # ---- transitions
    trans('no Authorization: 401', '{{o1}}', 'paid', auth=None, expect=problem(401, 'unauthorized')),
    trans('wrong token: 403', '{{o1}}', 'paid', auth=None,
          headers={'Authorization': 'Bearer not-the-token-0123456789abcdef'}, expect=problem(403, 'forbidden')),
    trans('Basic scheme: 401', '{{o1}}', 'paid', auth=None, headers={'Authorization': 'Basic YWRtaW46YWRtaW4='},
          expect=problem(401, 'unauthorized')),
    trans('an illegal move (pending -> shipped): 409', '{{o1}}', 'shipped',
          expect=problem(409, 'invalid-transition'), check=refused_move('pending', 'shipped')),
    trans('If-Match stale: 412', '{{o1}}', 'paid', headers={'If-Match': '"7"'},
          expect=problem(412, 'precondition-failed')),
    trans('If-Match on an unknown order: 404', '6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11', 'paid',
          headers={'If-Match': '"1"'}, expect=problem(404, 'not-found')),
] + [
    trans('order {%s}: 404' % what, key, 'paid', expect=problem(404, 'not-found'))
    for what, key in BAD_UUIDS if what not in ('3000 characters', 'an order id with a trailing slash')
] + [
    t422('to %s' % what, '{"to":%s}' % v, 'to')
    for what, v in [('PAID', '"PAID"'), ('empty', '""'), ('unknown', '"lost"'), ('a number', '5'),
                    ('null', 'null'), ('a list', '["paid"]')]
] + [
    t422('to missing', {}, 'to'),
    t422('an unknown field', {'to': 'paid', 'reason': 'x'}, 'reason'),
    trans('body is an array: 422', '{{o1}}', None, body=[], expect=problem(422, 'validation')),
    trans('invalid JSON: 400', '{{o1}}', None, body='{"to":', expect=problem(400, 'bad-request')),
    trans('text/plain: 415', '{{o1}}', 'paid', ctype='text/plain', expect=problem(415, 'unsupported-media-type')),
    dict(name='405 + Allow', method='GET', path='/orders/{{o1}}/transitions', auth=True,
         expect=problem(405, 'method-not-allowed', allow=['POST'])),

    # ---- payment webhook: types and fields
    hook('an unknown type: 400', ev('payment.refunded'), expect=problem(400, 'bad-request')),
    hook('a type in upper case: 400', ev('PAYMENT.SUCCEEDED'), expect=problem(400, 'bad-request')),
    hook('type missing: 400 or 422', ev('payment.succeeded', type=DROP), expect=status((400, 422))),
    hook('type not a string: 400 or 422', ev('payment.succeeded', type=5), expect=status((400, 422))),
    hook('body is an array: 400 or 422', [], expect=status((400, 422))),
    hook('invalid JSON: 400', '{"id":', expect=problem(400, 'bad-request')),
    hook('text/plain: 415', ev('payment.succeeded'), ctype='text/plain', expect=problem(415, 'unsupported-media-type')),
    hook422('payment.succeeded without amount_cents', ev('payment.succeeded', amount_cents=DROP), 'amount_cents'),
    hook422('payment.succeeded without currency', ev('payment.succeeded', currency=DROP), 'currency'),
    hook422('payment.succeeded without id', ev('payment.succeeded', id=DROP), 'id'),
    hook422('payment.succeeded without order_id', ev('payment.succeeded', order_id=DROP), 'order_id'),
    hook422('payment.succeeded with a reason', ev('payment.succeeded', reason='x'), 'reason'),
    hook422('payment.succeeded with an unknown field', ev('payment.succeeded', extra=1), 'extra'),
    hook422('payment.failed without reason', ev('payment.failed', reason=DROP), 'reason'),
    hook422('payment.failed with amount_cents', ev('payment.failed', amount_cents=1400), 'amount_cents'),
    hook422('payment.failed with currency', ev('payment.failed', currency='EUR'), 'currency'),
    hook422('refund.created without amount_cents', ev('refund.created', amount_cents=DROP), 'amount_cents'),
    hook422('refund.created with a reason', ev('refund.created', reason='x'), 'reason'),
    hook422('amount_cents not the order total', ev('payment.succeeded', amount_cents=1399), 'amount_cents'),
    hook422('currency not the order currency', ev('payment.succeeded', currency='USD'), 'currency'),
    hook422('amount and currency both wrong, both named', ev('payment.succeeded', amount_cents=1, currency='USD'),
            'amount_cents', 'currency'),
    hook422('refund.created: amount_cents not the order total', ev('refund.created', oid='{{h1}}', amount_cents=1),
            'amount_cents'),
    hook422('currency in lower case', ev('payment.succeeded', currency='eur'), 'currency'),
    hook422('amount_cents -1', ev('payment.succeeded', amount_cents=-1), 'amount_cents'),
    hook422('amount_cents 1.5', ev('payment.succeeded', amount_cents=1.5), 'amount_cents'),
    hook422('amount_cents "1400"', ev('payment.succeeded', amount_cents='1400'), 'amount_cents'),
    hook422('order_id not a UUID', ev('payment.succeeded', oid='abc'), 'order_id'),
    hook422('id empty', ev('payment.succeeded', id=''), 'id'),
    hook422('id of 201 characters', ev('payment.succeeded', id='e' * 201), 'id'),
    hook422('id with a space', ev('payment.succeeded', id='evt 1'), 'id'),
    hook('an unknown order: 404', ev('payment.succeeded', oid='6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11'),
         expect=problem(404, 'not-found')),
    hook('payment.failed for an unknown order: 404', ev('payment.failed', oid='6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11'),
         expect=problem(404, 'not-found')),
    hook422('an applied event id with other content', ev('payment.succeeded', id='evt-{{P}}-ok1'), 'id'),
    hook('payment.succeeded on a cancelled order: 409', ev('payment.succeeded', oid='{{h_cancelled}}',
                                                           amount_cents=700),
         expect=problem(409, 'invalid-transition'), check=refused_move('cancelled', 'paid')),
    hook('refund.created on a pending order: 409', ev('refund.created'),
         expect=problem(409, 'invalid-transition'), check=refused_move('pending', 'refunded')),
    # ---- payment webhook: signatures
    hook('no Shop-Signature: 401', ev('payment.succeeded'), sign=None, expect=problem(401, 'unauthorized')),
    hook('signed with another secret: 401', ev('payment.succeeded'), sign={'secret': 'not-the-secret-0123456789'},
         expect=problem(401, 'unauthorized')),
    hook('the signature of other bytes: 401', ev('payment.succeeded'), sign={'body': b'{}'},
         expect=problem(401, 'unauthorized')),
    hook('t 301 s ago: 401', ev('payment.succeeded'), sign={'skew': -301}, expect=problem(401, 'unauthorized')),
    hook('t 301 s ahead: 401', ev('payment.succeeded'), sign={'skew': 301}, expect=problem(401, 'unauthorized')),
    hook('t an hour ago: 401', ev('payment.succeeded'), sign={'skew': -3600}, expect=problem(401, 'unauthorized')),
    hook('a garbage header: 401', ev('payment.succeeded'), sign={'header': 'garbage'},
         expect=problem(401, 'unauthorized')),
    hook('t not a number: 401', ev('payment.succeeded'), sign={'header': 't=abc,v1=' + '0' * 64},
         expect=problem(401, 'unauthorized')),
    hook('v1 without t: 401', ev('payment.succeeded'), sign={'header': 'v1=' + '0' * 64},
         expect=problem(401, 'unauthorized')),
    hook('t without v1: 401', ev('payment.succeeded'), sign={'header': 't=%d' % 0},
         expect=problem(401, 'unauthorized')),
    hook('the admin token instead of a signature: 401', ev('payment.succeeded'), sign=None, auth=True,
         expect=problem(401, 'unauthorized')),
    hook('a bad signature and invalid JSON: 401 first', '{"id":', sign={'secret': 'not-the-secret-0123456789'},
         expect=problem(401, 'unauthorized')),
    hook('signed 290 s ago, for an unknown order: the signature holds (404)',
         ev('payment.succeeded', oid='6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11'), sign={'skew': -290},
         expect=problem(404, 'not-found')),
    dict(name='405 + Allow', method='GET', path='/webhooks/payments',
         expect=problem(405, 'method-not-allowed', allow=['POST'])),
]


def run_bad(ctx):
    """Each refusal: the right problem, no event, the database unchanged."""
    first = before = None
    if ctx.db is not None:
        first = before = q1(ctx, SNAPSHOT)
    for case in BAD:
        def unchanged(r):
            nonlocal before
            if ctx.db is None:
                return []
            after = q1(ctx, SNAPSHOT)
            if after != before:
                b = before
                before = after
                return ['the database changed (orders/lines/keys/payments/warehouses/stock/products/events): '
                        '%s -> %s' % (b, after)]
            return []
        run_ocase(ctx, case, extra_check=unchanged)
    if ctx.db is None:
        ctx.tap.skip('[%s] order bad inputs: the database is unchanged after the whole table' % ctx.tg.name,
                     'no database (PGHOST unset)')
    else:
        last = q1(ctx, SNAPSHOT)
        result(ctx, 'order bad inputs: the database is unchanged after the whole table',
               [] if last == first else ['snapshot before %s, after %s' % (first, last)])


# ------------------------------------------------------------------ parity

# The same requests against every target (after run()); the answers must
# agree once ids, times, UUIDs and the run prefix are masked.
PARITY = [
    get('an order', '/orders/{{o1}}'), get('304', '/orders/{{o1}}', headers={'If-None-Match': '"1"'}),
    get('404', '/orders/6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11'), get('404 malformed', '/orders/abc'),
    get('list 400', '/orders?status=nope', auth=True), get('list 401', '/orders'),
    opost('201', obody([('{{B}}', 1)])), opost('409', obody([('{{Z}}', 1)])),
    opost('422', obody([('{{B}}', 0), ('{{P}}-nosuch', 1)], email='x')), opost('400', '{"items":'),
    opost('400 key', obody(), headers={'Idempotency-Key': 'k' * 201}),
    opost('415', obody(), ctype='text/plain'),
    trans('409 move', '{{o1}}', 'shipped'), trans('412', '{{o1}}', 'paid', headers={'If-Match': '"9"'}),
    trans('404', 'abc', 'paid'), trans('422', '{{o1}}', 'lost'), trans('401', '{{o1}}', 'paid', auth=None),
    wput('422 code', 'Bad{{P}}', {'name': 'x'}), wput('200', '{{wc}}', {'name': 'Order test wc {{P}}'}),
    sput('404', '{{wa}}', '{{P}}-nosuch', {'quantity': 1}), sput('422', '{{wa}}', '{{B}}', {'quantity': -1}),
    sput('200', '{{wc}}', '{{B}}', {'quantity': 1}),
    hook('401', ev('payment.succeeded'), sign=None), hook('400', ev('payment.refunded')),
    hook('422', ev('payment.succeeded', amount_cents=1)),
    hook('404', ev('payment.failed', oid='6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11')),
    hook('409', ev('refund.created')),
]


def run_parity(tap, ctxs):
    ok = [c for c in ctxs if 'o1' in c.vars and 'h_pending' in c.vars]
    if len(ctxs) < 2:
        tap.skip('parity: orders, warehouses, stock and webhook answers agree on every front-end',
                 'one target only (%s)' % ctxs[0].tg.name)
    elif len(ok) < len(ctxs):
        tap.result('parity: orders, warehouses, stock and webhook answers', ['an earlier section failed on %s' %
                                                                             [c.tg.name for c in ctxs if c not in ok]])
    else:
        shop_run_parity(tap, ctxs, PARITY)


# --------------------------------------------------------------------- run

def run(ctx):
    """Every section against one target (ctx.vars['P']: the run prefix)."""
    P = ctx.vars['P']
    ctx.vars.update(wa=P + '-a', wb=P + '-b', wc=P + '-c', A=P + '-oa', B=P + '-ob', U=P + '-ou', Z=P + '-oz',
                    R=P + '-or', M=P + '-om', I=P + '-oi', H=P + '-oh')
    t0 = time.monotonic()
    took = []

    def timed(name, fn, *args):
        t = time.monotonic()
        fn(ctx, *args)
        took.append('%s %.1f' % (name, time.monotonic() - t))
    timed('setup', run_otable, SETUP)
    timed('warehouses', run_otable, WAREHOUSES)
    timed('stock', run_otable, STOCK)
    timed('orders', run_otable, ORDERS)
    timed('idempotency', run_idempotency)
    timed('states', run_states)
    timed('restock', run_restock)
    timed('concurrent moves', run_concurrent_moves)
    timed('race', run_race)
    timed('webhook', run_webhook)
    for query, limit in [('', 7), ('status=pending', 5), ('status=paid', 3), ('status=cancelled', 2),
                         ('status=refunded', 2), ('status=delivered', 1)]:
        timed('walk', run_walk, query, limit)
    timed('bad', run_bad)
    ctx.tap.diag('orders.py on %s: %.1f s (%s)' % (ctx.tg.name, time.monotonic() - t0, ', '.join(took)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--target', action='append', required=True, help='NAME=URL (repeatable)')
    ap.add_argument('--token-file', required=True)
    ap.add_argument('--webhook-secret-file')
    ap.add_argument('--body-limit', type=int, default=1 << 20)
    args = ap.parse_args()
    with open(args.token_file, encoding='ascii') as f:
        token = f.read().strip()
    token_off = token[:-1] + ('0' if token[-1] != '0' else '1')
    secret = read_secret(args.webhook_secret_file)
    db = Db.open()
    tap = Tap()
    run_id = ''.join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    ctxs = []
    for i, spec in enumerate(args.target):
        tg = Target(spec)
        P = ('o%d%s%s' % (i, run_id, random.choice(string.ascii_lowercase)) + 'zzzzzzzz')[:8]
        ctxs.append(Ctx(tap, tg, token, db, args.body_limit,
                        {'P': P, 'T': tg.name, 'token': token, 'token_off': token_off}, secret))
    if db is None:
        tap.diag('PGHOST is not set: database comparisons are skipped')
    for ctx in ctxs:
        tap.diag('target %s = %s (run prefix %s)' % (ctx.tg.name, ctx.tg.url, ctx.vars['P']))
        run(ctx)
    run_parity(tap, ctxs)
    print('1..%d' % tap.n)
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
