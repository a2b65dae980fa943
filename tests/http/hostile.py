#!/usr/bin/env python3
"""The hostile-input table (issue 8): input an attacker, a broken client or
a fuzzer would send, against every front-end given with --target, as TAP.
suite.py runs it (run(ctx) after orders.py on each target, run_after(tap,
ctxs) once at the end); run alone for a quick try:

    hostile.py --target fcgi=http://127.0.0.1:8081 [--target module=URL ...]
               --token-file var/admin.token --webhook-secret-file var/webhook.secret

Python 3 standard library only; the checks are shoptest.py's, the
WebSocket client is tests/events/wsclient.py. Every request is written by
hand on a socket of its own (http.client refuses CR/LF in a header and a
Content-Length that is not the body's), with a timeout: a server that does
not answer is a failed case ("no answer within N s"), never a hung suite.

Sections, against every target in turn:
  SETUP      what the table refers to, written before the snapshot: a
             product whose name is an SQL injection (it must round-trip
             verbatim and be found by q), one never stocked, a warehouse, a
             stock level, a pending order, cursors of both kinds
  TABLE      each case must get the right 4xx problem (status, type,
             title, detail, status member; application/problem+json;
             exactly one sane X-Request-Id; no internals: SQL, paths,
             libpq text), never a 5xx, within its time; a few cases are
             reads whose right answer is 200 (q with SQL in it finds
             nothing; an Upgrade on a non-event route is ignored). The
             database (every shop.* table, found at run time, rows and
             counts) is compared after every case and after the table with
             a snapshot taken before it: nothing may be written.
             Groups: SQL injection in body fields, query parameters, path
             segments and headers; numbers (too large, negative, float,
             exponent, NaN/Infinity, leading zeros); nulls, arrays and
             objects for scalars; strings at and past every length limit,
             counted in characters with 2-, 3- and 4-byte UTF-8; control
             characters, NUL, invalid and overlong UTF-8, lone surrogates;
             duplicate keys; depth bombs (33, 30 000 and 60 000 deep, which
             the suite's 64 KiB body limit lets through to the parser, and
             100 000 deep, which it refuses by size first: 400 or 413);
             huge arrays (30 000 and 100 000 elements); bodies past the
             limit (declared Content-Length, chunked, a chunk size past it);
             malformed framing; wrong and missing Content-Type; CR/LF in
             X-Request-Id and Idempotency-Key (raw bytes); path traversal
             and encoded slashes; 8 KB and 64 KB request lines and headers;
             forged, truncated, other-kind and non-canonical cursors; bad
             ?after= and Last-Event-ID on /events; odd methods and request
             lines
  WEBSOCKET  (the module only: shop-fcgi serves /events as SSE and cannot
             switch protocols; the TAP names say "module only") refused
             handshakes, each a 400 problem; after a good handshake, bad
             frames (unmasked, reserved bits, over the limit, a 64-bit
             length with its top bit set, unknown opcodes, control frames
             over 125 bytes or fragmented, a 1-byte close): a close frame
             with 1002 (protocol error) or 1009 (too big), then the server
             closes the connection
  HEALTH     after the table: /healthz and /readyz 200 on this target;
             run_after: on every target once all tables ran

Where API.md is silent, these cases expect what the suite already does
(suite.py, orders.py docstrings): invalid JSON 400, valid JSON of the wrong
shape 422 naming the field; an id in the path that cannot exist 404; a bad
query parameter 400 (also when repeated); a forged cursor 400. And:
  - Integers are JSON integers: an exponent (1e3, 1E2) or a fraction
    (1.0) is 422, a number past 64 bits (2^64, 1e400) is 422, not a crash.
    Leading zeros, '+', '.5', '0x10', NaN, Infinity are not JSON: 400.
    Query integers (limit, after) are plain decimal: 050, +5, 1e2, 0x10,
    -0 are 400.
  - Control characters (U+0000-U+001F, U+007F) are refused in names,
    e-mails, reasons and the other text fields (422); a NUL in an object
    key is 400.
  - A request line or header past nginx's buffers (8 KB) is nginx's own
    error, mapped by conf/nginx-problems.conf.in to a 400 problem; the
    status member must equal the HTTP status.
  - nginx's own refusals (an invalid request line or header, a bare CR,
    a NUL, Content-Length and Transfer-Encoding together, a bad chunk) are
    accepted as 400 only as problem+json with an X-Request-Id.
  - A body that is refused for its size never reaches the shop, declared
    (Content-Length) or chunked; a chunk size past the limit is refused
    when it is read (as nginx does with client_max_body_size), not after
    client_body_timeout.
  - The path is the raw request target: dot segments and empty segments
    are not resolved by the shop (/products/../healthz is not a route),
    percent-encoded slashes are part of a segment (404).

Cases whose failure is a known bug of the server (not of the test) may
carry 'bug': the diagnostic of a failure then starts with "KNOWN BUG
(where):" and names it. None is known now.
"""

import argparse
import base64
import http.client
import json
import os
import random
import socket
import string
import struct
import sys
import time
import urllib.parse

from shoptest import (DROP, NO_CT, PROBLEM_TYPES, Ctx, Db, Missing, Resp, Tap, Target, answer_of, build,
                      convention_errors, expect_errors, get, problem, problem_errors, save_value, send, status,
                      subst)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'events'))
from wsclient import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, WebSocket, close_code  # noqa: E402

TIMEOUT = 10             # seconds a case may take before it counts as a hang
UNKNOWN_UUID = '6f1f7e8c-5d1a-4c3b-9b7e-2f4a1c9d0e11'

# Internals no error body may show (beyond shoptest.LEAKS).
LEAKS_MORE = ['syntax error', 'SQLSTATE', 'relation "', 'column "', 'PL/pgSQL', 'libpq', 'PostgreSQL',
              'postgres', 'Traceback', 'Sanitizer', '/work/', '/var/', '/etc/', 'ngx_', 'nginx/']

# SQL injection strings. Some hold a space or a quote (no token field takes
# them), some are printable ASCII without spaces (a webhook id takes them).
SQLI = [
    "' OR '1'='1",
    "'; DROP TABLE shop.products; --",
    "1' UNION SELECT NULL, version() --",
    "x'); SELECT pg_sleep(10); --",
    "$$; DELETE FROM shop.orders; $$",
    '"; TRUNCATE shop.events; --',
    "' || (SELECT string_agg(tablename, ',') FROM pg_tables) || '",
    "%' OR 1=1 --",
]
SQLI_NOSPACE = "x'OR'1'='1';DELETE/**/FROM/**/shop.orders;--"
SQLI_ARRAY = 'x","y"}\'); DELETE FROM shop.stock; --'     # breaks out of a text[] literal, if unquoted
SQLI_NAME = "Robert'); DROP TABLE shop.products;--"      # the fixture's name (with the run prefix)


def q(s):
    """s percent-encoded for a path segment or a query value."""
    return urllib.parse.quote(s, safe='')


# ------------------------------------------------------------ case helpers

def admin(name, method, path, body=None, **kw):
    kw.setdefault('auth', True)
    c = dict(name=name, method=method, path=path, **kw)
    if body is not None:
        c['body'] = body
    return c


def p422(name, body, *fields, exact=False, **kw):
    return admin(name, 'POST', '/products', body, expect=problem(422, 'validation', fields=list(fields)),
                 **(dict(check=fields_exactly(*fields)) if exact else {}), **kw)


def p409(name, body, **kw):
    """A product body that passes validation, with the taken sku: the INSERT
    runs and fails (409), so what the fields hold reached the database."""
    b = dict(pbody(), sku='{{HS}}')
    b.update(body)
    kw.setdefault('expect', problem(409, 'conflict'))
    return admin(name, 'POST', '/products', b, **kw)


def pbody(**over):
    b = {'sku': '{{P}}-hx', 'name': 'Hostile {{P}}', 'price_cents': 100, 'currency': 'EUR'}
    b.update(over)
    return {k: v for k, v in b.items() if v is not DROP}


def obody(**over):
    """An order of the product never stocked: even a server that ignored the
    fault under test would refuse it (409) rather than write."""
    b = {'items': [{'sku': '{{HZ}}', 'quantity': 1}], 'customer_email': 'h@example.com'}
    b.update(over)
    return {k: v for k, v in b.items() if v is not DROP}


def oitem(**over):
    it = {'sku': '{{HZ}}', 'quantity': 1}
    it.update(over)
    return obody(items=[{k: v for k, v in it.items() if v is not DROP}])


def opost(name, body, **kw):
    return dict(name=name, method='POST', path='/orders', body=body, **kw)


def o422(name, body, *fields, **kw):
    return opost(name, body, expect=problem(422, 'validation', fields=list(fields)), **kw)


def o409(name, body, **kw):
    return opost(name, body, expect=problem(409, 'insufficient-stock'), **kw)


def c422(name, body, *fields, **kw):
    return dict(name=name, method='POST', path='/stock/check', body=body,
                expect=problem(422, 'validation', fields=list(fields)), **kw)


def wput(name, code, body, **kw):
    return admin(name, 'PUT', '/warehouses/' + code, body, **kw)


def w422(name, body, *fields, code='{{hw}}', exact=False):
    return wput(name, code, body, expect=problem(422, 'validation', fields=list(fields)),
                **(dict(check=fields_exactly(*fields)) if exact else {}))


def s422(name, body, *fields):
    return admin(name, 'PUT', '/warehouses/{{hw}}/stock/{{HS}}', body,
                 expect=problem(422, 'validation', fields=list(fields)))


def trans(name, oid, body, **kw):
    return admin(name, 'POST', '/orders/%s/transitions' % oid, body, **kw)


def t422(name, body, *fields):
    return trans(name, '{{ho}}', body, expect=problem(422, 'validation', fields=list(fields)))


def ev(kind='payment.succeeded', **over):
    """A webhook event for an order that does not exist: refused (404) even
    when the fault under test were ignored, so nothing can be applied."""
    b = {'id': 'evt-{{P}}-hx', 'type': kind, 'order_id': UNKNOWN_UUID}
    if kind == 'payment.failed':
        b['reason'] = 'card_declined'
    else:
        b.update(amount_cents=100, currency='EUR')
    b.update(over)
    return {k: v for k, v in b.items() if v is not DROP}


def hook(name, body, **kw):
    kw.setdefault('sign', True)
    return dict(name=name, method='POST', path='/webhooks/payments', body=body, **kw)


def h422(name, body, *fields):
    return hook(name, body, expect=problem(422, 'validation', fields=list(fields)))


def bad(name, method, path, body, **kw):
    """400 bad-request (invalid JSON, invalid UTF-8, ...)."""
    kw.setdefault('expect', problem(400, 'bad-request'))
    return dict(name=name, method=method, path=path, body=body, **kw)


def raw(name, method, path, request, expect, **kw):
    """A request given as bytes, exactly (after {{var}} substitution);
    method and path name the case and tell HEAD from the rest."""
    return dict(name=name, method=method, path=path, raw=request, expect=expect, **kw)


def fields_exactly(*names):
    def check(r, ctx):
        errs = r.json.get('errors', []) if isinstance(r.json, dict) else []
        got = sorted(e.get('field') for e in errs if isinstance(e, dict))
        return [] if got == sorted(names) else ['errors name %s, expected exactly %s' % (got, sorted(names))]
    return check


def no_header(*names):
    def check(r, ctx):
        return ['response header %s: %r (injected by the request)' % (n, r.h(n)) for n in names if r.h(n)]
    return check


def rid_not(*values):
    """The X-Request-Id is none of values, and no header holds CR/LF."""
    def check(r, ctx):
        errs = []
        rid = r.h('X-Request-Id') or ''
        if rid in values:
            errs.append('the unsafe X-Request-Id %r was echoed' % rid)
        for k, v in r.headers:
            if '\r' in v or '\n' in v or 'injected' in k.lower():
                errs.append('header %s: %r' % (k, v))
        return errs
    return check


def both(*checks):
    def check(r, ctx):
        out = []
        for c in checks:
            out += c(r, ctx) or []
        return out
    return check


def items_exactly(var):
    """A list answer holding exactly the product saved in var."""
    def check(r, ctx):
        ids = [p.get('id') for p in r.json.get('items', [])] if isinstance(r.json, dict) else None
        want = [int(ctx.vars[var])]
        return [] if ids == want else ['items %s, expected exactly %s' % (ids, want)]
    return check


def body_of_size(n):
    """A JSON object of exactly n bytes (a stock check with an unknown field)."""
    head, tail = b'{"items":[],"x":"', b'"}'
    return head + b'y' * (n - len(head) - len(tail)) + tail


def deep_arrays(n, inner='1'):
    return '[' * n + inner + ']' * n


def deep_objects(n):
    return '{"a":' * n + '1' + '}' * n


def b64url(raw_bytes):
    return base64.urlsafe_b64encode(raw_bytes).decode().rstrip('=')


def forged(key):
    """A cursor in the shop's spelling (base64url of kind:key, no padding):
    a hostile client can read and forge them."""
    return b64url(key.encode() if isinstance(key, str) else key)


def noncanonical(cursor):
    """The same bytes in another spelling: the unused low bits of the last
    character set (a lenient decoder reads the same key), or, when there
    are none, '=' padding."""
    alpha = string.ascii_uppercase + string.ascii_lowercase + string.digits + '-_'
    if len(cursor) % 4 in (2, 3):
        return cursor[:-1] + alpha[alpha.index(cursor[-1]) | 1]
    return cursor + '='


# ----------------------------------------------------------------- setup

SETUP = [
    admin('setup: a product named with SQL', 'POST', '/products',
          {'sku': '{{HS}}', 'name': SQLI_NAME + ' {{P}}', 'price_cents': 700, 'currency': 'EUR',
           'description': SQLI[1]},
          expect=status(201, json={'name': SQLI_NAME + ' {{P}}', 'description': SQLI[1]}),
          save={'h_id': 'json:id', 'h_etag': 'header:ETag'}),
    get('setup: the SQL in its name and description reads back verbatim', '/products/{{h_id}}',
        expect=status(200, json={'name': SQLI_NAME + ' {{P}}', 'description': SQLI[1], 'sku': '{{HS}}'})),
    admin('setup: a product never stocked', 'POST', '/products',
          {'sku': '{{HZ}}', 'name': 'Hostile never stocked {{P}}', 'price_cents': 50, 'currency': 'EUR'},
          expect=status(201)),
    admin('setup: a warehouse', 'PUT', '/warehouses/{{hw}}', {'name': 'Hostile {{P}}', 'latency_ms': 0},
          expect=status(201)),
    admin('setup: stock', 'PUT', '/warehouses/{{hw}}/stock/{{HS}}', {'quantity': 5}, expect=status(200)),
    opost('setup: a pending order', {'items': [{'sku': '{{HS}}', 'quantity': 1}],
                                     'customer_email': 'hostile@example.com'},
          expect=status(201), save={'ho': 'json:id'}),
    get('setup: a product cursor', '/products?limit=12', expect=status(200), save={'pcur': 'json:next'}),
    admin('setup: an order cursor', 'GET', '/orders?limit=1', expect=status(200), save={'ocur': 'json:next'}),
]


def derive_vars(ctx):
    """Variables computed from what SETUP saved."""
    v = ctx.vars
    if 'pcur' in v:
        v['pcur_nc'] = noncanonical(v['pcur'])
        v['pcur_trunc'] = v['pcur'][:-1]
        v['pcur_x'] = v['pcur'] + 'A'
    if 'ocur' in v:
        v['ocur_nc'] = noncanonical(v['ocur'])


# ------------------------------------------------------------------ table

E254 = 'a' * 64 + '@' + 'b' * 63 + '.' + 'c' * 63 + '.' + 'd' * 57 + '.com'          # 254 characters
E254U = 'a' * 64 + '@' + 'ä' * 63 + '.' + 'ö' * 63 + '.' + 'é' * 57 + '.com'         # the domain 2 bytes each
assert len(E254) == 254 and len(E254U) == 254

SQL_BODY = [
    # ---- products: the token fields refuse every SQL string (422)
    p422('SQL in sku', pbody(sku=SQLI[0]), 'sku'),
    p422('SQL in sku (no spaces)', pbody(sku=SQLI_NOSPACE), 'sku'),
    p422('SQL in slug', pbody(slug=SQLI[1]), 'slug'),
    p422('SQL in category', pbody(category=SQLI[2]), 'category'),
    p422('SQL in currency', pbody(currency="EU'"), 'currency'),
    p422('SQL in currency (long)', pbody(currency=SQLI[0]), 'currency'),
] + [
    # ---- free text reaches the database as a parameter: the INSERT runs and
    # fails on the taken sku (409); a pg_sleep would show as a slow answer
    p409('SQL in name reaches the INSERT: 409 on the taken sku (%s)' % s[:24], {'name': s},
         expect=problem(409, 'conflict', max_seconds=5))
    for s in SQLI
] + [
    p409('SQL in description reaches the INSERT: 409', {'description': SQLI[4] + SQLI[5]}),
    admin('SQL in a patched name, stale If-Match: 412', 'PATCH', '/products/{{h_id}}', {'name': SQLI[1]},
          headers={'If-Match': '"999"'}, expect=problem(412, 'precondition-failed')),
    admin('SQL in a patched description of an unknown product: 404', 'PATCH', '/products/999999999',
          {'description': SQLI[2]}, expect=problem(404, 'not-found')),
    admin('SQL in If-Match: 412', 'PATCH', '/products/{{h_id}}', {'name': 'x'},
          headers={'If-Match': SQLI[0]}, expect=problem(412, 'precondition-failed')),
    dict(name='SQL in the bearer token: 403', method='POST', path='/products', body=pbody(),
         headers={'Authorization': 'Bearer ' + SQLI[0]}, expect=problem(403, 'forbidden')),

    # ---- orders
    o422('SQL in items[].sku', oitem(sku=SQLI[0]), 'items[0].sku'),
    o422('a text[] literal break-out in items[].sku', oitem(sku=SQLI_ARRAY), 'items[0].sku'),
    o422('SQL in customer_email (with spaces)', obody(customer_email='x@y.com' + SQLI[1]), 'customer_email'),
    o409('SQL in customer_email (a valid shape) reaches the database: 409', obody(customer_email="o'neil'--@x.com")),
    c422('stock check: SQL in items[].sku', {'items': [{'sku': SQLI[0], 'quantity': 1}]}, 'items[0].sku'),
    c422('stock check: a text[] literal break-out in items[].sku',
         {'items': [{'sku': SQLI_ARRAY, 'quantity': 1}]}, 'items[0].sku'),

    # ---- warehouses: a valid PUT writes, so the SQL name rides with a bad field
    w422('SQL in the warehouse name, latency_ms -1: only latency_ms is named',
         {'name': SQLI[1], 'latency_ms': -1}, 'latency_ms', exact=True),
    w422('SQL in the warehouse name, latency_ms 10001: only latency_ms is named',
         {'name': SQLI[6], 'latency_ms': 10001}, 'latency_ms', exact=True),

    # ---- transitions
    t422('SQL in "to"', {'to': SQLI[0]}, 'to'),
    t422('SQL in "to" (no spaces)', {'to': "paid'--"}, 'to'),

    # ---- webhook (signed; for an order that does not exist)
    h422('SQL in the event id (spaces)', ev(id=SQLI[1]), 'id'),
    hook('SQL in the event id (no spaces) reaches the database: 404, nothing recorded',
         ev(id=SQLI_NOSPACE), expect=problem(404, 'not-found')),
    h422('SQL in order_id', ev(order_id=SQLI[0]), 'order_id'),
    hook('SQL in reason reaches the database: 404', ev('payment.failed', reason=SQLI[3]),
         expect=problem(404, 'not-found', max_seconds=5)),
    hook('SQL in type: 400', ev(type=SQLI[0]), expect=problem(400, 'bad-request')),
    h422('SQL in currency', ev(currency=SQLI[0]), 'currency'),
    hook('SQL in Shop-Signature: 401', ev(), sign={'header': "t=1' OR '1'='1,v1=" + SQLI[0]},
         expect=problem(401, 'unauthorized')),
]

SQL_QUERY = [
    get('q=SQL finds nothing (%s)' % s[:24], '/products?q=' + q(s),
        expect=status(200, json={'items': [], 'next': None}, max_seconds=5))
    for s in SQLI[:4] + [SQLI[7]]
] + [
    get('q=the fixture\'s SQL name finds exactly it', '/products?q=' + q(SQLI_NAME + ' ') + '{{P}}',
        expect=status(200), check=items_exactly('h_id')),
    get('SQL in limit: 400', '/products?limit=' + q('1 OR 1=1'), expect=problem(400, 'bad-request')),
    get('SQL in limit (1;...): 400', '/products?limit=' + q('1;DELETE FROM shop.products'),
        expect=problem(400, 'bad-request')),
    get('SQL in after: 400', '/products?after=' + q(SQLI[0]), expect=problem(400, 'bad-request')),
    get('SQL in category: 400', '/products?category=' + q(SQLI[0]), expect=problem(400, 'bad-request')),
    admin('SQL in status: 400', 'GET', '/orders?status=' + q("paid' OR '1'='1"), expect=problem(400, 'bad-request')),
    admin('SQL in limit on /orders: 400', 'GET', '/orders?limit=' + q(SQLI[1]), expect=problem(400, 'bad-request')),
    admin('SQL in after on /orders: 400', 'GET', '/orders?after=' + q(SQLI[0]), expect=problem(400, 'bad-request')),
    get('SQL in topics: 400', '/events?topics=' + q(SQLI[0]), expect=problem(400, 'bad-request')),
    get('SQL in after on /events: 400', '/events?after=' + q('1 OR 1=1'), expect=problem(400, 'bad-request')),
    get('SQL in Last-Event-ID: 400', '/events', headers={'Last-Event-ID': SQLI[0]},
        expect=problem(400, 'bad-request')),
    get('SQL in If-None-Match: 200, the product', '/products/{{h_id}}', headers={'If-None-Match': SQLI[0]},
        expect=status(200, json={'sku': '{{HS}}'})),
]

SQL_PATH = [
    get('SQL as a product id: 404', '/products/' + q(SQLI[0]), expect=problem(404, 'not-found')),
    get('SQL as a product id (1 OR 1=1): 404', '/products/' + q('1 OR 1=1'), expect=problem(404, 'not-found')),
    get('SQL as a product id (1;...): 404', '/products/' + q('1;DELETE FROM shop.products'),
        expect=problem(404, 'not-found')),
    admin('PATCH of an SQL id: 404', 'PATCH', '/products/' + q(SQLI[1]), {'name': 'x'},
          expect=problem(404, 'not-found')),
    admin('DELETE of an SQL id: 404', 'DELETE', '/products/' + q("1' OR '1'='1"), expect=problem(404, 'not-found')),
    admin('DELETE of an SQL slug (no spaces): 404', 'DELETE', '/products/' + q(SQLI_NOSPACE),
          expect=problem(404, 'not-found')),
    get('SQL as an order id: 404', '/orders/' + q(SQLI[0]), expect=problem(404, 'not-found')),
    trans('SQL as the order id of a transition: 404', q(SQLI[4]), {'to': 'paid'}, expect=problem(404, 'not-found')),
    w422('SQL as a warehouse code: 422', {'name': 'x'}, 'code', code=q(SQLI[1])),
    admin('SQL as the warehouse of a stock PUT: 404', 'PUT', '/warehouses/%s/stock/{{HS}}' % q(SQLI[0]),
          {'quantity': 1}, expect=problem(404, 'not-found')),
    admin('SQL as the sku of a stock PUT: 404', 'PUT', '/warehouses/{{hw}}/stock/%s' % q(SQLI[1]),
          {'quantity': 1}, expect=problem(404, 'not-found')),
    admin('SQL (no spaces) as the sku of a stock PUT: 404', 'PUT', '/warehouses/{{hw}}/stock/%s' % q(SQLI_NOSPACE),
          {'quantity': 1}, expect=problem(404, 'not-found')),
]

NUMBERS = [
    p422('price_cents 2^64', '{"sku":"{{P}}-n1","name":"N","price_cents":18446744073709551616,"currency":"EUR"}',
         'price_cents'),
    p422('price_cents 1e400 (past a double)', '{"sku":"{{P}}-n2","name":"N","price_cents":1e400,"currency":"EUR"}',
         'price_cents'),
    p422('price_cents of 400 digits',
         '{"sku":"{{P}}-n3","name":"N","price_cents":%s,"currency":"EUR"}' % ('9' * 400), 'price_cents'),
    p422('price_cents -2^63-1', '{"sku":"{{P}}-n4","name":"N","price_cents":-9223372036854775809,"currency":"EUR"}',
         'price_cents'),
    p422('price_cents -2^63', '{"sku":"{{P}}-n5","name":"N","price_cents":-9223372036854775808,"currency":"EUR"}',
         'price_cents'),
    p422('price_cents 1E2', '{"sku":"{{P}}-n6","name":"N","price_cents":1E2,"currency":"EUR"}', 'price_cents'),
    p422('price_cents 1e-2', '{"sku":"{{P}}-n7","name":"N","price_cents":1e-2,"currency":"EUR"}', 'price_cents'),
    p422('price_cents 100.00', '{"sku":"{{P}}-n8","name":"N","price_cents":100.00,"currency":"EUR"}', 'price_cents'),
    p422('price_cents -0.0', '{"sku":"{{P}}-n9","name":"N","price_cents":-0.0,"currency":"EUR"}', 'price_cents'),
    p422('price_cents "1e3"', pbody(price_cents='1e3'), 'price_cents'),
] + [
    bad('price_cents %s: 400' % what, 'POST', '/products',
        '{"sku":"{{P}}-nj","name":"N","price_cents":%s,"currency":"EUR"}' % v, auth=True)
    for what, v in [('+1', '+1'), ('.5', '.5'), ('1.', '1.'), ('0x10', '0x10'), ('00', '00'), ('-01', '-01'),
                    ('-Infinity', '-Infinity'), ('NaN (lower case)', 'nan'), ('1e', '1e'), ('--1', '--1')]
] + [
    o422('quantity 0', oitem(quantity=0), 'items[0].quantity'),
    o422('quantity -1', oitem(quantity=-1), 'items[0].quantity'),
    o422('quantity 2^63', '{"items":[{"sku":"{{HZ}}","quantity":9223372036854775808}],"customer_email":"h@example.com"}',
         'items[0].quantity'),
    o422('quantity 10^12', oitem(quantity=10 ** 12), 'items[0].quantity'),
    o422('quantity 1.5', oitem(quantity=1.5), 'items[0].quantity'),
    o422('quantity 1e2', '{"items":[{"sku":"{{HZ}}","quantity":1e2}],"customer_email":"h@example.com"}',
         'items[0].quantity'),
    o422('quantity "1"', oitem(quantity='1'), 'items[0].quantity'),
    o422('quantity true', oitem(quantity=True), 'items[0].quantity'),
    bad('quantity 01: 400', 'POST', '/orders', '{"items":[{"sku":"{{HZ}}","quantity":01}],"customer_email":"h@example.com"}'),
    bad('quantity NaN: 400', 'POST', '/orders', '{"items":[{"sku":"{{HZ}}","quantity":NaN}],"customer_email":"h@example.com"}'),
    bad('stock check: quantity Infinity: 400', 'POST', '/stock/check', '{"items":[{"sku":"{{HS}}","quantity":Infinity}]}'),
    bad('stock quantity -Infinity: 400', 'PUT', '/warehouses/{{hw}}/stock/{{HS}}', '{"quantity":-Infinity}', auth=True),
    bad('webhook amount_cents NaN: 400', 'POST', '/webhooks/payments',
        '{"id":"evt-{{P}}-hx","type":"payment.succeeded","order_id":"%s","amount_cents":NaN,"currency":"EUR"}'
        % UNKNOWN_UUID, sign=True),
    c422('stock check: quantity -1', {'items': [{'sku': '{{HS}}', 'quantity': -1}]}, 'items[0].quantity'),
    c422('stock check: quantity 2^64', '{"items":[{"sku":"{{HS}}","quantity":18446744073709551616}]}',
         'items[0].quantity'),
    s422('stock quantity -1', {'quantity': -1}, 'quantity'),
    s422('stock quantity 2^63', '{"quantity":9223372036854775808}', 'quantity'),
    s422('stock quantity 1.5', {'quantity': 1.5}, 'quantity'),
    s422('stock quantity 1e2', '{"quantity":1e2}', 'quantity'),
    s422('stock quantity "5"', {'quantity': '5'}, 'quantity'),
    w422('latency_ms -1', {'name': 'x', 'latency_ms': -1}, 'latency_ms'),
    w422('latency_ms 10001', {'name': 'x', 'latency_ms': 10001}, 'latency_ms'),
    w422('latency_ms 2^64', '{"name":"x","latency_ms":18446744073709551616}', 'latency_ms'),
    w422('latency_ms 1e3', '{"name":"x","latency_ms":1e3}', 'latency_ms'),
    w422('latency_ms 0.5', {'name': 'x', 'latency_ms': 0.5}, 'latency_ms'),
    h422('amount_cents 2^63', ev(amount_cents=2 ** 63), 'amount_cents'),
    h422('amount_cents 1e2', '{"id":"evt-{{P}}-hx","type":"payment.succeeded","order_id":"%s",'
         '"amount_cents":1e2,"currency":"EUR"}' % UNKNOWN_UUID, 'amount_cents'),
    h422('amount_cents 10^12+1', ev(amount_cents=10 ** 12 + 1), 'amount_cents'),
] + [
    get('limit=%s: 400' % v, '/products?limit=' + v, expect=problem(400, 'bad-request'))
    for v in ['050', '%2B5', '1e2', '0x10', '-0', '1.0', '%205', '5%00', '%EF%BC%95', '18446744073709551617',
              '5%20', '']
] + [
    get('product id %s: 404' % v, '/products/' + v, expect=problem(404, 'not-found'))
    for v in ['01', '9223372036854775807', '18446744073709551616', '1e3', '0x1', '1.0', '%2B1', '-0', '1%20']
]

SHAPES = [
    p422('sku null', pbody(sku=None), 'sku'),
    p422('sku an array', pbody(sku=['{{P}}-a']), 'sku'),
    p422('sku an object', pbody(sku={'$ne': ''}), 'sku'),
    p422('name an array', pbody(name=['x']), 'name'),
    p422('name an object', pbody(name={'a': 1}), 'name'),
    p422('price_cents an array', pbody(price_cents=[1]), 'price_cents'),
    p422('price_cents an object', pbody(price_cents={'$gt': 0}), 'price_cents'),
    p422('currency an array', pbody(currency=['EUR']), 'currency'),
    p422('description an object', pbody(description={}), 'description'),
    p422('category an array', pbody(category=[]), 'category'),
    o422('items null', obody(items=None), 'items'),
    o422('items an object', obody(items={'sku': '{{HZ}}', 'quantity': 1}), 'items'),
    o422('items a string', obody(items='{{HZ}}'), 'items'),
    o422('items [null]', obody(items=[None]), 'items[0]'),
    o422('items [[...]]', obody(items=[['{{HZ}}', 1]]), 'items[0]'),
    o422('items[].sku null', oitem(sku=None), 'items[0].sku'),
    o422('items[].sku an array', oitem(sku=['{{HZ}}']), 'items[0].sku'),
    o422('items[].quantity an object', oitem(quantity={}), 'items[0].quantity'),
    o422('items[].quantity null', oitem(quantity=None), 'items[0].quantity'),
    o422('customer_email an array', obody(customer_email=['h@example.com']), 'customer_email'),
    o422('customer_email null', obody(customer_email=None), 'customer_email'),
    w422('warehouse name null', {'name': None}, 'name'),
    w422('warehouse name an object', {'name': {}}, 'name'),
    s422('stock quantity an array', {'quantity': [5]}, 'quantity'),
    s422('stock quantity null', {'quantity': None}, 'quantity'),
    t422('to an object', {'to': {'status': 'paid'}}, 'to'),
    h422('webhook id null', ev(id=None), 'id'),
    h422('webhook order_id an array', ev(order_id=[UNKNOWN_UUID]), 'order_id'),
    h422('webhook amount_cents an object', ev(amount_cents={}), 'amount_cents'),
    h422('webhook amount_cents null', ev(amount_cents=None), 'amount_cents'),
    c422('stock check: items an object', {'items': {}}, 'items'),
]

LENGTHS = [
    p409('name of 200 three-byte characters passes validation (409 on the taken sku)', {'name': '€' * 200}),
    p422('name of 201 three-byte characters', pbody(name='€' * 201), 'name'),
    p409('name of 200 four-byte characters passes validation (409)', {'name': '\U0001F600' * 200}),
    p422('name of 201 four-byte characters', pbody(name='\U0001F600' * 201), 'name'),
    p409('description of 5000 four-byte characters passes validation (409)', {'description': '\U0001F600' * 5000}),
    p422('description of 5001 four-byte characters', pbody(description='\U0001F600' * 5001), 'description'),
    p422('sku of 64 characters, a bad price: only price_cents is named',
         pbody(sku='{{P}}' + 'k' * 56, price_cents=-1), 'price_cents', exact=True),
    p422('sku of 65 characters', pbody(sku='{{P}}' + 'k' * 57), 'sku'),
    p422('sku of 64 two-byte characters', pbody(sku='é' * 64), 'sku'),
    p422('slug of 100 characters, a bad price: only price_cents is named',
         pbody(slug='{{P}}-' + 's' * 91, price_cents=-1), 'price_cents', exact=True),
    p422('category of 64 characters, a bad price: only price_cents is named',
         pbody(category='c' * 64, price_cents=-1), 'price_cents', exact=True),
    p422('category of 65 characters', pbody(category='c' * 65), 'category'),
    p422('currency of 3 two-byte characters', pbody(currency='ÉÜR'), 'currency'),
    o409('customer_email of 254 characters passes validation (409)', obody(customer_email=E254)),
    o409('customer_email of 254 characters, a two-byte domain, passes validation (409)',
         obody(customer_email=E254U)),
    o422('customer_email of 255 characters', obody(customer_email='a' + E254), 'customer_email'),
    o422('customer_email of 255 characters, a two-byte domain', obody(customer_email=E254U[:100] + 'é' + E254U[100:]),
         'customer_email'),
    o422('101 items', obody(items=[{'sku': '{{P}}-l%d' % i, 'quantity': 1} for i in range(101)]), 'items'),
    c422('stock check: 101 items', {'items': [{'sku': '{{P}}-l%d' % i, 'quantity': 1} for i in range(101)]},
         'items'),
    w422('warehouse name of 200 characters, latency_ms -1: only latency_ms is named',
         {'name': 'ŵ' * 200, 'latency_ms': -1}, 'latency_ms', exact=True),
    w422('warehouse name of 201 characters', {'name': 'ŵ' * 201}, 'name'),
    w422('warehouse name empty', {'name': ''}, 'name'),
    w422('warehouse code of 33 characters', {'name': 'x'}, 'code', code='w' * 33),
    hook('webhook id of 200 characters passes validation: 404 (unknown order)', ev(id='e' * 200),
         expect=problem(404, 'not-found')),
    h422('webhook reason of 201 characters', ev('payment.failed', reason='ř' * 201), 'reason'),
    hook('webhook reason of 200 characters passes validation: 404', ev('payment.failed', reason='ř' * 200),
         expect=problem(404, 'not-found')),
    o409('Idempotency-Key of 200 characters passes (409)', obody(), headers={'Idempotency-Key': 'k' * 200}),
    opost('Idempotency-Key of 201 characters: 400', obody(), headers={'Idempotency-Key': 'k' * 201},
          expect=problem(400, 'bad-request')),
    get('q of 200 two-byte characters: 200, nothing', '/products?q=' + q('ø' * 200),
        expect=status(200, json={'items': [], 'next': None})),
    get('q of 201 two-byte characters: 400', '/products?q=' + q('ø' * 201), expect=problem(400, 'bad-request')),
    get('q of 201 four-byte characters: 400', '/products?q=' + q('\U0001F600' * 201),
        expect=problem(400, 'bad-request')),
]

TEXT = [
    p422('name with \\u0000', '{"sku":"{{P}}-z1","name":"a\\u0000b","price_cents":1,"currency":"EUR"}', 'name'),
    p422('name with \\u0001', '{"sku":"{{P}}-z2","name":"a\\u0001b","price_cents":1,"currency":"EUR"}', 'name'),
    p422('name with \\u001b (ESC)', '{"sku":"{{P}}-z3","name":"a\\u001b[2Jb","price_cents":1,"currency":"EUR"}',
         'name'),
    p422('name with \\u007f (DEL)', '{"sku":"{{P}}-z4","name":"a\\u007fb","price_cents":1,"currency":"EUR"}', 'name'),
    p422('description with \\u0000', '{"sku":"{{P}}-z5","name":"N","description":"\\u0000","price_cents":1,'
         '"currency":"EUR"}', 'description'),
    p422('sku with \\u0000', '{"sku":"a\\u0000","name":"N","price_cents":1,"currency":"EUR"}', 'sku'),
    o422('items[].sku with \\u0000', '{"items":[{"sku":"{{HZ}}\\u0000","quantity":1}],"customer_email":"h@example.com"}',
         'items[0].sku'),
    o422('customer_email with \\u0000', '{"items":[{"sku":"{{HZ}}","quantity":1}],"customer_email":"h\\u0000@example.com"}',
         'customer_email'),
    o422('customer_email with \\r\\n', obody(customer_email='h@example.com\r\nBcc: x@evil.example'), 'customer_email'),
    w422('warehouse name with \\u0000', '{"name":"a\\u0000"}', 'name'),
    hook('webhook reason with \\u0000: 422', '{"id":"evt-{{P}}-hx","type":"payment.failed","order_id":"%s",'
         '"reason":"a\\u0000"}' % UNKNOWN_UUID, expect=problem(422, 'validation', fields=['reason'])),
    bad('a NUL in an object key: 400', 'POST', '/orders',
        '{"items":[{"sku":"{{HZ}}","quantity":1}],"customer_email":"h@example.com","a\\u0000b":1}'),
] + [
    bad('invalid UTF-8 (%s): 400' % what, method, path, body, auth=auth, sign=sign)
    for what, method, path, body, auth, sign in [
        ('raw \\xff in an order', 'POST', '/orders',
         b'{"items":[{"sku":"{{HZ}}","quantity":1}],"customer_email":"h\xff@example.com"}', None, None),
        ('overlong "/" in a stock check', 'POST', '/stock/check',
         b'{"items":[{"sku":"a\xc0\xafb","quantity":1}]}', None, None),
        ('overlong NUL \\xc0\\x80 in an order', 'POST', '/orders',
         b'{"items":[{"sku":"{{HZ}}","quantity":1}],"customer_email":"h\xc0\x80@example.com"}', None, None),
        ('an encoded surrogate in a webhook', 'POST', '/webhooks/payments',
         b'{"id":"evt-{{P}}-hx","type":"payment.failed","order_id":"' + UNKNOWN_UUID.encode()
         + b'","reason":"\xed\xa0\x80"}', None, True),
        ('a 5-byte sequence in a warehouse name', 'PUT', '/warehouses/{{hw}}', b'{"name":"\xf8\x88\x80\x80\x80"}',
         True, None),
        ('a lone continuation byte in a transition', 'POST', '/orders/{{ho}}/transitions', b'{"to":"paid\x80"}',
         True, None),
        ('past U+10FFFF in a patch', 'PATCH', '/products/{{h_id}}', b'{"name":"\xf4\x90\x80\x80"}', True, None),
        ('a truncated sequence at the end of the body', 'POST', '/stock/check',
         b'{"items":[{"sku":"a","quantity":1}]}\xe2\x82', None, None),
        ('a UTF-8 BOM before the JSON', 'POST', '/stock/check',
         b'\xef\xbb\xbf{"items":[{"sku":"a","quantity":1}]}', None, None),
        ('UTF-16', 'POST', '/stock/check', '{"items":[]}'.encode('utf-16'), None, None),
    ]
] + [
    bad('a lone surrogate (%s): 400' % what, 'POST', '/orders',
        '{"items":[{"sku":"{{HZ}}","quantity":1}],"customer_email":"h%s@example.com"}' % esc)
    for what, esc in [('\\udfff', '\\udfff'), ('\\ud800 then A', '\\ud800\\u0041'), ('\\ud800\\ud800', '\\ud800\\ud800'),
                      ('\\ud83d at the end', '\\ud83d')]
] + [
    get('q=%s: 400' % v, '/products?q=' + v, expect=problem(400, 'bad-request'))
    for v in ['%FF', '%C0%AF', '%ED%A0%80', '%00', '%F4%90%80%80', '%zz', '%4']
] + [
    get('category=%00: 400', '/products?category=%00', expect=problem(400, 'bad-request')),
    get('topics=%FF: 400', '/events?topics=%FF', expect=problem(400, 'bad-request')),
    admin('status=%C0%80: 400', 'GET', '/orders?status=%C0%80', expect=problem(400, 'bad-request')),
    get('after=%FF on /products: 400', '/products?after=%FF', expect=problem(400, 'bad-request')),
] + [
    get('product id %s: 404' % what, '/products/' + v, expect=problem(404, 'not-found'))
    for what, v in [('overlong /', '%C0%AF'), ('CR LF', '%0D%0A'), ('U+2028', '%E2%80%A8'), ('ESC', '%1B'),
                    ('a lone surrogate', '%ED%A0%80')]
] + [
    get('order id invalid UTF-8: 404', '/orders/%ED%A0%80', expect=problem(404, 'not-found')),
    wput('warehouse code invalid UTF-8: 404 (a code that cannot exist)', '%FF', {'name': 'x'},
         expect=problem(404, 'not-found')),
    w422('warehouse code with CR LF (a Location header would echo it): 422', {'name': 'x'}, 'code',
         code='w%0D%0AX-Injected:%201'),
    admin('stock PUT, sku invalid UTF-8: 404', 'PUT', '/warehouses/{{hw}}/stock/%C0%AF', {'quantity': 1},
          expect=problem(404, 'not-found')),
]

DUPLICATES = [
    bad('duplicate "items": 400', 'POST', '/orders',
        '{"items":[{"sku":"{{HZ}}","quantity":1}],"items":[{"sku":"{{HS}}","quantity":1}],"customer_email":"h@example.com"}'),
    bad('duplicate "sku" inside an item: 400', 'POST', '/orders',
        '{"items":[{"sku":"{{HZ}}","sku":"{{HS}}","quantity":1}],"customer_email":"h@example.com"}'),
    bad('duplicate key spelled with an escape ("\\u0069tems"): 400', 'POST', '/orders',
        '{"items":[{"sku":"{{HZ}}","quantity":1}],"\\u0069tems":[],"customer_email":"h@example.com"}'),
    bad('stock check: duplicate "quantity": 400', 'POST', '/stock/check',
        '{"items":[{"sku":"{{HS}}","quantity":1,"quantity":2}]}'),
    bad('webhook: duplicate "type": 400', 'POST', '/webhooks/payments',
        '{"id":"evt-{{P}}-hx","type":"payment.failed","type":"payment.succeeded","order_id":"%s",'
        '"reason":"x"}' % UNKNOWN_UUID, sign=True),
    bad('transition: duplicate "to": 400', 'POST', '/orders/{{ho}}/transitions', '{"to":"cancelled","to":"paid"}',
        auth=True),
    bad('warehouse: duplicate "name": 400', 'PUT', '/warehouses/{{hw}}', '{"name":"a","name":"b"}', auth=True),
    bad('stock: duplicate "quantity": 400', 'PUT', '/warehouses/{{hw}}/stock/{{HS}}', '{"quantity":1,"quantity":2}',
        auth=True),
]

BOMBS = [
    bad('order nested 33 deep: 400', 'POST', '/orders', deep_arrays(33)),
    bad('order: items nested to depth 33 in total: 400', 'POST', '/orders',
        '{"items":%s,"customer_email":"h@example.com"}' % deep_arrays(31, '{"sku":"x","quantity":1}')),
    bad('stock check nested 33 deep (objects): 400', 'POST', '/stock/check', deep_objects(33)),
    bad('webhook nested 33 deep: 400', 'POST', '/webhooks/payments', deep_arrays(33), sign=True),
    bad('transition nested 33 deep: 400', 'POST', '/orders/{{ho}}/transitions', '{"to":%s}' % deep_arrays(32),
        auth=True),
    bad('order nested 30 000 deep (arrays, 60 KB): 400', 'POST', '/orders', deep_arrays(30000),
        expect=problem(400, 'bad-request', max_seconds=5)),
    bad('stock check: 60 000 unclosed [ (under the limit): 400', 'POST', '/stock/check', '[' * 60000,
        expect=problem(400, 'bad-request', max_seconds=5)),
    bad('stock check nested 10 000 deep (objects, 60 KB): 400', 'POST', '/stock/check',
        deep_objects(10000), expect=problem(400, 'bad-request', max_seconds=5)),
    bad('order nested 100 000 deep: 400 or 413, no crash', 'POST', '/orders', deep_arrays(100000),
        expect=dict(status=(400, 413), max_seconds=5)),
    bad('stock check: 100 000 unclosed {"a": : 400 or 413, no crash', 'POST', '/stock/check', '{"a":' * 100000,
        expect=dict(status=(400, 413), max_seconds=5)),
    opost('items of 30 000 numbers (under the limit): 422', '{"items":[%s],"customer_email":"h@example.com"}'
          % ','.join(['0'] * 30000), expect=problem(422, 'validation', fields=['items'], max_seconds=5)),
    opost('items of 100 000 elements: 413', '{"items":[%s],"customer_email":"h@example.com"}'
          % ','.join(['0'] * 100000), expect=problem(413, 'payload-too-large', max_seconds=5)),
    c422('stock check: items of 20 000 objects: 422', '{"items":[%s]}' % ','.join(['{}'] * 20000), 'items'),
    p422('5 000 unknown fields', '{%s}' % ','.join('"f%d":1' % i for i in range(5000)), 'f0'),
]

SIZES = [
    raw('declared Content-Length of 10^9, no body sent: 413 at once', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Content-Length: 1000000000\r\nConnection: close\r\n\r\n{"items":',
        expect=problem(413, 'payload-too-large', max_seconds=3)),
    raw('declared Content-Length of 10^9 on a webhook: 413 at once', 'POST', '/webhooks/payments',
        b'POST /webhooks/payments HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Shop-Signature: t=1,v1=00\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n',
        expect=dict(status=(401, 413), max_seconds=3)),
    dict(name='a body one byte over the limit: 413', method='POST', path='/stock/check',
         body=lambda ctx: body_of_size(ctx.body_limit + 1),
         expect=problem(413, 'payload-too-large')),
    dict(name='the same body at the limit exactly parses (422)', method='POST', path='/stock/check',
         body=lambda ctx: body_of_size(ctx.body_limit),
         expect=problem(422, 'validation')),
    dict(name='a chunked order over the limit in 8 KB chunks: 413', method='POST', path='/orders',
         body=lambda ctx: b'{"items":[],"x":"' + b'y' * (ctx.body_limit + 100) + b'"}', chunked=True,
         expect=problem(413, 'payload-too-large')),
    raw('a chunk size past the limit (ffffffffffff): 413 at once', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffff\r\n{"items":',
        expect=problem(413, 'payload-too-large', max_seconds=5), timeout=8),
    raw('Content-Length of 24 digits: 400', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Content-Length: 999999999999999999999999\r\nConnection: close\r\n\r\n{}',
        expect=dict(status=(400, 413))),
    raw('Content-Length -1: 400', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Content-Length: -1\r\nConnection: close\r\n\r\n{}', expect=problem(400, 'bad-request')),
    raw('two different Content-Lengths: 400', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Content-Length: 2\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{}', expect=problem(400, 'bad-request')),
    raw('Content-Length and Transfer-Encoding together (smuggling): 400', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
        expect=problem(400, 'bad-request')),
    raw('a chunk size that is not hex: 400', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
        expect=problem(400, 'bad-request')),
    raw('Transfer-Encoding: gzip, chunked: a problem, not HTML', 'POST', '/orders',
        b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n'
        b'Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
        expect=dict(status=(400, 501), problem='bad-request')),
]

MEDIA = [
    opost('order without Content-Type: 415', obody(), ctype=NO_CT, expect=problem(415, 'unsupported-media-type')),
] + [
    opost('order as %s: 415' % ct, obody(), ctype=ct, expect=problem(415, 'unsupported-media-type'))
    for ct in ['text/plain', 'application/xml', 'application/json; charset=utf-16', 'application/json;charset=latin1',
               'multipart/form-data; boundary=x', 'application/json, text/plain', '', 'application/x-json',
               'json', 'application/json; charset=utf-8; charset=latin1']
] + [
    dict(name='stock check without Content-Type: 415', method='POST', path='/stock/check',
         body={'items': [{'sku': '{{HS}}', 'quantity': 1}]}, ctype=NO_CT, expect=problem(415, 'unsupported-media-type')),
    hook('webhook without Content-Type: 415', ev(), ctype=NO_CT, expect=problem(415, 'unsupported-media-type')),
    wput('warehouse as text/plain: 415', '{{hw}}', {'name': 'x'}, ctype='text/plain',
         expect=problem(415, 'unsupported-media-type')),
    admin('stock without Content-Type: 415', 'PUT', '/warehouses/{{hw}}/stock/{{HS}}', {'quantity': 1}, ctype=NO_CT,
          expect=problem(415, 'unsupported-media-type')),
    trans('transition without Content-Type: 415', '{{ho}}', {'to': 'cancelled'}, ctype=NO_CT,
          expect=problem(415, 'unsupported-media-type')),
    admin('PATCH as application/json-patch+json: 415', 'PATCH', '/products/{{h_id}}', [{'op': 'remove', 'path': '/name'}],
          ctype='application/json-patch+json', expect=problem(415, 'unsupported-media-type')),
]


def crlf(name, method, path, header_bytes, expect, check, body=None):
    """header_bytes written as they are, after the usual headers."""
    c = dict(name=name, method=method, path=path, raw_lines=[header_bytes], expect=expect, check=check)
    if body is not None:
        c['body'] = body
    return c


ORDER = {'items': [{'sku': '{{HZ}}', 'quantity': 1}], 'customer_email': 'h@example.com'}

CRLF = [
    crlf('X-Request-Id with CR LF and a header after it: not echoed as one', 'GET', '/products/{{h_id}}',
         b'X-Request-Id: abc\r\nX-Injected: 1\r\nSet-Cookie: evil=1', status(200),
         both(rid_not('abc\r\nX-Injected: 1'), no_header('X-Injected', 'Set-Cookie'))),
    crlf('X-Request-Id with a bare LF and a header after it', 'GET', '/nope',
         b'X-Request-Id: abc\nX-Injected: 1', problem(404, 'not-found'), both(rid_not(), no_header('X-Injected'))),
    crlf('X-Request-Id with a bare CR: nginx 400 problem', 'GET', '/products/{{h_id}}',
         b'X-Request-Id: abc\rX-Injected: 1', problem(400, 'bad-request'), both(rid_not(), no_header('X-Injected'))),
    crlf('X-Request-Id with a NUL: nginx 400 problem', 'GET', '/healthz',
         b'X-Request-Id: abc\x00X-Injected: 1', problem(400, 'bad-request'), both(rid_not(), no_header('X-Injected'))),
    crlf('X-Request-Id percent-encoded CR LF: replaced', 'GET', '/products/999999999',
         b'X-Request-Id: abc%0d%0aX-Injected:%201', problem(404, 'not-found'),
         both(rid_not('abc%0d%0aX-Injected:%201'), no_header('X-Injected'))),
    crlf('X-Request-Id with U+2028 (UTF-8 bytes): replaced', 'GET', '/healthz',
         b'X-Request-Id: abc\xe2\x80\xa8X-Injected: 1', status(200),
         both(rid_not('abc\xe2\x80\xa8X-Injected: 1'), no_header('X-Injected'))),
    crlf('X-Request-Id folded over two lines (obs-fold)', 'GET', '/healthz',
         b'X-Request-Id: abc\r\n X-Injected: 1', status((200, 400)), both(rid_not(), no_header('X-Injected'))),
    crlf('X-Request-Id twice: one id answers', 'GET', '/healthz',
         b'X-Request-Id: one-id\r\nX-Request-Id: two-id', status((200, 400)), rid_not('one-id, two-id')),
    crlf('Idempotency-Key with CR LF and a header after it: no injected header', 'POST', '/orders',
         b'Idempotency-Key: k-{{P}}\r\nX-Injected: 1', problem(409, 'insufficient-stock'),
         both(rid_not(), no_header('X-Injected')), body=ORDER),
    crlf('Idempotency-Key with a bare CR: nginx 400 problem', 'POST', '/orders',
         b'Idempotency-Key: k-{{P}}\rX-Injected: 1', problem(400, 'bad-request'),
         both(rid_not(), no_header('X-Injected')), body=ORDER),
    crlf('Idempotency-Key with \\x01: 400', 'POST', '/orders', b'Idempotency-Key: k\x01-{{P}}',
         problem(400, 'bad-request'), no_header('X-Injected'), body=ORDER),
    crlf('Idempotency-Key with a tab inside: 400', 'POST', '/orders', b'Idempotency-Key: k\t-{{P}}',
         problem(400, 'bad-request'), no_header('X-Injected'), body=ORDER),
    crlf('Idempotency-Key of UTF-8 bytes: 400', 'POST', '/orders', b'Idempotency-Key: \xd0\xba\xd0\xbb\xd1\x8e',
         problem(400, 'bad-request'), no_header('X-Injected'), body=ORDER),
    crlf('Idempotency-Key percent-encoded CR LF is printable ASCII: 409', 'POST', '/orders',
         b'Idempotency-Key: k-{{P}}%0d%0aX-Injected:%201', problem(409, 'insufficient-stock'),
         no_header('X-Injected'), body=ORDER),
]

TRAVERSAL = [
    raw('/../../etc/passwd: nginx 400 problem', 'GET', '/../../etc/passwd',
        b'GET /../../etc/passwd HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n', problem(400, 'bad-request')),
    raw('/products/../../../etc/passwd: nginx 400 problem', 'GET', '/products/../../../etc/passwd',
        b'GET /products/../../../etc/passwd HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n',
        problem(400, 'bad-request')),
    raw('/%2e%2e/%2e%2e/etc/passwd: 400 problem', 'GET', '/%2e%2e/%2e%2e/etc/passwd',
        b'GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n',
        problem(400, 'bad-request')),
    get('/products/..%2F..%2Fetc%2Fpasswd: 404, or nginx\'s 400', '/products/..%2F..%2Fetc%2Fpasswd',
        expect=status((400, 404))),
    get('/products/%2e%2e%2f%2e%2e%2fetc%2fpasswd: 404, or nginx\'s 400', '/products/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
        expect=status((400, 404))),
    get('/products/1%2Freviews (an encoded slash): 404', '/products/1%2Freviews', expect=problem(404, 'not-found')),
    get('/products/%2F: 404', '/products/%2F', expect=problem(404, 'not-found')),
    get('/products%2F1 (the slash between segments encoded): 404', '/products%2F1', expect=problem(404, 'not-found')),
    get('/products/%2e%2e: 404', '/products/%2e%2e', expect=problem(404, 'not-found')),
    get('/products/../healthz is not a route: 404', '/products/../healthz', expect=problem(404, 'not-found')),
    get('/products/./1: 404', '/products/./1', expect=problem(404, 'not-found')),
    get('//products/1: 404', '//products/1', expect=problem(404, 'not-found')),
    get('/products//1: 404', '/products//1', expect=problem(404, 'not-found')),
    get('/products/1/ (a trailing slash): 404', '/products/1/', expect=problem(404, 'not-found')),
    get('/products/..\\..\\etc\\passwd (backslashes): 404', '/products/..%5C..%5Cetc%5Cpasswd',
        expect=problem(404, 'not-found')),
    get('/.shop-error/500 (nginx\'s internal location): 404 problem', '/.shop-error/500',
        expect=problem(404, 'not-found')),
    get('/products/1;jsessionid=x: 404', '/products/1;jsessionid=x', expect=problem(404, 'not-found')),
    admin('PUT /warehouses/..%2F..%2Fx: 422, or nginx\'s 400', 'PUT', '/warehouses/..%2F..%2Fx', {'name': 'x'},
          expect=status((400, 422))),
    admin('PUT /warehouses/x%2F..%2F..%2Fy: 422, or nginx\'s 400', 'PUT', '/warehouses/x%2F..%2F..%2Fy',
          {'name': 'x'}, expect=status((400, 422))),
    admin('stock PUT with an encoded slash in the sku: 404', 'PUT', '/warehouses/{{hw}}/stock/{{HS}}%2F..',
          {'quantity': 1}, expect=problem(404, 'not-found')),
]


def long_line(name, target, expect=None, **kw):
    t = target.encode()
    return raw(name, 'GET', target[:40] + '...',
               b'GET ' + t + b' HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n',
               expect or dict(status=400, problem='bad-request'), **kw)


LONG = [
    long_line('a path of 8 KB: 400 problem', '/products/' + 'a' * 8200),
    long_line('a path of 64 KB: 400 problem', '/products/' + 'a' * 65536),
    long_line('a query string of 8 KB: 400 problem', '/products?q=' + 'a' * 8200),
    long_line('a query string of 64 KB: 400 problem', '/products?q=' + 'a' * 65536),
    long_line('64 KB of query parameters: 400 problem', '/products?' + '&'.join(['x=1'] * 16384)),
    get('a query string of 7 KB (in nginx\'s buffer): the shop\'s 400', '/products?q=' + 'a' * 7000,
        expect=problem(400, 'bad-request')),
    get('a product id of 7 KB: 404', '/products/' + 'a' * 7000, expect=problem(404, 'not-found')),
    get('a cursor of 7 KB: 400', '/products?after=' + 'A' * 7000, expect=problem(400, 'bad-request')),
    get('800 unknown query parameters: 200', '/products?limit=1&' + '&'.join('x%d=1' % i for i in range(800)),
        expect=status(200, items=1)),
    raw('an X-Request-Id of 64 KB: 400 problem', 'GET', '/healthz',
        b'GET /healthz HTTP/1.1\r\nHost: shop\r\nX-Request-Id: ' + b'a' * 65536 + b'\r\nConnection: close\r\n\r\n',
        dict(status=400, problem='bad-request')),
    opost('an Idempotency-Key of 16 KB: 400 problem', ORDER, headers={'Idempotency-Key': 'k' * 16384},
          expect=problem(400, 'bad-request')),
]

CURSORS = [
    get('a cursor of another kind (an order cursor on /products): 400', '/products?after={{ocur}}',
        expect=problem(400, 'bad-request')),
    admin('a product cursor on /orders: 400', 'GET', '/orders?after={{pcur}}', expect=problem(400, 'bad-request')),
    get('a truncated cursor: 400', '/products?after={{pcur_trunc}}', expect=problem(400, 'bad-request')),
    get('a cursor with a character more: 400', '/products?after={{pcur_x}}', expect=problem(400, 'bad-request')),
    get('a non-canonical spelling of a real cursor: 400', '/products?after={{pcur_nc}}',
        expect=problem(400, 'bad-request')),
    admin('a non-canonical spelling of an order cursor: 400', 'GET', '/orders?after={{ocur_nc}}',
          expect=problem(400, 'bad-request')),
    get('a real cursor with = padding (encoded): 400', '/products?after={{pcur}}%3D%3D',
        expect=problem(400, 'bad-request')),
    get('a real cursor with = padding (raw): 400', '/products?after={{pcur}}==', expect=problem(400, 'bad-request')),
    get('a cursor with a space: 400', '/products?after=cD%20ox', expect=problem(400, 'bad-request')),
    get('an empty cursor: 400', '/products?after=', expect=problem(400, 'bad-request')),
    get('two cursors: 400', '/products?after={{pcur}}&after={{pcur}}', expect=problem(400, 'bad-request')),
] + [
    get('a forged cursor (%s): 400' % what, '/products?after=' + forged(key), expect=problem(400, 'bad-request'))
    for what, key in [("p:1' OR '1'='1", "p:1' OR '1'='1"), ('p:0', 'p:0'), ('p:-1', 'p:-1'),
                      ('p:2^63', 'p:9223372036854775808'), ('p:01', 'p:01'), ('p: 1', 'p: 1'), ('p:1 NUL', b'p:1\x00'),
                      ('p:', 'p:'), ('invalid UTF-8', b'p:\xff'), ('a 200-byte key', 'p:' + '1' * 198)]
] + [
    admin('a forged order cursor (o:1 OR 1=1): 400', 'GET', '/orders?after=' + forged('o:1 OR 1=1'),
          expect=problem(400, 'bad-request')),
]

EVENTS = [
    get('topics=%s: 400' % v, '/events?topics=' + v, expect=problem(400, 'bad-request'))
    for v in ['ORDERS', 'orders,,stock', 'orders,orders', 'orders%00', 'orders;stock', 'orders%2Cnope',
              'stock,nope', '*']
] + [
    get('topics twice: 400', '/events?topics=orders&topics=stock', expect=problem(400, 'bad-request')),
] + [
    get('after=%s on /events: 400' % v, '/events?after=' + v, expect=problem(400, 'bad-request'))
    for v in ['-1', '1.5', '1e3', '9223372036854775808', '007', '0x10', '', 'abc', '%EF%BC%91']
] + [
    get('after twice on /events: 400', '/events?after=1&after=2', expect=problem(400, 'bad-request')),
] + [
    get('Last-Event-ID %s: 400' % what, '/events', headers={'Last-Event-ID': v}, expect=problem(400, 'bad-request'))
    for what, v in [('abc', 'abc'), ('-1', '-1'), ('1.5', '1.5'), ('2^63', '9223372036854775808'),
                    ('1e3', '1e3'), ('007', '007'), ('1,2', '1,2'), ('fullwidth 1', b'\xef\xbc\x91'),
                    ('of 300 digits', '9' * 300)]
] + [
    dict(name='POST /events: 405', method='POST', path='/events', body={},
         expect=problem(405, 'method-not-allowed', allow=['GET'])),
]

METHODS = [
    raw('TRACE: a 405 problem with Allow', 'TRACE', '/products',
        b'TRACE /products HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n',
        problem(405, 'method-not-allowed', allow=['GET'])),
    raw('an unknown method: 405 problem with Allow', 'FROB', '/products/1',
        b'FROB /products/1 HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n',
        problem(405, 'method-not-allowed', allow=['GET'])),
    raw('a lower-case method: nginx 400 problem', 'get', '/products/1',
        b'get /products/1 HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n', problem(400, 'bad-request')),
    raw('HTTP/1.1 without Host: nginx 400 problem', 'GET', '/products/1',
        b'GET /products/1 HTTP/1.1\r\nConnection: close\r\n\r\n', problem(400, 'bad-request')),
    raw('two Host headers: nginx 400 problem', 'GET', '/products/1',
        b'GET /products/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n', problem(400, 'bad-request')),
    raw('a request line with a tab and junk: 400 problem', 'GET', '/products/1',
        b'GET /products/1\tjunk HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n', problem(400, 'bad-request')),
    raw('a header name with a space: 400 problem', 'GET', '/products/1',
        b'GET /products/1 HTTP/1.1\r\nHost: shop\r\nX Bad: 1\r\nConnection: close\r\n\r\n',
        dict(status=(200, 400))),
    raw('an HTTP/2.0 request line on HTTP/1: a problem, not HTML', 'GET', '/products/1',
        b'GET /products/1 HTTP/2.0\r\nHost: shop\r\nConnection: close\r\n\r\n',
        dict(status=(400, 505), problem='bad-request')),
    raw('a request target "*": 400 problem', 'OPTIONS', '*',
        b'OPTIONS * HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n', dict(status=(400, 404))),
] + [
    # nginx refuses TRACE before any location (conf/nginx-problems.conf.in
    # answers for the shop); the shop answers FROB: the same Allow, exactly,
    # on every route, and the same 404 where there is none
    raw('%s %s: %s' % (m, path, allow and '405, Allow: ' + allow or '404'), m, path,
        m.encode() + b' ' + path.encode() + b' HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n',
        dict(problem(405, 'method-not-allowed'), headers={'Allow': allow}) if allow else problem(404, 'not-found'))
    for m in ('TRACE', 'FROB')
    for path, allow in [('/healthz', 'GET, HEAD, OPTIONS'), ('/readyz', 'GET, HEAD, OPTIONS'),
                        ('/metrics', 'GET, HEAD, OPTIONS'), ('/events?topics=orders', 'GET, HEAD, OPTIONS'),
                        ('/products', 'GET, HEAD, POST, OPTIONS'), ('/products?limit=1', 'GET, HEAD, POST, OPTIONS'),
                        ('/products/1', 'GET, HEAD, PATCH, DELETE, OPTIONS'),
                        ('/warehouses', 'GET, HEAD, OPTIONS'), ('/warehouses/north', 'PUT, OPTIONS'),
                        ('/warehouses/north/stock/SKU-1', 'PUT, OPTIONS'), ('/stock/check', 'POST, OPTIONS'),
                        ('/orders', 'GET, HEAD, POST, OPTIONS'),
                        ('/orders/00000000-0000-0000-0000-000000000000', 'GET, HEAD, OPTIONS'),
                        ('/orders/00000000-0000-0000-0000-000000000000/transitions', 'POST, OPTIONS'),
                        ('/webhooks/payments', 'POST, OPTIONS'), ('/nowhere', None)]
]

TABLE = SQL_BODY + SQL_QUERY + SQL_PATH + NUMBERS + SHAPES + LENGTHS + TEXT + DUPLICATES + BOMBS + SIZES + \
    MEDIA + CRLF + TRAVERSAL + LONG + CURSORS + EVENTS + METHODS


# ----------------------------------------------------------- the sending

class Hang(Exception):
    pass


def request_bytes(ctx, c, headers, body):
    """The bytes of a case's request (shoptest.build gave headers and body)."""
    tg = ctx.tg
    if 'raw' in c:
        return c['raw'] if isinstance(c['raw'], bytes) else c['raw'].encode('latin-1')
    out = b'%s %s HTTP/1.1\r\nHost: %s:%d\r\n' % (c['method'].encode(), (tg.prefix + c['path']).encode('latin-1'),
                                                   tg.host.encode(), tg.port)
    for k, v in headers:
        out += k.encode() + b': ' + (v if isinstance(v, bytes) else v.encode('utf-8')) + b'\r\n'
    for line in c.get('raw_lines', []):
        out += line + b'\r\n'
    if body is not None and c.get('chunked'):
        out += b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
        for i in range(0, len(body), 8192):
            part = body[i:i + 8192]
            out += b'%x\r\n%s\r\n' % (len(part), part)
        return out + b'0\r\n\r\n'
    if body is not None:
        out += b'Content-Length: %d\r\n' % len(body)
    return out + b'Connection: close\r\n\r\n' + (body or b'')


def hsend(tg, data, method, timeout):
    """Sends data on a connection of its own; the answer as a Resp. An
    event stream's body is not read (a stream does not end). Raises Hang
    when nothing (or not all of the answer) comes within timeout."""
    t0 = time.monotonic()
    s = socket.create_connection((tg.host, tg.port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                       # the server answered early: read that answer
        r = http.client.HTTPResponse(s, method=method)
        try:
            r.begin()
            if r.status == 200 and (r.getheader('Content-Type') or '').startswith('text/event-stream'):
                body = b''
            else:
                body = r.read()
        except socket.timeout:
            raise Hang('no answer within %d s' % timeout) from None
        except http.client.RemoteDisconnected:
            raise Hang('the server closed the connection without an answer') from None
        return Resp(r.status, r.getheaders(), body, time.monotonic() - t0)
    finally:
        s.close()


def leak_more(r):
    if r.status < 400:
        return []
    text = r.body.decode('utf-8', 'replace')
    return ['body leaks internals: contains %r' % w for w in LEAKS_MORE if w in text]


def response_errors(c, r):
    errs = convention_errors(c, r) + expect_errors(c, r) + leak_more(r)
    if r.status >= 500:
        errs.append('a %d: hostile input must never be a server error' % r.status)
    if r.status >= 400 and r.status not in PROBLEM_TYPES and 'problem' in c.get('expect', {}):
        # a status API.md has no type for (414, 501, 505): the case says which
        errs = [e for e in errs if not e.startswith('type ')]
        errs += [e for e in problem_errors(r, c['expect']['problem']) if e.startswith('type ')]
    return errs


def run_hcase(ctx, case, unchanged, parity=True):
    """One case: sent, checked, reported; the database compared."""
    try:
        c = subst(case, ctx.vars)
    except Missing as e:
        ctx.tap.result('[%s] %s %s: %s' % (ctx.tg.name, case['method'], case['path'][:60], case['name']),
                       ['needs {{%s}}, which setup did not provide' % e])
        return None
    path = c['path'] if len(c['path']) <= 60 else c['path'][:57] + '...'
    name = '[%s] %s %s: %s' % (ctx.tg.name, c['method'], path, c['name'])
    key = '%s %s: %s' % (case['method'], case['path'][:200], case['name'])
    r, errs = None, []
    try:
        c, headers, body = build(ctx, case)
        data = request_bytes(ctx, c, headers, body)
        r = hsend(ctx.tg, data, c['method'], c.get('timeout', TIMEOUT))
    except Hang as e:
        errs.append('%s (a hang)' % e)
    except Exception as e:     # noqa: BLE001 - any failure to talk is a failed case
        errs.append('request failed: %r' % e)
    if r is not None:
        errs += response_errors(c, r)
        if 'check' in c:
            try:
                errs += c['check'](r, ctx) or []
            except Exception as e:     # noqa: BLE001
                errs.append('check raised %r' % e)
    errs += unchanged(c)
    if r is not None and not errs:
        for var, how in c.get('save', {}).items():
            try:
                ctx.vars[var] = how(r) if callable(how) else save_value(r, how)
            except (KeyError, TypeError, ValueError) as e:
                errs.append('cannot save %s from %s: %r' % (var, how, e))
    if errs and c.get('bug'):
        where, what = c['bug']
        errs.insert(0, 'KNOWN BUG (%s): %s' % (where, what))
    ctx.tap.result(name, errs, [r.summary()] if errs and r is not None else [])
    if parity:
        ctx.answers.append((key, answer_of(r, ctx.vars['P']) if r is not None else {'error': errs[-1]}))
    return r


# ------------------------------------------------------------- WebSocket

def ws_refusals():
    """(name, kwargs for WebSocket(), expectations): handshakes to refuse."""
    return [
        ('no Sec-WebSocket-Key', dict(key=''), {}),
        ('a key of 15 bytes', dict(key=base64.b64encode(b'x' * 15).decode()), {}),
        ('a key of 17 bytes', dict(key=base64.b64encode(b'x' * 17).decode()), {}),
        ('a key that is not base64', dict(key='!!!!!!!!!!!!!!!!!!!!!!=='), {}),
        ('a key with SQL in it', dict(key=SQLI[0]), {}),
        ('Sec-WebSocket-Version 8', dict(version='8'), {'Sec-WebSocket-Version': '13'}),
        ('Sec-WebSocket-Version 13, 8', dict(version='13, 8'), {'Sec-WebSocket-Version': '13'}),
        ('Sec-WebSocket-Version abc', dict(version='abc'), {'Sec-WebSocket-Version': '13'}),
        ('no Sec-WebSocket-Version', dict(version=None), {}),
        ('no Connection: upgrade', dict(connection='keep-alive'), {}),
        ('no Connection header at all', dict(connection=None), {}),
        ('topics=nope', dict(path='/events?topics=nope'), {}),
        ('after=-1', dict(path='/events?after=-1'), {}),
        ('Last-Event-ID: abc', dict(headers={'Last-Event-ID': 'abc'}), {}),
    ]


def ws_frames():
    """(name, the bytes of the bad frame or a function(ws) giving them, close codes accepted)."""
    def masked(b0, payload=b'', length=None, b1_extra=0):
        n = len(payload) if length is None else length
        if n < 126:
            head = bytes([b0, 0x80 | b1_extra | n])
        elif n < 65536:
            head = bytes([b0, 0x80 | 126]) + struct.pack('!H', n)
        else:
            head = bytes([b0, 0x80 | 127]) + struct.pack('!Q', n)
        return head + b'\0\0\0\0' + payload        # mask key 0: payload as is
    return [
        ('an unmasked text frame', bytes([0x80 | OP_TEXT, 5]) + b'hello', (1002,)),
        ('RSV1 set', masked(0x80 | 0x40 | OP_TEXT, b'x'), (1002,)),
        ('RSV2 set', masked(0x80 | 0x20 | OP_TEXT, b'x'), (1002,)),
        ('RSV3 set', masked(0x80 | 0x10 | OP_BINARY, b'x'), (1002,)),
        ('a data frame of 5 000 bytes (over 4 KB)', masked(0x80 | OP_BINARY, b'x' * 5000), (1009,)),
        ('a frame claiming 1 TB (header only)', masked(0x80 | OP_BINARY, length=1 << 40), (1009,)),
        ('a 64-bit length with its top bit set',
         bytes([0x80 | OP_BINARY, 0x80 | 127]) + struct.pack('!Q', 1 << 63) + b'\0\0\0\0', (1002, 1009)),
        ('opcode 0x3 (reserved, data)', masked(0x80 | 0x3, b'x'), (1002,)),
        ('opcode 0xB (reserved, control)', masked(0x80 | 0xB), (1002,)),
        ('a ping of 126 bytes', masked(0x80 | OP_PING, b'p' * 126), (1002,)),
        ('a close of 126 bytes', masked(0x80 | OP_CLOSE, struct.pack('!H', 1000) + b'r' * 124), (1002,)),
        ('a fragmented ping (FIN clear)', masked(OP_PING, b'p'), (1002,)),
        ('a close with a 1-byte payload', masked(0x80 | OP_CLOSE, b'\x03'), (1002,)),
    ]


def ws_problem_errors(ws, want_headers):
    """A refused handshake: 400 problem like any other refusal."""
    headers = [(k, v) for k, v in ws.headers.items()]
    r = Resp(ws.status, headers, ws.body, 0)
    c = {'method': 'GET', 'path': '/events', 'expect': problem(400, 'bad-request', headers=want_headers)}
    errs = response_errors(c, r)
    if ws.status == 101:
        errs.append('the handshake was accepted (101)')
    return errs, r


def run_websocket(ctx, unchanged):
    tg, tag = ctx.tg, 'WebSocket (module only; fcgi serves /events as SSE)'
    for what, kw, want in ws_refusals():
        name = '[%s] GET /events: %s: refused handshake, %s: 400 problem' % (tg.name, tag, what)
        errs, r = [], None
        try:
            ws = WebSocket(tg.url, **dict(kw, timeout=TIMEOUT))
            errs, r = ws_problem_errors(ws, want)
            ws.shutdown()
        except Exception as e:     # noqa: BLE001
            errs.append('handshake failed: %r' % e)
        errs += unchanged({})
        ctx.tap.result(name, errs, [r.summary()] if errs and r is not None else [])

    # an Upgrade on a route that is not /events is ignored (RFC 9110 7.8)
    run_hcase(ctx, dict(name='%s: an Upgrade: websocket on /products/{id} is ignored (200, no 101)' % tag,
                        method='GET', path='/products/{{h_id}}',
                        headers={'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
                                 'Sec-WebSocket-Key': base64.b64encode(b'k' * 16).decode()},
                        expect=status(200, json={'sku': '{{HS}}'})), unchanged, parity=False)
    run_hcase(ctx, dict(name='%s: POST /events with an Upgrade: 405' % tag, method='POST', path='/events',
                        body={}, headers={'Upgrade': 'websocket', 'Connection': 'Upgrade',
                                          'Sec-WebSocket-Version': '13',
                                          'Sec-WebSocket-Key': base64.b64encode(b'k' * 16).decode()},
                        expect=problem(405, 'method-not-allowed', allow=['GET'])), unchanged, parity=False)

    for what, frame, codes in ws_frames():
        name = '[%s] GET /events: %s: after a good handshake, %s: close %s, then EOF' % (
            tg.name, tag, what, '/'.join(map(str, codes)))
        errs = []
        try:
            ws = WebSocket(tg.url, '/events?topics=prices', timeout=TIMEOUT)
            if not ws.accepted():
                errs.append('the good handshake was refused: %s %s' % (ws.status, ws.headers))
            else:
                try:
                    ws.sock.sendall(frame)
                except OSError:
                    pass
                code, t_end = None, time.monotonic() + 5
                while time.monotonic() < t_end:
                    fr = ws.recv(timeout=max(0.1, t_end - time.monotonic()))
                    if fr is None:
                        break
                    if fr[0] == OP_CLOSE:
                        code = close_code(fr[1])
                        break
                if code not in codes:
                    errs.append('close code %r, expected %s (within 5 s)' % (code, codes))
                if not ws.eof(3):
                    errs.append('the server did not close the connection within 3 s of its close')
            ws.shutdown()
        except Exception as e:     # noqa: BLE001
            errs.append('%r' % e)
        errs += unchanged({})
        ctx.tap.result(name, errs)


# ------------------------------------------------------------- database

def snapshot_sql(db):
    """Every table of the schema shop, as found now: its row count and the
    md5 of its rows (ordered by their text)."""
    tables = db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'shop' ORDER BY 1")
    parts = ["%s || ':' || (SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
             " FROM shop.%s t)" % ("'" + name + "'", '"%s"' % name) for name in tables]
    return 'SELECT concat_ws(\' \', %s)' % ', '.join(parts), tables


# ------------------------------------------------------------------ run

def health(tap, tg, when):
    for path, want in (('/healthz', 'ok'), ('/readyz', 'ready')):
        try:
            r = send(tg, 'GET', path, timeout=5)
            errs = [] if r.status == 200 and isinstance(r.json, dict) and r.json.get('status') == want else \
                [r.summary()]
        except Exception as e:     # noqa: BLE001
            errs = ['%r' % e]
        tap.result('[%s] %s: GET %s 200 (%s)' % (tg.name, when, path, want), errs)


def run(ctx):
    """SETUP, the table, the WebSocket cases (module), the checks after."""
    P = ctx.vars['P']
    ctx.vars.update(HS=P + '-hs', HZ=P + '-hz', hw=P + '-hw')
    t0 = time.monotonic()
    for case in SETUP:
        run_hcase(ctx, case, lambda c: [])
    derive_vars(ctx)

    first = before = None
    sql = None
    if ctx.db is not None:
        try:
            sql, tables = snapshot_sql(ctx.db)
            first = before = ctx.db.query(sql)[0]
            ctx.tap.diag('hostile.py on %s: database snapshot of %d tables: %s' % (ctx.tg.name, len(tables),
                                                                                 ', '.join(tables)))
        except Exception as e:     # noqa: BLE001
            ctx.tap.result('[%s] hostile inputs: database snapshot' % ctx.tg.name, [repr(e)])
            ctx.db = None

    def unchanged(c):
        nonlocal before
        if ctx.db is None:
            return []
        after = ctx.db.query(sql)[0]
        if after == before:
            return []
        b, before = before, after
        changed = [x.split(':')[0] for x, y in zip(b.split(' '), after.split(' ')) if x != y]
        return ['the database changed: %s' % ', '.join(changed) or after]

    n = 0
    for case in TABLE:
        run_hcase(ctx, case, unchanged)
        n += 1
    ws = 0
    if ctx.tg.name == 'module':
        before_ws = ctx.tap.n
        run_websocket(ctx, unchanged)
        ws = ctx.tap.n - before_ws

    if ctx.db is None:
        ctx.tap.skip('[%s] hostile inputs: the database is unchanged after the whole table' % ctx.tg.name,
                     'no database (PGHOST unset)')
    else:
        last = ctx.db.query(sql)[0]
        ctx.tap.result('[%s] hostile inputs: the database (every shop.* table) is unchanged after the whole table'
                       % ctx.tg.name, [] if last == first else ['snapshot before %s, after %s' % (first, last)])
    health(ctx.tap, ctx.tg, 'after the hostile table')
    ctx.tap.diag('hostile.py on %s: %d cases%s in %.1f s' % (
        ctx.tg.name, n, ' and %d WebSocket cases' % ws if ws else '', time.monotonic() - t0))


def run_after(tap, ctxs):
    """Once every target ran its table: every front-end still healthy."""
    for ctx in ctxs:
        health(tap, ctx.tg, 'after every hostile table')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--target', action='append', required=True, help='NAME=URL (repeatable)')
    ap.add_argument('--token-file', required=True)
    ap.add_argument('--webhook-secret-file', required=True)
    ap.add_argument('--body-limit', type=int, default=1 << 20, help="the server's body limit in bytes")
    args = ap.parse_args()
    with open(args.token_file, encoding='ascii') as f:
        token = f.read().strip()
    with open(args.webhook_secret_file, encoding='ascii') as f:
        secret = f.read().strip()
    db = Db.open()
    tap = Tap()
    run_id = ''.join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    ctxs = []
    for i, spec in enumerate(args.target):
        tg = Target(spec)
        P = ('h%d%s%s' % (i, run_id, random.choice(string.ascii_lowercase)) + 'zzzzzzzz')[:8]
        ctxs.append(Ctx(tap, tg, token, db, args.body_limit, {'P': P, 'T': tg.name, 'token': token}, secret))
    if db is None:
        tap.diag('PGHOST is not set: database comparisons are skipped')
    for ctx in ctxs:
        tap.diag('target %s = %s (run prefix %s)' % (ctx.tg.name, ctx.tg.url, ctx.vars['P']))
        run(ctx)
    run_after(tap, ctxs)
    from shoptest import run_case_parity
    run_case_parity(tap, ctxs)
    print('1..%d' % tap.n)
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
